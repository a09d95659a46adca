"""Time each stage of a run and stop training when a time budget is spent."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

from ember.trainer.callback import Callback

STAGES = ("train", "validate", "test", "predict")
_DURATION_RE = re.compile(r"(\d+):(\d\d):(\d\d):(\d\d)")


def parse_duration(duration: str | timedelta | dict[str, float] | None) -> float | None:
    """Seconds in ``duration``: ``"DD:HH:MM:SS"``, a ``timedelta``, or a dict of
    ``timedelta`` arguments (``{"hours": 1, "minutes": 30}``)."""
    if duration is None:
        return None
    if isinstance(duration, str):
        match = _DURATION_RE.fullmatch(duration.strip())
        if not match:
            raise ValueError(
                f"Timer(duration={duration!r}) is not a duration: write days, hours, minutes "
                "and seconds as 'DD:HH:MM:SS', e.g. '00:12:00:00' for twelve hours"
            )
        days, hours, minutes, seconds = map(int, match.groups())
        duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    elif isinstance(duration, dict):
        try:
            duration = timedelta(**duration)
        except TypeError as exc:
            raise ValueError(
                f"Timer(duration={duration!r}): the keys must be timedelta arguments "
                "(weeks, days, hours, minutes, seconds, milliseconds, microseconds)"
            ) from exc
    if not isinstance(duration, timedelta):
        raise TypeError(
            "Timer(duration=...) takes 'DD:HH:MM:SS', a datetime.timedelta or a dict such as "
            f"{{'hours': 1}}; got {type(duration).__name__}"
        )
    return duration.total_seconds()


class Timer(Callback):
    """Measure the time spent in each stage and stop training after ``duration``.

    :param duration: the training time budget: ``"DD:HH:MM:SS"``, a ``timedelta``, or a
        dict such as ``{"hours": 1}``; ``None`` only measures.
    :param interval: check the budget after every training ``"step"`` or every ``"epoch"``.
    :param verbose: print a line when the budget is spent.

    ``start_time``, ``end_time``, ``time_elapsed`` and ``time_remaining`` take a stage
    (``"train"``, ``"validate"``, ``"test"``, ``"predict"``). Training time survives a
    restart: the checkpointed elapsed time counts against the budget of the resumed run.
    """

    def __init__(
        self,
        duration: str | timedelta | dict[str, float] | None = None,
        interval: str = "step",
        verbose: bool = True,
    ) -> None:
        if interval not in ("step", "epoch"):
            raise ValueError(f"Timer(interval=...) must be 'step' or 'epoch', got {interval!r}")
        self._duration = parse_duration(duration)
        self._interval = interval
        self._verbose = verbose
        self._start: dict[str, float | None] = dict.fromkeys(STAGES)
        self._end: dict[str, float | None] = dict.fromkeys(STAGES)
        self._offset = 0.0

    @staticmethod
    def _stage(stage: str) -> str:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
        return stage

    def start_time(self, stage: str = "train") -> float | None:
        """When ``stage`` last started (``time.monotonic()`` seconds), or ``None``."""
        return self._start[self._stage(stage)]

    def end_time(self, stage: str = "train") -> float | None:
        """When ``stage`` last ended (``time.monotonic()`` seconds), or ``None``."""
        return self._end[self._stage(stage)]

    def time_elapsed(self, stage: str = "train") -> float:
        """Seconds spent in ``stage`` (so far, while it runs); training includes the time
        restored from a checkpoint."""
        start, end = self._start[self._stage(stage)], self._end[stage]
        offset = self._offset if stage == "train" else 0.0
        if start is None:
            return offset
        return (time.monotonic() if end is None else end) - start + offset

    def time_remaining(self, stage: str = "train") -> float | None:
        """Seconds left of the budget, or ``None`` without a budget."""
        if self._duration is None:
            return None
        return self._duration - self.time_elapsed(stage)

    def _mark_start(self, stage: str) -> None:
        self._start[stage] = time.monotonic()
        self._end[stage] = None

    def _mark_end(self, stage: str) -> None:
        self._end[stage] = time.monotonic()

    def on_train_start(self, trainer: Any, module: Any) -> None:
        self._mark_start("train")

    def on_train_end(self, trainer: Any, module: Any) -> None:
        self._mark_end("train")

    def on_validation_start(self, trainer: Any, module: Any) -> None:
        self._mark_start("validate")

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        self._mark_end("validate")

    def on_test_start(self, trainer: Any, module: Any) -> None:
        self._mark_start("test")

    def on_test_end(self, trainer: Any, module: Any) -> None:
        self._mark_end("test")

    def on_predict_start(self, trainer: Any, module: Any) -> None:
        self._mark_start("predict")

    def on_predict_end(self, trainer: Any, module: Any) -> None:
        self._mark_end("predict")

    def on_fit_start(self, trainer: Any, module: Any) -> None:
        # a budget restored from a checkpoint may already be spent
        if self._duration is not None:
            self._check(trainer)

    def on_train_batch_end(self, trainer: Any) -> None:
        if self._interval == "step" and self._duration is not None:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        if self._interval == "epoch" and self._duration is not None:
            self._check(trainer)

    def _check(self, trainer: Any) -> None:
        should_stop = self.time_elapsed("train") >= self._duration  # type: ignore[operator]
        # every rank must stop at the same step: rank zero's clock decides
        should_stop = trainer.strategy.broadcast(should_stop)
        if should_stop and not trainer.should_stop:
            trainer.should_stop = True
            if self._verbose:
                elapsed = timedelta(seconds=int(self.time_elapsed("train")))
                trainer.print(
                    f"Time limit reached. Elapsed time is {elapsed}. Signaling Trainer to stop."
                )

    def state_dict(self) -> dict[str, Any]:
        return {"time_elapsed": {stage: self.time_elapsed(stage) for stage in STAGES}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._offset = float(state_dict.get("time_elapsed", {}).get("train", 0.0))
