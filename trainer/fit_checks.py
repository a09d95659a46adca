"""Settings under which part of a fit would silently do nothing: each is said once, when
fit starts, instead of a run that ends ``success`` having trained, logged or validated
nothing. The checks inside the training loop (an epoch without a step, a data source that
ran dry) live in :class:`EpochCheck`."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from ember.trainer.errors import MisconfigurationError, warn_user

if TYPE_CHECKING:
    from ember.trainer.trainer import Trainer

#: metric names that only validation logs (``val_loss``, ``val/acc``, ``valid_f1``)
_VALIDATION_NAME = re.compile(r"(val|valid|validation)([_/.\-]|$)", re.IGNORECASE)


def looks_like_validation_metric(name: str) -> bool:
    """Whether ``name`` reads as a metric that ``validation_step`` logs."""
    return bool(_VALIDATION_NAME.match(name))


def validation_off_hint(trainer: Any, monitor: str) -> str:
    """For a monitor missing from the logged metrics: the sentence that says validation
    does not run in this fit (and why), or ``""``."""
    data = getattr(trainer, "data", None)
    reason = data.validation_off_reason() if data is not None else None
    if reason is None or not looks_like_validation_metric(monitor):
        return ""
    return (
        f" {monitor!r} reads as a validation metric, but this fit does not validate "
        f"({reason}): add validation data, or monitor a metric that training logs."
    )


def warn_at_fit_start(trainer: Trainer) -> None:
    """Warn about what the flags and data make a no-op (called once data is loaded)."""
    flags, data = trainer.flags, trainer.data
    for flag in ("max_epochs", "max_steps"):
        if getattr(flags, flag) == 0:
            warn_user(
                f"{flag}=0: fit trains nothing (no optimizer step, no validation); remove it, "
                "or call trainer.validate() to only validate"
            )
    every_n_epoch = flags.check_val_every_n_epoch
    if (
        data.validation_enabled
        and every_n_epoch is not None
        and 0 < flags.max_epochs < every_n_epoch
    ):
        warn_user(
            f"check_val_every_n_epoch={every_n_epoch} is more than max_epochs="
            f"{flags.max_epochs}, so validation never runs: lower it, or drop the "
            "validation data"
        )
    for callback in trainer.checkpoint_callbacks:
        if (
            getattr(callback, "save_top_k", None) == 0
            and getattr(callback, "save_last", 1) is False
        ):
            warn_user(
                f"{type(callback).__name__}(save_top_k=0) without save_last=True saves no "
                "checkpoint: keep the top k with save_top_k >= 1, or pass "
                "enable_checkpointing=False to save none on purpose"
            )
    if flags.limit_train_batches == 0:
        warn_user(
            "limit_train_batches=0: fit trains no batch (no optimizer step, no training "
            "epoch hooks); remove the flag to train, or call trainer.validate() to only "
            "validate"
        )
    every = flags.log_every_n_steps
    if every == 0 and not flags.fast_dev_run and trainer.tracking.entries:
        warn_user(
            "log_every_n_steps=0 never sends values logged per step (self.log(..., "
            "on_step=True), the default in training_step) to the loggers, as in Lightning: "
            "set log_every_n_steps=N (50 by default) to record them every N steps; epoch "
            "values are recorded either way"
        )
    if every > 0 and not flags.fast_dev_run and trainer.tracking.entries is not None:
        steps = data.estimated_stepping_batches()
        if not math.isinf(steps) and 0 < steps < every:
            warn_user(
                f"log_every_n_steps={every} is more than the {steps} optimizer step(s) this "
                "fit takes, so values logged per step (self.log(..., on_step=True), the "
                "default in training_step) are never recorded: set log_every_n_steps to at "
                f"most {steps}, or log with on_epoch=True"
            )
    reason = data.validation_off_reason()
    if reason is not None:
        for callback in [*trainer.checkpoint_callbacks, *trainer.early_stopping_callbacks]:
            monitor = getattr(callback, "monitor", None)
            if isinstance(monitor, str) and looks_like_validation_metric(monitor):
                warn_user(
                    f"{type(callback).__name__}(monitor={monitor!r}) watches a validation "
                    f"metric, but this fit does not validate ({reason}), so it is never "
                    "logged: add validation data, or monitor a metric that training logs"
                )


class EpochCheck:
    """What one training epoch did, checked at its end: a data source that yielded no
    batch, or (automatic optimization) a ``training_step`` that returned ``None`` for
    every batch, so no optimizer step was taken."""

    def __init__(self, automatic: bool) -> None:
        self.automatic = automatic
        self._warned_no_step = False
        self._epochs_with_batches = 0

    def epoch_ended(self, epoch: int, batches: int, steps: int, resumed: bool) -> bool:
        """Check the epoch that ran ``batches`` batches and took ``steps`` optimizer steps;
        returns whether training must stop because the data ran dry."""
        if batches == 0:
            if resumed:  # a checkpoint taken at the end of the epoch's batches
                return False
            if self._epochs_with_batches == 0:
                raise MisconfigurationError(
                    f"the training data yielded no batch in epoch {epoch}, so fit would train "
                    "nothing: check that the dataset (or IterableDataset, or generator) is "
                    "not empty"
                )
            warn_user(
                f"the training data yielded no batch in epoch {epoch} after yielding batches "
                "before: it can be iterated only once (a generator or an iterator). Training "
                "stops here; pass a DataLoader, a list, or an iterable whose __iter__ starts "
                "over, to train for several epochs"
            )
            return True
        self._epochs_with_batches += 1
        if self.automatic and steps == 0 and not self._warned_no_step:
            self._warned_no_step = True
            warn_user(
                f"training_step returned None for all {batches} batch(es) of epoch {epoch}, "
                "so no optimizer step was taken and nothing trained: return the loss tensor "
                "(or {'loss': loss}); None skips a batch on purpose"
            )
        return False
