"""The few lines printed when ``fit`` ends: why training stopped, the best checkpoint and
its score, the run folder, and what each tracker received.

Printed on global rank zero only, unless ``Trainer(enable_fit_summary=False)`` (by default
the summary follows ``enable_progress_bar``: a run without a bar stays quiet).
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta
from typing import Any

from ember.trainer.callbacks.timer import Timer
from ember.trainer.checkpoint.preemption import Preempted


def fit_summary(
    trainer: Any, outcome: str, error: BaseException | None, report: Any | None, started: float
) -> str:
    """The summary of the fit that just ended with ``outcome`` (``success``, ``failed``,
    ``interrupted``); ``report`` is the tracking run's delivery report, if there is a run;
    ``started`` the ``time.monotonic()`` training started at."""
    flags = trainer.flags
    progress = trainer.progress
    verb = {"success": "finished", "interrupted": "interrupted"}.get(outcome, "failed")
    epochs = _plural(progress.current_epoch, "epoch")
    steps = _plural(progress.global_step, "step")
    lines = [f"fit {verb}: {_stop_reason(trainer, outcome, error)}"]
    took = timedelta(seconds=round(time.monotonic() - started))
    lines.append(f"  trained {epochs}, {steps} in {took}")
    if flags.fast_dev_run:
        lines.append(
            "  fast_dev_run: logging and checkpointing are off, nothing was saved "
            "(remove fast_dev_run for a real run)"
        )
        return "\n".join(lines)
    lines += _checkpoint_lines(trainer)
    lines += _tracking_lines(trainer, report)
    return "\n".join(lines)


def _stop_reason(trainer: Any, outcome: str, error: BaseException | None) -> str:
    flags = trainer.flags
    if outcome == "interrupted":
        if isinstance(error, Preempted):
            return f"preempted ({error})"
        if isinstance(error, KeyboardInterrupt):
            return "interrupted by Ctrl-C (KeyboardInterrupt)"
        return f"interrupted by {type(error).__name__}"
    if outcome != "success":
        # the message is in the traceback below; repeating it here could repeat a secret
        return f"{type(error).__name__} raised (traceback below)"
    if flags.fast_dev_run:
        n = int(flags.fast_dev_run)
        return f"fast_dev_run={n} ran {_plural(n, 'batch', 'batches')} of each loader"
    progress = trainer.progress
    if trainer.should_stop:
        for callback in trainer.early_stopping_callbacks:
            message = getattr(callback, "stopping_reason_message", None)
            if message and getattr(callback, "stopped_epoch", None) is not None:
                message = message.replace(" Signaling Trainer to stop.", "")
                return f"early stopping on {callback.monitor!r}: {message}"
        for callback in trainer.callbacks:
            remaining = callback.time_remaining() if isinstance(callback, Timer) else None
            if remaining is not None and remaining <= 0:
                return "the Timer callback's time limit reached"
        return "trainer.should_stop was set (by the module or a callback)"
    loop = trainer.fit_loop
    deadline = getattr(loop, "deadline", None)
    if deadline is not None and time.monotonic() >= deadline:
        return f"max_time={flags.max_time} reached"
    if flags.max_steps >= 0 and progress.global_step >= flags.max_steps:
        return f"max_steps={flags.max_steps} reached"
    if flags.max_epochs != -1 and progress.current_epoch >= flags.max_epochs:
        return f"max_epochs={flags.max_epochs} reached"
    if trainer.num_training_batches == 0:
        return "no training batches (an empty training loader or limit_train_batches=0)"
    return "the training loop ended"


def _checkpoint_lines(trainer: Any) -> list[str]:
    checkpointers = trainer.checkpoint_callbacks
    if not checkpointers:
        return ["  checkpoints: off (enable_checkpointing=False)"]
    lines = []
    for callback in checkpointers:
        best = getattr(callback, "best_model_path", "")
        monitor = getattr(callback, "monitor", None)
        if not best:
            lines.append("  checkpoints: none saved")
        elif monitor:
            score = _number(getattr(callback, "best_model_score", None))
            shown = "" if score is None else f" ({monitor}={score:.6g})"
            lines.append(f"  best checkpoint: {_where(best)}{shown}")
        else:
            lines.append(f"  last checkpoint: {_where(best)}")
    return lines


def _tracking_lines(trainer: Any, report: Any | None) -> list[str]:
    if trainer.tracking.entries is None:
        return ["  tracking: off (logger=False)"]
    run_dir = trainer.tracking.run_dir
    if report is None or run_dir is None:
        return ["  tracking: no run was opened"]
    lines = [f"  run folder: {_where(run_dir)}"]
    if not report.loggers:
        lines.append("  trackers: none, the run journal is the only record")
    elif report.complete:
        received = "; ".join(
            f"{lg.label} received {_plural(lg.delivered, 'record')} "
            f"({lg.pending} pending, {lg.failed} failed)"
            for lg in report.loggers
        )
        lines.append(f"  trackers: {received}")
    else:
        lines += ["  " + line for line in str(report).splitlines()]
    return lines


def _plural(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    with contextlib.suppress(TypeError, ValueError, RuntimeError):
        return float(value)
    return None


def _where(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working folder when it is inside it."""
    where = os.fspath(path)
    with contextlib.suppress(ValueError):  # another drive on Windows
        relative = os.path.relpath(where)
        if not relative.startswith(".."):
            return relative
    return where
