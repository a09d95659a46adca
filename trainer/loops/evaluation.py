"""The evaluation loop: validation (inside fit, or ``trainer.validate``), the sanity
check, and ``trainer.test``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch
from ember.trainer.data import epoch_batches
from ember.trainer.loops.module_hooks import TrainingModes, detached
from ember.trainer.loops.steps import step_caller
from ember.trainer.results import ResultCollection, to_host
from ember.trainer.state import RunningStage

if TYPE_CHECKING:
    from ember.trainer.trainer import Trainer

_LOADER_SUFFIX = re.compile(r"/dataloader_idx_(\d+)")


class EvaluationLoop:
    """Runs ``validation_step`` or ``test_step`` over every loader once.

    :param stage: ``RunningStage.VALIDATING`` or ``RunningStage.TESTING``.
    """

    def __init__(self, trainer: Trainer, stage: RunningStage) -> None:
        self.trainer = trainer
        self.stage = stage
        self.prefix = "validation" if stage == RunningStage.VALIDATING else "test"
        self.results = ResultCollection(training=False)

    def run(
        self,
        loaders: list[Any],
        lengths: list[int | float],
        limits: list[int | float],
        *,
        sanity: bool = False,
    ) -> list[dict[str, float]]:
        """Evaluate every loader; return each loader's epoch metrics as floats."""
        t = self.trainer
        module = t._module
        hooks = t._hooks
        mh = t._module_hooks
        prefix = self.prefix
        results = self.results
        results.sync = t.strategy.reduce
        results.reset()
        previous_stage = t._state.stage
        previous_results = t._activate(
            results, RunningStage.SANITY_CHECKING if sanity else self.stage
        )
        results.set_phase("epoch")
        results.set_dataloader(None, False)

        modes = TrainingModes(module)
        getattr(module, f"on_{prefix}_model_eval")()
        grad_context = torch.inference_mode() if t.inference_mode else torch.no_grad()
        try:
            with grad_context:
                getattr(hooks, f"on_{prefix}_start")(t, module)
                _call(mh, f"on_{prefix}_start")
                getattr(hooks, f"on_{prefix}_epoch_start")(t, module)
                _call(mh, f"on_{prefix}_epoch_start")
                outputs = self._run_loaders(loaders, lengths, limits)
                results.set_phase("epoch")
                results.set_dataloader(None, False)
                results.epoch_end_reached = True
                epoch_end = getattr(mh, f"{prefix}_epoch_end")
                if epoch_end is not None:
                    epoch_end(outputs[0] if len(outputs) == 1 else outputs)
                _call(mh, f"on_{prefix}_epoch_end")
                metrics = self._finish_epoch(len(loaders), publish=not sanity)
                getattr(hooks, f"on_{prefix}_epoch_end")(t, module)
                _call(mh, f"on_{prefix}_end")
                getattr(hooks, f"on_{prefix}_end")(t, module)
                results.reset_metrics()
        finally:
            train_hook = getattr(mh, f"on_{prefix}_model_train")
            if train_hook is not None:
                train_hook()
            else:
                modes.restore()
            t._activate(previous_results, previous_stage, merge=not sanity)
        return metrics

    def _run_loaders(
        self, loaders: list[Any], lengths: list[int | float], limits: list[int | float]
    ) -> list[list[Any]]:
        t = self.trainer
        module = t._module
        mh = t._module_hooks
        hooks = t._hooks
        prefix = self.prefix
        results = self.results
        step = step_caller(getattr(module, f"{prefix}_step"))
        hook_start = getattr(hooks, f"on_{prefix}_batch_start")
        hook_end = getattr(hooks, f"on_{prefix}_batch_end")
        m_start = getattr(mh, f"on_{prefix}_batch_start")
        m_end = getattr(mh, f"on_{prefix}_batch_end")
        collect = getattr(mh, f"{prefix}_epoch_end") is not None
        to_device = t._batch_transfer
        forward_context = (
            t.precision_plugin.forward_context if t.precision_plugin.has_forward_context else None
        )
        several = len(loaders) > 1
        epoch = t.current_epoch
        all_outputs: list[list[Any]] = []
        results.set_phase("step")
        for dl_idx, loader in enumerate(loaders):
            results.set_dataloader(dl_idx, several)
            outputs: list[Any] = []
            extra = (dl_idx,) if several else ()
            batches = epoch_batches(loader, epoch, lengths[dl_idx], limits[dl_idx])
            for batch_idx, batch in enumerate(batches):
                if to_device is not None:
                    batch = to_device(batch, dl_idx)
                results.batch = batch
                results.batch_size = None
                hook_start(t, module, batch, batch_idx, dl_idx)
                if m_start is not None:
                    m_start(batch, batch_idx, *extra)
                if forward_context is None:
                    out = step(batch, batch_idx, *extra)
                else:
                    with forward_context():
                        out = step(batch, batch_idx, *extra)
                if collect:
                    outputs.append(detached(out))
                if m_end is not None:
                    m_end(out, batch, batch_idx, *extra)
                hook_end(t, module, out, batch, batch_idx, dl_idx)
            all_outputs.append(outputs)
        return all_outputs

    def _finish_epoch(self, num_loaders: int, publish: bool) -> list[dict[str, float]]:
        """Reduce, publish (one host transfer) and split the metrics per loader."""
        t = self.trainer
        results = self.results
        for_loggers = {**results.step_metrics(), **results.finish_epoch()}
        epoch_metrics = results.epoch_metrics()
        values, _ = to_host({**epoch_metrics, **for_loggers})
        if publish and for_loggers:
            t._emit({k: values[k] for k in for_loggers})
        per_loader: list[dict[str, float]] = [{} for _ in range(num_loaders)]
        for key in epoch_metrics:
            match = _LOADER_SUFFIX.search(key)
            if match is None:
                for metrics in per_loader:
                    metrics[key] = values[key]
            elif int(match.group(1)) < num_loaders:
                per_loader[int(match.group(1))][key] = values[key]
        return per_loader


def _call(mh: Any, name: str) -> None:
    hook = getattr(mh, name)
    if hook is not None:
        hook()
