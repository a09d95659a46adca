"""The fit loop, read top to bottom as the story of a training run:

``run`` (epochs) → ``run_epoch`` (batches) → ``_automatic_step`` (forward, backward) →
``_optimizer_step`` (clip, step, zero_grad, schedulers) → ``_validate``.

Everything a step would otherwise re-decide (which hooks exist, whether batches move,
whether gradients are clipped, which schedulers step per step) is decided once in
``_prepare``. Logged values are read back to the host only at flush points.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from ember.trainer.checkpoint.rng import restore_rng_state
from ember.trainer.data import Lookahead
from ember.trainer.errors import MisconfigurationError, NonFiniteLossError
from ember.trainer.loops.evaluation import EvaluationLoop
from ember.trainer.loops.module_hooks import detached
from ember.trainer.loops.steps import step_caller
from ember.trainer.results import closest_metric, to_host
from ember.trainer.state import RunningStage
from torch import Tensor

if TYPE_CHECKING:
    from ember.trainer.optim import LRSchedulerConfig
    from ember.trainer.trainer import Trainer

log = logging.getLogger("ember.trainer")

#: losses kept for the non-finite check before one is forced (bounds memory when
#: ``log_every_n_steps`` is large)
_LOSS_CHECK_MAX = 1024


def _needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` must be given a closure (LBFGS re-evaluates the loss)."""
    try:
        param = inspect.signature(optimizer.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is inspect.Parameter.empty


class ManualOptimizer:
    """What ``self.optimizers()`` returns in manual optimization: the optimizer, whose
    ``step()`` also fires ``on_before_optimizer_step`` and counts toward ``global_step``."""

    def __init__(self, optimizer: torch.optim.Optimizer, trainer: Trainer) -> None:
        self.optimizer = optimizer
        self._trainer = trainer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"ManualOptimizer({self.optimizer!r})"

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Step the optimizer (through the precision mode) and count the step."""
        t = self._trainer
        t._hooks.on_before_optimizer_step(t, t._module, self.optimizer)
        hook = t._module_hooks.on_before_optimizer_step
        if hook is not None:
            hook(self.optimizer)
        result = t.precision_plugin.optimizer_step(self.optimizer, closure)
        t._progress.global_step += 1
        return result

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients, firing ``on_before_zero_grad`` first."""
        t = self._trainer
        t._hooks.on_before_zero_grad(t, t._module, self.optimizer)
        hook = t._module_hooks.on_before_zero_grad
        if hook is not None:
            hook(self.optimizer)
        self.optimizer.zero_grad(set_to_none=set_to_none)


class FitLoop:
    """Epochs of training batches, with validation at the configured points."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.val_loop = EvaluationLoop(trainer, RunningStage.VALIDATING)
        #: detached losses since the last non-finite check, and where each came from
        self.losses: list[Tensor] = []
        self.loss_steps: list[tuple[int, int]] = []
        self._warned_min = False
        #: the random state of a checkpoint being resumed; ``run_epoch`` restores it at the
        #: point matching where it was captured, after everything a resume adds
        #: (on_fit_start, the sanity check, the epoch's start hooks)
        self.resume_rng_state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        """Train until ``max_epochs``, ``max_steps``, ``max_time`` or ``should_stop``."""
        t = self.trainer
        module = t._module
        mh = t._module_hooks
        self._prepare()
        results = t._train_results
        results.sync = t.strategy.reduce
        results.reset()
        t._activate(results, RunningStage.TRAINING)
        results.set_phase("epoch")
        t._hooks.on_train_start(t, module)
        if mh.on_train_start is not None:
            mh.on_train_start()
        while not self._done():
            self.run_epoch()
        if mh.on_train_end is not None:
            mh.on_train_end()
        t._hooks.on_train_end(t, module)

    def _prepare(self) -> None:
        """Decide once what every step would otherwise decide again."""
        t = self.trainer
        module = t._module
        mh = t._module_hooks
        precision = t.precision_plugin
        self.automatic = module.automatic_optimization
        self.optimizer = t.optimizers[0] if t.optimizers else None
        if self.automatic and self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        self.accumulate = t.accumulate_grad_batches
        self.closure_required = self.optimizer is not None and _needs_closure(self.optimizer)
        if self.closure_required and self.accumulate > 1:
            raise MisconfigurationError(
                f"{type(self.optimizer).__name__} re-evaluates the loss through a closure, "
                "which cannot be combined with accumulate_grad_batches > 1: set "
                "accumulate_grad_batches=1"
            )
        self.clip = bool(t.gradient_clip_val)
        self.step_schedulers = [c for c in t.lr_scheduler_configs if c.interval == "step"]
        self.forward_context = precision.forward_context if precision.has_forward_context else None
        self.backward = mh.backward if mh.backward is not None else precision.backward
        self.training_step = step_caller(module.training_step)
        self.need_outputs = bool(
            t._hooks.implemented("on_train_batch_end")
            or mh.on_train_batch_end is not None
            or mh.training_epoch_end is not None
        )
        self.max_steps = t.max_steps if t.max_steps >= 0 else math.inf
        self.deadline = (
            time.monotonic() + t.max_time.total_seconds() if t.max_time is not None else None
        )
        #: a time-based val_check_interval validates once this much training time passed
        self.val_seconds = t._val_check_seconds
        self.last_validation = time.monotonic()
        every = t.log_every_n_steps
        self.flush_every = every if every > 0 else math.inf
        self.next_flush = self._next_flush_after(t._progress.global_step)
        self.losses.clear()
        self.loss_steps.clear()

    def _next_flush_after(self, step: int) -> float:
        every = self.flush_every
        return (step // every + 1) * every if every != math.inf else math.inf

    def _done(self) -> bool:
        t = self.trainer
        progress = t._progress
        if progress.global_step >= self.max_steps:
            return True
        if t.max_epochs != -1 and progress.current_epoch >= t.max_epochs:
            return True
        if t.num_training_batches == 0:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        return bool(t.should_stop and self._can_stop())

    def _can_stop(self) -> bool:
        """Whether ``should_stop`` may end training yet (``min_epochs``/``min_steps`` met)."""
        t = self.trainer
        progress = t._progress
        if progress.current_epoch >= t.min_epochs and progress.global_step >= t.min_steps:
            return True
        if not self._warned_min:
            self._warned_min = True
            log.info(
                "Training was asked to stop, but min_epochs=%s / min_steps=%s are not reached "
                "yet; training continues until they are.",
                t.min_epochs,
                t.min_steps,
            )
        return False

    # ------------------------------------------------------------------ one epoch
    def run_epoch(self) -> None:
        """One pass over the training batches, then the epoch-end hooks and schedulers."""
        t = self.trainer
        module = t._module
        hooks = t._hooks
        mh = t._module_hooks
        progress = t._progress
        epoch = progress.current_epoch
        if t._reload_due("train", epoch):
            t._load_train_dataloader()

        results = t._train_results
        t._activate(results, RunningStage.TRAINING)
        results.set_phase("epoch")
        hooks.on_train_epoch_start(t, module)
        if mh.on_train_epoch_start is not None:
            mh.on_train_epoch_start()
        # a callback (GradientAccumulationScheduler) may change it at each epoch start
        self.accumulate = t.accumulate_grad_batches
        results.set_phase("step")

        n = t.num_training_batches
        loader = t._train_loader
        loader.set_epoch(epoch)
        # a resumed epoch continues after the batches its checkpoint had consumed
        skip = progress.batch_idx = loader.batches_consumed
        # a resume restores the random state where the checkpoint was taken: before this
        # epoch's iteration starts (it draws the worker seed and the shuffling order) if the
        # checkpoint preceded it, just after if the interrupted run had started it
        resume_rng, self.resume_rng_state = self.resume_rng_state, None
        if resume_rng is not None and not skip:
            restore_rng_state(resume_rng)
        batches = iter(loader)
        if resume_rng is not None and skip:
            restore_rng_state(resume_rng)
        if n < t._train_length:
            batches = itertools.islice(batches, max(int(n) - skip, 0))
        lookahead = Lookahead(batches) if math.isinf(t._train_length) else None
        has_val = t._validation_enabled() and (
            t.check_val_every_n_epoch is None or (epoch + 1) % t.check_val_every_n_epoch == 0
        )
        val_every = t.val_check_batch
        val_seconds = self.val_seconds
        val_in_loop = has_val and (val_seconds is not None or not math.isinf(val_every))
        val_across_epochs = t.check_val_every_n_epoch is None

        step = self._automatic_step if self.automatic else self._manual_step
        to_device = t._batch_transfer
        batch_start = hooks.on_train_batch_start
        batch_end = hooks.on_train_batch_end
        m_batch_start = mh.on_train_batch_start
        m_batch_end = mh.on_train_batch_end
        collect = mh.training_epoch_end is not None
        need_outputs = self.need_outputs
        consumed = loader.advance
        preemption = t._preemption
        solo = t.world_size == 1
        outputs: list[Any] = []
        max_steps = self.max_steps
        deadline = self.deadline
        stopped = False
        if (
            skip
            and val_in_loop
            and progress.validated_at != progress.total_batches
            and (progress.total_batches if val_across_epochs else skip) % val_every == 0
        ):
            # resumed from a checkpoint saved after a batch but before its validation
            self._validate()

        for batch_idx, batch in enumerate(lookahead if lookahead is not None else batches, skip):
            if to_device is not None:
                batch = to_device(batch, 0)
            results.batch = batch
            results.batch_size = None
            is_last = lookahead.exhausted if lookahead is not None else batch_idx + 1 == n
            t._is_last_batch = is_last
            batch_start(t, module, batch, batch_idx)
            if m_batch_start is not None and m_batch_start(batch, batch_idx) == -1:
                stopped = True
                break
            out = step(batch, batch_idx, is_last)
            # counted once done, so a checkpoint saved from here on resumes after it
            progress.batch_idx = batch_idx + 1
            progress.total_batches += 1
            consumed()
            if need_outputs:
                out = self._outputs_for_hooks(out)
                if collect and out is not None:
                    outputs.append(out)
            if m_batch_end is not None:
                m_batch_end(out, batch, batch_idx)
            batch_end(t, module, out, batch, batch_idx)
            if progress.global_step >= self.next_flush:
                self._flush_step_metrics()
            # a signal only set the flag; here, between steps, the state is consistent
            if (
                preemption.requested
                if solo
                else t.strategy.reduce_boolean_decision(preemption.requested, all=False)
            ):
                t._preempt()
            if val_in_loop:
                if val_seconds is not None:
                    due = time.monotonic() - self.last_validation >= val_seconds
                else:
                    counted = progress.total_batches if val_across_epochs else batch_idx + 1
                    due = counted % val_every == 0
                if due:
                    self._validate()
            if (
                progress.global_step >= max_steps
                or (t.should_stop and self._can_stop())
                or (deadline is not None and time.monotonic() >= deadline)
            ):
                stopped = True
                break

        if has_val and not val_in_loop and not stopped:
            self._validate()
        self._end_epoch(outputs if collect else None)

    def _end_epoch(self, outputs: list[Any] | None) -> None:
        """Epoch-end hooks, the epoch's metrics, then the per-epoch schedulers."""
        t = self.trainer
        module = t._module
        mh = t._module_hooks
        progress = t._progress
        results = t._train_results
        results.set_phase("epoch")
        results.epoch_end_reached = True
        if outputs is not None:
            module.training_epoch_end(outputs)
        if mh.on_train_epoch_end is not None:
            mh.on_train_epoch_end()
        self._flush_epoch_metrics()
        t._hooks.on_train_epoch_end(t, module)
        self._update_schedulers("epoch")
        t._merge_views(results)
        results.reset()
        progress.current_epoch += 1
        progress.batch_idx = 0

    # ------------------------------------------------------------------ one batch
    def _automatic_step(self, batch: Any, batch_idx: int, is_last: bool) -> Any:
        """Forward and backward; the optimizer steps every ``accumulate_grad_batches``."""
        if self.closure_required:
            return self._closure_step(batch, batch_idx)
        if self.forward_context is None:
            out = self.training_step(batch, batch_idx)
        else:
            with self.forward_context():
                out = self.training_step(batch, batch_idx)
        loss = self._loss_of(out)
        if loss is None:
            return out
        self._backward(loss, batch_idx)
        if self.accumulate == 1 or is_last or (batch_idx + 1) % self.accumulate == 0:
            self._optimizer_step(batch_idx, loss)
        return out

    def _loss_of(self, out: Any) -> Tensor | None:
        if isinstance(out, Tensor):
            return out
        if out is None:
            return None
        if isinstance(out, Mapping):
            if "loss" not in out:
                raise MisconfigurationError(
                    "training_step returned a dict without a 'loss' key (keys: "
                    f"{', '.join(map(repr, out))}): add the loss under 'loss'"
                )
            return out["loss"]
        raise MisconfigurationError(
            f"training_step returned {type(out).__name__}: return the loss tensor, a dict "
            "with a 'loss' key, or None to skip the optimizer step"
        )

    def _backward(self, loss: Tensor, batch_idx: int) -> None:
        t = self.trainer
        module = t._module
        mh = t._module_hooks
        self.losses.append(loss.detach())
        self.loss_steps.append((batch_idx, t._progress.global_step))
        if self.accumulate > 1:
            loss = loss / self.accumulate
        t._hooks.on_before_backward(t, module, loss)
        if mh.on_before_backward is not None:
            mh.on_before_backward(loss)
        self.backward(loss)
        if mh.on_after_backward is not None:
            mh.on_after_backward()
        t._hooks.on_after_backward(t, module)
        if t.detect_anomaly or len(self.losses) >= _LOSS_CHECK_MAX:
            self._check_losses(to_host({}, self._loss_check())[1])

    def _optimizer_step(self, batch_idx: int, loss: Tensor | None) -> None:
        """Clip, step, zero the gradients, count the step and step per-step schedulers."""
        t = self.trainer
        module = t._module
        mh = t._module_hooks
        optimizer = self.optimizer
        t._hooks.on_before_optimizer_step(t, module, optimizer)
        if mh.on_before_optimizer_step is not None:
            mh.on_before_optimizer_step(optimizer)
        if self.clip:
            t.precision_plugin.unscale_gradients(optimizer)
            if mh.configure_gradient_clipping is not None:
                module.configure_gradient_clipping(
                    optimizer, t.gradient_clip_val, t.gradient_clip_algorithm
                )
            else:
                t._clip_gradients(optimizer)
        if mh.optimizer_step is not None:
            module.optimizer_step(t.current_epoch, batch_idx, optimizer, lambda: loss)
        else:
            t.precision_plugin.optimizer_step(optimizer)
        t._hooks.on_before_zero_grad(t, module, optimizer)
        if mh.on_before_zero_grad is not None:
            mh.on_before_zero_grad(optimizer)
        if mh.optimizer_zero_grad is not None:
            module.optimizer_zero_grad(t.current_epoch, batch_idx, optimizer)
        else:
            optimizer.zero_grad(set_to_none=True)
        t._progress.global_step += 1
        if self.step_schedulers:
            self._update_schedulers("step")

    def _closure_step(self, batch: Any, batch_idx: int) -> Any:
        """An optimizer that re-evaluates the loss (LBFGS) runs forward and backward itself."""
        t = self.trainer
        module = t._module
        mh = t._module_hooks
        optimizer = self.optimizer
        last: list[Any] = [None]

        def closure() -> Tensor | None:
            if self.forward_context is None:
                out = self.training_step(batch, batch_idx)
            else:
                with self.forward_context():
                    out = self.training_step(batch, batch_idx)
            last[0] = out
            loss = self._loss_of(out)
            if loss is None:
                return None
            optimizer.zero_grad(set_to_none=True)
            self._backward(loss, batch_idx)
            t._hooks.on_before_optimizer_step(t, module, optimizer)
            if mh.on_before_optimizer_step is not None:
                mh.on_before_optimizer_step(optimizer)
            if self.clip:
                t._clip_gradients(optimizer)
            return loss

        t.precision_plugin.optimizer_step(optimizer, closure)
        if last[0] is not None:
            t._hooks.on_before_zero_grad(t, module, optimizer)
            if mh.on_before_zero_grad is not None:
                mh.on_before_zero_grad(optimizer)
            optimizer.zero_grad(set_to_none=True)
            t._progress.global_step += 1
            if self.step_schedulers:
                self._update_schedulers("step")
        return last[0]

    def _manual_step(self, batch: Any, batch_idx: int, is_last: bool) -> Any:
        """Manual optimization: ``training_step`` does backward and steps itself."""
        if self.forward_context is None:
            out = self.training_step(batch, batch_idx)
        else:
            with self.forward_context():
                out = self.training_step(batch, batch_idx)
        if out is not None and not isinstance(out, (Tensor, Mapping)):
            raise MisconfigurationError(
                f"training_step returned {type(out).__name__}: in manual optimization return "
                "None, a tensor or a dict"
            )
        return out

    def _outputs_for_hooks(self, out: Any) -> Any:
        """What ``on_train_batch_end`` and ``training_epoch_end`` receive: a dict with the
        detached ``loss`` (Lightning's shape), or the detached output in manual mode."""
        if out is None:
            return None
        if isinstance(out, Tensor):
            return {"loss": out.detach()} if self.automatic else out.detach()
        return detached(out)

    # ------------------------------------------------------------------ schedulers
    def _update_schedulers(self, interval: str) -> None:
        """Step the schedulers of ``interval`` that are due (plateau ones with their metric)."""
        t = self.trainer
        if not self.automatic:
            return
        counter = t._progress.global_step if interval == "step" else t._progress.current_epoch + 1
        configs: list[LRSchedulerConfig] = (
            self.step_schedulers if interval == "step" else t.lr_scheduler_configs
        )
        for config in configs:
            if config.interval != interval or counter % config.frequency:
                continue
            metric = None
            if config.reduce_on_plateau:
                metrics = t.callback_metrics
                metric = metrics.get(config.monitor)  # type: ignore[arg-type]
                if metric is None:
                    if config.strict:
                        raise MisconfigurationError(
                            f"ReduceLROnPlateau monitors {config.monitor!r}, which was not "
                            f"logged.{closest_metric(config.monitor or '', metrics)} Available "
                            f"metrics: {', '.join(sorted(metrics)) or 'none'}. Log it with "
                            f'self.log({config.monitor!r}, ...), or set "strict": False in the '
                            "lr_scheduler dict to skip steps where it is missing"
                        )
                    continue
            if t._module_hooks.lr_scheduler_step is not None:
                t._module.lr_scheduler_step(config.scheduler, metric)
            elif metric is None:
                config.scheduler.step()
            else:
                config.scheduler.step(metric)

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        """Run the validation loop in the middle of training, then resume training."""
        t = self.trainer
        if t._reload_due("val", t.current_epoch):
            t._load_val_dataloaders()
        if not t._val_loaders:
            return
        self.val_loop.run(t._val_loaders, t._val_lengths, t.num_val_batches)
        t._progress.validated_at = t._progress.total_batches
        self.last_validation = time.monotonic()

    # ------------------------------------------------------------------ metrics
    def _loss_check(self) -> list[Tensor]:
        """A tensor that is 1 when every kept loss is finite (read with the metrics)."""
        if not self.losses:
            return []
        return [torch.isfinite(torch.stack(self.losses)).all()]

    def _check_losses(self, flags: list[float]) -> None:
        if flags and not flags[0]:
            finite = torch.isfinite(torch.stack(self.losses)).tolist()
            for ok, (batch_idx, step), loss in zip(
                finite, self.loss_steps, self.losses, strict=True
            ):
                if not ok:
                    raise NonFiniteLossError(self._nonfinite_message(float(loss), batch_idx, step))
        self.losses.clear()
        self.loss_steps.clear()

    def _nonfinite_message(self, value: float, batch_idx: int, step: int) -> str:
        t = self.trainer
        msg = (
            f"training_step returned a loss of {value} at epoch {t.current_epoch}, batch "
            f"{batch_idx} (global step {step}). Look for a too-high learning rate, bad "
            "inputs, or a log/division of zero"
        )
        if t.detect_anomaly:
            return msg + "."
        return (
            msg + "; Trainer(detect_anomaly=True) makes torch name the operation that produced it."
        )

    def _flush_step_metrics(self) -> None:
        """Every ``log_every_n_steps``: publish step values, check the losses; one transfer."""
        t = self.trainer
        values, flags = to_host(t._train_results.step_metrics(), self._loss_check())
        if values:
            t._emit(values)
        self._check_losses(flags)
        self.next_flush = self._next_flush_after(t._progress.global_step)

    def _flush_epoch_metrics(self) -> None:
        """At epoch end: reduce and publish epoch values, check the losses; one transfer."""
        t = self.trainer
        values, flags = to_host(t._train_results.finish_epoch(), self._loss_check())
        if values:
            t._emit(values)
        self._check_losses(flags)
