"""Change ``accumulate_grad_batches`` by epoch (Lightning's
``GradientAccumulationScheduler``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ember.trainer.callback import Callback
from ember.trainer.errors import MisconfigurationError


class GradientAccumulationScheduler(Callback):
    """Accumulate gradients over a number of batches that depends on the epoch.

    ``GradientAccumulationScheduler(scheduling={0: 8, 4: 4, 8: 1})`` accumulates 8 batches
    per optimizer step in epochs 0-3, 4 in epochs 4-7 and 1 from epoch 8 on. Epochs
    before the first key accumulate 1. Keys may be strings of digits (a TOML run file).

    :param scheduling: ``{first epoch: batches to accumulate}``.
    """

    def __init__(self, scheduling: Mapping[int | str, int]) -> None:
        if not isinstance(scheduling, Mapping) or not scheduling:
            raise MisconfigurationError(
                "GradientAccumulationScheduler(scheduling=...) needs a non-empty dict "
                f"{{first epoch: batches to accumulate}}, e.g. {{0: 8, 4: 1}}; got {scheduling!r}"
            )
        parsed: dict[int, int] = {}
        for key, value in scheduling.items():
            epoch = int(key) if isinstance(key, str) and key.strip().isdigit() else key
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
                raise MisconfigurationError(
                    f"GradientAccumulationScheduler: epoch {key!r} must be an int >= 0"
                )
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MisconfigurationError(
                    f"GradientAccumulationScheduler: epoch {epoch} accumulates {value!r} "
                    "batches; it must be an int >= 1"
                )
            parsed[epoch] = value
        parsed.setdefault(0, 1)
        self.scheduling = dict(sorted(parsed.items()))
        self.epochs = list(self.scheduling)

    def going_to_accumulate_grad_batches(self) -> bool:
        """Whether any epoch accumulates more than one batch."""
        return any(v > 1 for v in self.scheduling.values())

    def get_accumulate_grad_batches(self, epoch: int) -> int:
        """How many batches epoch ``epoch`` accumulates per optimizer step."""
        value = 1
        for first, batches in self.scheduling.items():
            if epoch >= first:
                value = batches
        return value

    def on_train_start(self, trainer: Any, module: Any) -> None:
        if not module.automatic_optimization:
            raise MisconfigurationError(
                "GradientAccumulationScheduler works with automatic optimization only: in "
                "manual optimization, accumulate in training_step by stepping every N batches"
            )
        if (
            trainer.accumulate_grad_batches
            != self.get_accumulate_grad_batches(trainer.current_epoch)
            and trainer.accumulate_grad_batches != 1
        ):
            raise MisconfigurationError(
                f"Trainer(accumulate_grad_batches={trainer.accumulate_grad_batches}) and a "
                "GradientAccumulationScheduler both set the accumulation: remove "
                "accumulate_grad_batches from the Trainer and put it in the scheduling"
            )

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)
