"""The prediction loop: ``predict_step`` over every loader, outputs gathered."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from ember.trainer.data import epoch_batches
from ember.trainer.hooks import TrainingModes
from ember.trainer.loops.steps import step_caller
from ember.trainer.plugins import Precision, Strategy

if TYPE_CHECKING:
    from ember.trainer.hooks import HookDispatcher
    from ember.trainer.loops.progress import LoopProgress


class PredictLoop:
    """Runs ``predict_step`` over every loader once.

    :param transfer: moves a batch to the device (``None`` when nothing would).
    """

    def __init__(
        self,
        *,
        progress: LoopProgress,
        hooks: HookDispatcher,
        strategy: Strategy,
        precision: Precision,
        transfer: Callable[[Any, int], Any] | None,
        inference_mode: bool,
    ) -> None:
        self.progress = progress
        self.hooks = hooks
        self.strategy = strategy
        self.precision = precision
        self.transfer = transfer
        self.inference_mode = inference_mode

    def run(
        self,
        loaders: list[Any],
        lengths: list[int | float],
        limits: list[int | float],
        return_predictions: bool,
    ) -> list[list[Any]]:
        """Predict every loader; return each loader's outputs (empty lists when not kept)."""
        hooks = self.hooks
        module = hooks.module
        modes = TrainingModes(module)
        module.on_predict_model_eval()
        grad_context = torch.inference_mode() if self.inference_mode else torch.no_grad()
        try:
            with grad_context:
                hooks.start("on_predict_start")
                hooks.start("on_predict_epoch_start")
                outputs = self._run_loaders(loaders, lengths, limits, return_predictions)
                hooks.end("on_predict_epoch_end")
                hooks.end("on_predict_end")
        finally:
            modes.restore()
        return outputs

    def _run_loaders(
        self,
        loaders: list[Any],
        lengths: list[int | float],
        limits: list[int | float],
        keep: bool,
    ) -> list[list[Any]]:
        step = step_caller(
            self.strategy.step_function("predict_step"), self.strategy.module.predict_step
        )
        to_device = self.transfer
        precision = self.precision
        forward_context = precision.forward_context if precision.has_forward_context else None
        several = len(loaders) > 1
        batch_start, batch_end = self.hooks.batch_events("predict", several)
        epoch = self.progress.current_epoch
        all_outputs: list[list[Any]] = []
        for dl_idx, loader in enumerate(loaders):
            outputs: list[Any] = []
            extra = (dl_idx,) if several else ()
            for batch_idx, batch in enumerate(
                epoch_batches(loader, epoch, lengths[dl_idx], limits[dl_idx])
            ):
                if to_device is not None:
                    batch = to_device(batch, dl_idx)
                batch_start(batch, batch_idx, dl_idx)
                if forward_context is None:
                    out = step(batch, batch_idx, *extra)
                else:
                    with forward_context():
                        out = step(batch, batch_idx, *extra)
                if keep:
                    outputs.append(out)
                batch_end(out, batch, batch_idx, dl_idx)
            all_outputs.append(outputs)
        return all_outputs
