"""The evaluation loop: validation (inside fit, or ``trainer.validate``), the sanity
check, and ``trainer.test``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from ember.trainer.data import epoch_batches
from ember.trainer.hooks import TrainingModes, without_logging
from ember.trainer.loops.steps import step_caller
from ember.trainer.plugins import Precision, Strategy, detach_tensors
from ember.trainer.results import ResultCollection
from ember.trainer.state import RunningStage, TrainerState

if TYPE_CHECKING:
    from ember.trainer.hooks import HookDispatcher
    from ember.trainer.loops.progress import LoopProgress
    from ember.trainer.metrics import Metrics

_LOADER_SUFFIX = re.compile(r"/dataloader_idx_(\d+)")


class EvaluationLoop:
    """Runs ``validation_step`` or ``test_step`` over every loader once.

    :param stage: ``RunningStage.VALIDATING`` or ``RunningStage.TESTING``.
    :param transfer: moves a batch to the device (``None`` when nothing would).
    """

    def __init__(
        self,
        stage: RunningStage,
        *,
        state: TrainerState,
        progress: LoopProgress,
        hooks: HookDispatcher,
        metrics: Metrics,
        strategy: Strategy,
        precision: Precision,
        transfer: Callable[[Any, int], Any] | None,
        inference_mode: bool,
    ) -> None:
        self.stage = stage
        self.state = state
        self.progress = progress
        self.hooks = hooks
        self.metrics = metrics
        self.strategy = strategy
        self.precision = precision
        self.transfer = transfer
        self.inference_mode = inference_mode
        self.prefix = "validation" if stage == RunningStage.VALIDATING else "test"
        self.results = ResultCollection(training=False, stage=self.prefix)

    def run(
        self,
        loaders: list[Any],
        lengths: list[int | float],
        limits: list[int | float],
        *,
        sanity: bool = False,
    ) -> list[dict[str, float]]:
        """Evaluate every loader; return each loader's epoch metrics as floats."""
        hooks, prefix, results = self.hooks, self.prefix, self.results
        module = hooks.module
        results.sync = self.strategy.reduce
        results.reset()
        previous_stage = self.state.stage
        previous_results = self.metrics.activate(results)
        self.state.stage = RunningStage.SANITY_CHECKING if sanity else self.stage
        results.set_phase("epoch")
        results.set_dataloader(None, False)

        modes = TrainingModes(module)
        without_logging(
            module, f"on_{prefix}_model_eval", getattr(module, f"on_{prefix}_model_eval")
        )
        grad_context = torch.inference_mode() if self.inference_mode else torch.no_grad()
        try:
            with grad_context:
                hooks.start(f"on_{prefix}_start")
                hooks.start(f"on_{prefix}_epoch_start")
                outputs = self._run_loaders(loaders, lengths, limits)
                results.set_phase("epoch")
                results.set_dataloader(None, False)
                results.epoch_end_reached = True
                epoch_end = getattr(hooks.module_hooks, f"{prefix}_epoch_end")
                if epoch_end is not None:
                    epoch_end(outputs[0] if len(outputs) == 1 else outputs)
                hooks.module_end(f"on_{prefix}_epoch_end")
                metrics = self._finish_epoch(len(loaders), publish=not sanity)
                hooks.callbacks_end(f"on_{prefix}_epoch_end")
                self._finish_late(metrics, publish=not sanity)
                hooks.end(f"on_{prefix}_end")
                results.reset_metrics()
        finally:
            train_hook = getattr(hooks.module_hooks, f"on_{prefix}_model_train")
            if train_hook is not None:
                train_hook()
            else:
                modes.restore()
            self.metrics.activate(previous_results, merge=not sanity)
            self.state.stage = previous_stage
        return metrics

    def _run_loaders(
        self, loaders: list[Any], lengths: list[int | float], limits: list[int | float]
    ) -> list[list[Any]]:
        prefix, results = self.prefix, self.results
        step = step_caller(
            self.strategy.step_function(f"{prefix}_step"),
            getattr(self.strategy.module, f"{prefix}_step"),
        )
        collect = getattr(self.hooks.module_hooks, f"{prefix}_epoch_end") is not None
        to_device = self.transfer
        precision = self.precision
        forward_context = precision.forward_context if precision.has_forward_context else None
        several = len(loaders) > 1
        batch_start, batch_end = self.hooks.batch_events(prefix, several)
        epoch = self.progress.current_epoch
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
                batch_start(batch, batch_idx, dl_idx)
                if forward_context is None:
                    out = step(batch, batch_idx, *extra)
                else:
                    with forward_context():
                        out = step(batch, batch_idx, *extra)
                if collect:
                    outputs.append(detach_tensors(out))
                batch_end(out, batch, batch_idx, dl_idx)
            all_outputs.append(outputs)
        return all_outputs

    def _finish_epoch(self, num_loaders: int, publish: bool) -> list[dict[str, float]]:
        """Reduce, publish (one host transfer) and split the metrics per loader."""
        results = self.results
        for_loggers = {**results.step_metrics(), **results.finish_epoch()}
        epoch_metrics = results.epoch_metrics()
        values, _ = self.metrics.flush_to_host(results, {**epoch_metrics, **for_loggers})
        if publish and for_loggers:
            self.metrics.publish(
                {
                    **{k: values[k] for k in for_loggers},
                    "epoch": float(self.progress.current_epoch),
                },
                self.progress.global_step,
            )
        per_loader: list[dict[str, float]] = [{} for _ in range(num_loaders)]
        _split_by_loader(per_loader, {key: values[key] for key in epoch_metrics})
        return per_loader

    def _finish_late(self, per_loader: list[dict[str, float]], publish: bool) -> None:
        """What callbacks logged in their epoch-end hook, after the flush: published at
        the same step and added to the returned metrics (nothing read if they logged
        nothing)."""
        for_loggers, names = self.results.finish_late(f"on_{self.prefix}_epoch_end")
        if not names:
            return
        epoch_metrics = self.results.epoch_metrics()
        values, _ = self.metrics.flush_to_host(
            self.results, {key: epoch_metrics[key] for key in names}
        )
        if publish and for_loggers:
            self.metrics.publish(
                {
                    **{k: values[k] for k in for_loggers},
                    "epoch": float(self.progress.current_epoch),
                },
                self.progress.global_step,
            )
        _split_by_loader(per_loader, {key: values[key] for key in names})


def _split_by_loader(per_loader: list[dict[str, float]], values: dict[str, float]) -> None:
    """Add each value to its loader's metrics (by ``/dataloader_idx_N``; to all without)."""
    for key, value in values.items():
        match = _LOADER_SUFFIX.search(key)
        if match is None:
            for metrics in per_loader:
                metrics[key] = value
        elif int(match.group(1)) < len(per_loader):
            per_loader[int(match.group(1))][key] = value
