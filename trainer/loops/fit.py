"""The fit loop, read top to bottom as the story of a training run:

``run`` (epochs) → ``run_epoch`` (batches) → ``Optimization.run_batch`` (forward,
backward, step) → ``_validate``.

The loop holds the parts it drives (the data schedule, the optimization path, the hook
dispatcher, the metrics, the strategy) and reads nothing private of the Trainer.
Everything a step would otherwise re-decide is decided once in ``_prepare``. Logged
values are read back to the host only at flush points.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
from ember.trainer.data import Lookahead
from ember.trainer.fit_checks import EpochCheck
from ember.trainer.flags import TrainerFlags
from ember.trainer.loops.evaluation import EvaluationLoop
from ember.trainer.loops.progress import LoopProgress
from ember.trainer.plugins import Strategy, detach_tensors
from ember.trainer.state import RunningStage, TrainerState
from torch import Tensor

if TYPE_CHECKING:
    from ember.trainer.checkpointing import Checkpointing
    from ember.trainer.data_schedule import DataSchedule
    from ember.trainer.hooks import HookDispatcher
    from ember.trainer.metrics import Metrics
    from ember.trainer.optimization import Optimization

log = logging.getLogger("ember.trainer")


class FitLoop:
    """Epochs of training batches, with validation at the configured points.

    :param stop_requested: whether ``trainer.should_stop`` is set.
    :param transfer: moves a batch to the device (``None`` when nothing would).
    """

    def __init__(
        self,
        *,
        flags: TrainerFlags,
        state: TrainerState,
        progress: LoopProgress,
        data: DataSchedule,
        optimization: Optimization,
        hooks: HookDispatcher,
        metrics: Metrics,
        strategy: Strategy,
        checkpointing: Checkpointing,
        val_loop: EvaluationLoop,
        transfer: Callable[[Any, int], Any] | None,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.flags = flags
        self.state = state
        self.progress = progress
        self.data = data
        self.optimization = optimization
        self.hooks = hooks
        self.metrics = metrics
        self.strategy = strategy
        self.checkpointing = checkpointing
        self.val_loop = val_loop
        self.transfer = transfer
        self.stop_requested = stop_requested
        self._warned_min = False

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        """Train until ``max_epochs``, ``max_steps``, ``max_time`` or ``should_stop``."""
        self._prepare()
        results = self.metrics.train_results
        results.sync = self.strategy.reduce
        # names and options are checked afresh: this fit's module may log other things
        results.clear()
        self._activate_training()
        resumed, self.checkpointing.resume_callback_metrics = (
            self.checkpointing.resume_callback_metrics,
            None,
        )
        if resumed:  # what the resumed run's monitors saw when the checkpoint was saved
            self.metrics.callback_metrics.update(resumed)
        self.hooks.start("on_train_start")
        if self.progress.epoch_ending:
            self._finish_saved_epoch_end()
        elif self.progress.batch_idx and self.stop_requested() and self._can_stop():
            # resumed inside an epoch whose run had been told to stop there: as it would
            # have, end that epoch (its end hooks run) without training on
            self._end_epoch(None)
        while not self._done():
            self.run_epoch()
        self.hooks.end("on_train_end")

    def _activate_training(self) -> None:
        results = self.metrics.train_results
        self.metrics.activate(results)
        self.state.stage = RunningStage.TRAINING
        results.set_phase("epoch")

    def _prepare(self) -> None:
        """Decide once what every step would otherwise decide again."""
        flags = self.flags
        self.optimization.prepare()
        mh = self.hooks.module_hooks
        self.need_outputs = bool(
            self.hooks.callbacks.implemented("on_train_batch_end")
            or mh.on_train_batch_end is not None
            or mh.training_epoch_end is not None
        )
        self.automatic = self.optimization.automatic
        self.epoch_check = EpochCheck(self.automatic)
        self.data_ran_dry = False
        self.max_steps = flags.max_steps if flags.max_steps >= 0 else math.inf
        self.deadline = (
            time.monotonic() + flags.max_time.total_seconds()
            if flags.max_time is not None
            else None
        )
        interval = flags.val_check_interval
        #: a time-based val_check_interval validates once this much training time passed
        self.val_seconds = interval.total_seconds() if isinstance(interval, timedelta) else None
        self.last_validation = time.monotonic()
        every = flags.log_every_n_steps
        self.flush_every = every if every > 0 else math.inf
        self.next_flush = self._next_flush_after(self.progress.global_step)
        # distributed runs agree on stopping and preemption every this many batches (a
        # collective per batch would cost as much as the gradient all-reduce itself)
        self.agree_every = every if every > 0 else 50

    def _next_flush_after(self, step: int) -> float:
        every = self.flush_every
        return (step // every + 1) * every if every != math.inf else math.inf

    def _done(self) -> bool:
        progress, flags = self.progress, self.flags
        if progress.global_step >= self.max_steps:
            return True
        if flags.max_epochs != -1 and progress.current_epoch >= flags.max_epochs:
            return True
        if self.data.num_training_batches == 0 or self.data_ran_dry:
            return True
        if self.strategy.world_size > 1:
            return self._agree(False)[1]
        return self._wants_to_stop()

    def _wants_to_stop(self) -> bool:
        """Whether this process wants to stop: ``should_stop`` (once allowed) or ``max_time``."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        return bool(self.stop_requested() and self._can_stop())

    def _agree(self, preempt: bool) -> tuple[bool, bool]:
        """In a distributed run, one collective settles whether any process was preempted
        and whether any wants to stop, so that every process leaves at the same batch."""
        flags = torch.tensor([float(preempt), float(self._wants_to_stop())])
        agreed = self.strategy.reduce(flags, "max").tolist()
        return bool(agreed[0]), bool(agreed[1])

    def _can_stop(self) -> bool:
        """Whether ``should_stop`` may end training yet (``min_epochs``/``min_steps`` met)."""
        progress, flags = self.progress, self.flags
        if progress.current_epoch >= flags.min_epochs and progress.global_step >= flags.min_steps:
            return True
        if not self._warned_min:
            self._warned_min = True
            log.info(
                "Training was asked to stop, but min_epochs=%s / min_steps=%s are not reached "
                "yet; training continues until they are.",
                flags.min_epochs,
                flags.min_steps,
            )
        return False

    # ------------------------------------------------------------------ one epoch
    def run_epoch(self) -> None:
        """One pass over the training batches, then the epoch-end hooks and schedulers."""
        data, progress, flags = self.data, self.progress, self.flags
        epoch = progress.current_epoch
        if data.reload_due("train", epoch):
            data.load_train()

        self._activate_training()
        results = self.metrics.train_results
        self.hooks.start("on_train_epoch_start")
        results.set_phase("step")

        n = data.num_training_batches
        loader = data.train_loader
        assert loader is not None
        loader.set_epoch(epoch)
        # a resumed epoch continues after the batches its checkpoint had consumed
        skip = progress.batch_idx = loader.batches_consumed
        # a resume restores the random state where the checkpoint was taken: before this
        # epoch's iteration starts (it draws the worker seed and the shuffling order) if the
        # checkpoint preceded it, just after if the interrupted run had started it
        checkpointing = self.checkpointing
        resume_rng, checkpointing.resume_rng_state = checkpointing.resume_rng_state, None
        if resume_rng is not None and not skip:
            checkpointing.restore_rng(resume_rng)
        batches = iter(loader)
        if resume_rng is not None and skip:
            checkpointing.restore_rng(resume_rng)
        if n < data.train_length:
            batches = itertools.islice(batches, max(int(n) - skip, 0))
        lookahead = Lookahead(batches) if math.isinf(data.train_length) else None
        has_val = data.validation_enabled and (
            flags.check_val_every_n_epoch is None
            or (epoch + 1) % flags.check_val_every_n_epoch == 0
        )
        val_every = data.val_check_batch
        val_seconds = self.val_seconds
        val_in_loop = has_val and (val_seconds is not None or not math.isinf(val_every))
        val_across_epochs = flags.check_val_every_n_epoch is None

        run_batch = self.optimization.run_batch
        to_device = self.transfer
        batch_start, batch_end = self.hooks.train_batch_events()
        collect = self.hooks.module_hooks.training_epoch_end is not None
        need_outputs = self.need_outputs
        consumed = loader.advance
        preemption = checkpointing.preemption
        strategy = self.strategy
        solo = strategy.world_size == 1
        stop_requested = self.stop_requested
        outputs: list[Any] = []
        max_steps = self.max_steps
        deadline = self.deadline
        stopped = False
        steps_before = progress.global_step
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
            progress.is_last_batch = is_last
            if batch_start(batch, batch_idx):
                stopped = True
                break
            out = run_batch(batch, batch_idx, is_last)
            # counted once done, so a checkpoint saved from here on resumes after it
            progress.batch_idx = batch_idx + 1
            progress.total_batches += 1
            consumed()
            if need_outputs:
                out = self._outputs_for_hooks(out)
                if collect and out is not None:
                    outputs.append(out)
            batch_end(out, batch, batch_idx)
            if progress.global_step >= self.next_flush:
                self._flush_step_metrics()
            # a signal only set the flag; here, between steps, the state is consistent
            if solo:
                preempted = preemption.requested
            elif progress.total_batches % self.agree_every == 0:
                preempted, stop_agreed = self._agree(preemption.requested)
            else:
                preempted = stop_agreed = False
            if preempted:
                checkpointing.preempt()
            if val_in_loop:
                if val_seconds is not None:
                    due = time.monotonic() - self.last_validation >= val_seconds
                    if not solo:  # clocks differ: every rank validates when any is due
                        due = strategy.reduce_boolean_decision(due, all=False)
                else:
                    counted = progress.total_batches if val_across_epochs else batch_idx + 1
                    due = counted % val_every == 0
                if due:
                    self._validate()
                    if not solo:
                        stop_agreed = self._agree(False)[1]
            if progress.global_step >= max_steps or (
                (stop_requested() and self._can_stop())
                or (deadline is not None and time.monotonic() >= deadline)
                if solo
                else stop_agreed
            ):
                stopped = True
                break

        if not stopped and self.epoch_check.epoch_ended(
            epoch, progress.batch_idx - skip, progress.global_step - steps_before, skip > 0
        ):
            stopped = self.data_ran_dry = True
        # (not again when resumed from a checkpoint its validation's end hooks saved)
        if (
            has_val
            and not val_in_loop
            and not stopped
            and progress.validated_at != progress.total_batches
        ):
            self._validate()
        self._end_epoch(outputs if collect else None)

    def _end_epoch(self, outputs: list[Any] | None) -> None:
        """Epoch-end hooks, the epoch's metrics, then the per-epoch schedulers."""
        results = self.metrics.train_results
        results.set_phase("epoch")
        results.epoch_end_reached = True
        # a checkpoint saved from here on resumes at the next epoch (see _finish_saved_epoch_end)
        self.progress.epoch_ending = 1
        if outputs is not None:
            self.hooks.module.training_epoch_end(outputs)
        self.hooks.module_end("on_train_epoch_end")
        self._flush_epoch_metrics()
        self.hooks.callbacks_end("on_train_epoch_end")
        self._flush_late_metrics()
        self.optimization.update_schedulers("epoch")
        self.metrics.merge_views(results)
        results.reset()
        self._next_epoch()

    def _next_epoch(self) -> None:
        progress = self.progress
        progress.current_epoch += 1
        progress.batch_idx = 0
        progress.epoch_ending = 0

    def _finish_saved_epoch_end(self) -> None:
        """Resumed from a checkpoint saved by an epoch's end hooks: those hooks ran before
        it was written, so only what follows them is left (the per-epoch schedulers, with
        the monitored values the checkpoint restored), then the next epoch starts."""
        self.optimization.update_schedulers("epoch")
        self._next_epoch()

    def _outputs_for_hooks(self, out: Any) -> Any:
        """What ``on_train_batch_end`` and ``training_epoch_end`` receive: a dict with the
        detached ``loss`` (Lightning's shape), or the detached output in manual mode."""
        if out is None:
            return None
        if isinstance(out, Tensor):
            return {"loss": out.detach()} if self.automatic else out.detach()
        return detach_tensors(out)

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        """Run the validation loop in the middle of training, then resume training."""
        data = self.data
        if data.reload_due("val", self.progress.current_epoch):
            data.load_val()
        if not data.val_loaders:
            return
        # before the loop: a checkpoint saved by validation's end hooks (ModelCheckpoint
        # after validation) must not run this validation again when resumed
        self.progress.validated_at = self.progress.total_batches
        self.val_loop.run(data.val_loaders, data.val_lengths, data.num_val_batches)
        self.last_validation = time.monotonic()

    # ------------------------------------------------------------------ metrics
    def _emit(self, values: dict[str, float]) -> None:
        self.metrics.publish(
            {**values, "epoch": float(self.progress.current_epoch)}, self.progress.global_step
        )

    def _flush_step_metrics(self) -> None:
        """Every ``log_every_n_steps``: publish step values, check the losses; one transfer."""
        optimization = self.optimization
        results = self.metrics.train_results
        values, flags = self.metrics.flush_to_host(
            results, results.step_metrics(), optimization.loss_check()
        )
        if values:
            self._emit(values)
        optimization.check_losses(flags)
        self.next_flush = self._next_flush_after(self.progress.global_step)

    def _flush_late_metrics(self) -> None:
        """What callbacks logged in ``on_train_epoch_end`` (they run after the epoch's
        flush, so that checkpointers see its reduced values): published at the same step.
        Costs nothing when they logged nothing."""
        late, _ = self.metrics.train_results.finish_late("on_train_epoch_end")
        if late:
            self._emit(self.metrics.flush_to_host(self.metrics.train_results, late)[0])

    def _flush_epoch_metrics(self) -> None:
        """At epoch end: reduce and publish epoch values, check the losses; one transfer."""
        optimization = self.optimization
        results = self.metrics.train_results
        values, flags = self.metrics.flush_to_host(
            results, results.finish_epoch(), optimization.loss_check()
        )
        if values:
            self._emit(values)
        optimization.check_losses(flags)
