"""The prediction loop: ``predict_step`` over every loader, outputs gathered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from ember.trainer.data import epoch_batches
from ember.trainer.loops.module_hooks import TrainingModes
from ember.trainer.loops.steps import step_caller

if TYPE_CHECKING:
    from ember.trainer.trainer import Trainer


class PredictLoop:
    """Runs ``predict_step`` over every loader once."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def run(
        self,
        loaders: list[Any],
        lengths: list[int | float],
        limits: list[int | float],
        return_predictions: bool,
    ) -> list[list[Any]]:
        """Predict every loader; return each loader's outputs (empty lists when not kept)."""
        t = self.trainer
        module = t._module
        hooks = t._hooks
        mh = t._module_hooks
        modes = TrainingModes(module)
        module.on_predict_model_eval()
        grad_context = torch.inference_mode() if t.inference_mode else torch.no_grad()
        try:
            with grad_context:
                hooks.on_predict_start(t, module)
                if mh.on_predict_start is not None:
                    mh.on_predict_start()
                hooks.on_predict_epoch_start(t, module)
                if mh.on_predict_epoch_start is not None:
                    mh.on_predict_epoch_start()
                outputs = self._run_loaders(loaders, lengths, limits, return_predictions)
                if mh.on_predict_epoch_end is not None:
                    mh.on_predict_epoch_end()
                hooks.on_predict_epoch_end(t, module)
                if mh.on_predict_end is not None:
                    mh.on_predict_end()
                hooks.on_predict_end(t, module)
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
        t = self.trainer
        module = t._module
        mh = t._module_hooks
        hooks = t._hooks
        step = step_caller(module.predict_step)
        to_device = t._batch_transfer
        precision = t.precision_plugin
        forward_context = precision.forward_context if precision.has_forward_context else None
        several = len(loaders) > 1
        all_outputs: list[list[Any]] = []
        for dl_idx, loader in enumerate(loaders):
            outputs: list[Any] = []
            extra = (dl_idx,) if several else ()
            for batch_idx, batch in enumerate(
                epoch_batches(loader, t.current_epoch, lengths[dl_idx], limits[dl_idx])
            ):
                if to_device is not None:
                    batch = to_device(batch, dl_idx)
                hooks.on_predict_batch_start(t, module, batch, batch_idx, dl_idx)
                if mh.on_predict_batch_start is not None:
                    mh.on_predict_batch_start(batch, batch_idx, *extra)
                if forward_context is None:
                    out = step(batch, batch_idx, *extra)
                else:
                    with forward_context():
                        out = step(batch, batch_idx, *extra)
                if keep:
                    outputs.append(out)
                if mh.on_predict_batch_end is not None:
                    mh.on_predict_batch_end(out, batch, batch_idx, *extra)
                hooks.on_predict_batch_end(t, module, out, batch, batch_idx, dl_idx)
            all_outputs.append(outputs)
        return all_outputs
