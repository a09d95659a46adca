"""Stop training when a monitored metric stops improving (Lightning's ``EarlyStopping``)."""

from __future__ import annotations

import difflib
import math
import warnings
from enum import Enum
from typing import Any, ClassVar

from ember.trainer.callback import Callback
from ember.trainer.fit_checks import validation_off_hint

_MODES = {"min": "<", "max": ">"}


class EarlyStoppingReason(Enum):
    """Why :class:`EarlyStopping` stopped training (``early_stopping.stopping_reason``);
    the values are Lightning's."""

    NOT_STOPPED = 0
    STOPPING_THRESHOLD = 1
    DIVERGENCE_THRESHOLD = 2
    PATIENCE_EXHAUSTED = 3
    NON_FINITE_METRIC = 4


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` checks.

    :param monitor: the logged metric to watch (a key of ``trainer.callback_metrics``).
    :param min_delta: the smallest change that counts as an improvement.
    :param patience: how many checks without improvement to allow before stopping. A
        check happens once per validation run (or per training epoch, see
        ``check_on_train_epoch_end``).
    :param verbose: print a line on each improvement. When it stops training it always
        prints one line saying why (also kept in :attr:`stopping_reason_message`, with
        :attr:`stopping_reason` an :class:`EarlyStoppingReason`).
    :param mode: ``"min"`` when lower is better (a loss), ``"max"`` when higher is.
    :param strict: raise when ``monitor`` is missing from the metrics; otherwise skip the
        check (with a warning when ``verbose``).
    :param check_finite: stop as soon as the metric is NaN or infinite.
    :param stopping_threshold: stop at once when the metric reaches this value.
    :param divergence_threshold: stop at once when the metric gets worse than this value.
    :param check_on_train_epoch_end: check at the end of each training epoch rather than
        after each validation run. By default, the end of the training epoch when
        validation runs exactly once per epoch, after validation otherwise.
    """

    role: ClassVar[str | None] = "early_stopping"

    def __init__(
        self,
        monitor: str,
        min_delta: float = 0.0,
        patience: int = 3,
        verbose: bool = False,
        mode: str = "min",
        strict: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_on_train_epoch_end: bool | None = None,
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(
                f"EarlyStopping needs the name of a logged metric, e.g. "
                f"EarlyStopping(monitor='val_loss'); got monitor={monitor!r}"
            )
        if mode not in _MODES:
            raise ValueError(f"EarlyStopping(mode=...) must be 'min' or 'max', got {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping(patience=...) must be an int >= 0, got {patience!r}")
        for name, value, optional in (
            ("min_delta", min_delta, False),
            ("stopping_threshold", stopping_threshold, True),
            ("divergence_threshold", divergence_threshold, True),
        ):
            if (value is None and optional) or (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                continue
            raise ValueError(
                f"EarlyStopping({name}=...) must be a finite number"
                f"{' or None' if optional else ''}, got {value!r}"
            )
        for name, value in (
            ("verbose", verbose),
            ("strict", strict),
            ("check_finite", check_finite),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"EarlyStopping({name}=...) must be True or False, got {value!r}")
        if check_on_train_epoch_end is not None and not isinstance(check_on_train_epoch_end, bool):
            raise ValueError(
                "EarlyStopping(check_on_train_epoch_end=...) must be True, False or None, got "
                f"{check_on_train_epoch_end!r}"
            )
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = patience
        self.verbose = verbose
        self.mode = mode
        self.strict = strict
        self.check_finite = check_finite
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self._check_on_train_epoch_end = check_on_train_epoch_end
        self.wait_count = 0
        self.stopped_epoch = 0
        self.best_score = math.inf if mode == "min" else -math.inf
        #: why training stopped (``NOT_STOPPED`` while it has not)
        self.stopping_reason = EarlyStoppingReason.NOT_STOPPED
        #: why training stopped, in words (``None`` while it has not)
        self.stopping_reason_message: str | None = None

    @property
    def state_key(self) -> str:
        """One state per monitored metric and mode, so several instances can coexist."""
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    def _better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b

    def setup(self, trainer: Any, module: Any, stage: str) -> None:
        if self._check_on_train_epoch_end is None:
            # validation more or less often than once per epoch: checking at every epoch
            # end would see stale or missing values, so check after each validation run
            # (an int val_check_interval counts batches: 1 means every batch, not 100%)
            interval = trainer.val_check_interval
            self._check_on_train_epoch_end = (
                isinstance(interval, float)
                and interval == 1.0
                and trainer.check_val_every_n_epoch == 1
            )

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        if self._check_on_train_epoch_end and not self._should_skip(trainer):
            self._run_check(trainer)

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        if not self._check_on_train_epoch_end and not self._should_skip(trainer):
            self._run_check(trainer)

    @staticmethod
    def _should_skip(trainer: Any) -> bool:
        # trainer.validate() and the sanity check must not count against patience
        return trainer.state.fn != "fit" or trainer.sanity_checking

    def _run_check(self, trainer: Any) -> None:
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            self._missing_metric(metrics, validation_off_hint(trainer, self.monitor))
            return
        current = float(metrics[self.monitor])
        stop_here, reason = self._evaluate(current)
        should_stop = trainer.strategy.reduce_boolean_decision(stop_here[0], all=False)
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop:
            self.stopped_epoch = trainer.current_epoch
            self.stopping_reason = stop_here[1]
            self.stopping_reason_message = reason
            if reason is None:  # another process decided: it printed why
                reason = "another process's check said to stop."
            trainer.print(f"EarlyStopping stopped training at epoch {self.stopped_epoch}: {reason}")
        elif reason and self.verbose:
            trainer.print(reason)

    def _missing_metric(self, metrics: dict[str, Any], why: str = "") -> None:
        available = sorted(metrics)
        msg = (
            f"EarlyStopping is conditioned on metric {self.monitor!r}, which was not logged. "
            f"Available metrics: {', '.join(map(repr, available)) or 'none'}."
        )
        # validation being off is the cause: a training metric's similar name is not
        hint = None if why else difflib.get_close_matches(self.monitor, available, n=1)
        msg += why
        if hint:
            msg += f" Did you mean {hint[0]!r}?"
        msg += (
            f" Log it with self.log({self.monitor!r}, ...) in your module, pick another "
            "monitor, or pass strict=False to skip checks while it is missing."
        )
        if self.strict:
            raise RuntimeError(msg)
        if self.verbose:
            warnings.warn(msg, RuntimeWarning, stacklevel=2)

    def _evaluate(self, current: float) -> tuple[tuple[bool, EarlyStoppingReason], str | None]:
        """((stop?, the reason's kind), the reason in words or ``None``) for one check."""
        reasons = EarlyStoppingReason
        op = _MODES[self.mode]
        if self.check_finite and not math.isfinite(current):
            return (True, reasons.NON_FINITE_METRIC), (
                f"Monitored metric {self.monitor} = {current} is not finite. Previous best "
                f"value was {self.best_score:.3f}. Signaling Trainer to stop."
            )
        if self.stopping_threshold is not None and self._better(current, self.stopping_threshold):
            return (True, reasons.STOPPING_THRESHOLD), (
                f"Stopping threshold reached: {self.monitor} = {current} {op} "
                f"{self.stopping_threshold}. Signaling Trainer to stop."
            )
        if self.divergence_threshold is not None and self._better(
            self.divergence_threshold, current
        ):
            return (True, reasons.DIVERGENCE_THRESHOLD), (
                f"Divergence threshold reached: {self.monitor} = {current} is worse than "
                f"{self.divergence_threshold}. Signaling Trainer to stop."
            )
        signed_delta = self.min_delta if self.mode == "min" else -self.min_delta
        if self._better(current + signed_delta, self.best_score):
            if math.isfinite(self.best_score):
                reason = (
                    f"Metric {self.monitor} improved by {abs(self.best_score - current):.3f} "
                    f">= min_delta = {self.min_delta}. New best score: {current:.3f}"
                )
            else:
                reason = f"Metric {self.monitor} improved. New best score: {current:.3f}"
            self.best_score = current
            self.wait_count = 0
            return (False, reasons.NOT_STOPPED), reason
        self.wait_count += 1
        if self.wait_count >= self.patience:
            return (True, reasons.PATIENCE_EXHAUSTED), (
                f"Monitored metric {self.monitor} did not improve in the last "
                f"{self.wait_count} records. Best score: {self.best_score:.3f}. "
                "Signaling Trainer to stop."
            )
        return (False, reasons.NOT_STOPPED), None

    def state_dict(self) -> dict[str, Any]:
        return {
            "wait_count": self.wait_count,
            "stopped_epoch": self.stopped_epoch,
            "best_score": self.best_score,
            "patience": self.patience,
            "stopping_reason": self.stopping_reason.value,
            "stopping_reason_message": self.stopping_reason_message,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait_count = state_dict["wait_count"]
        self.stopped_epoch = state_dict["stopped_epoch"]
        # Lightning checkpoints hold a tensor here; ember's hold a float
        self.best_score = float(state_dict["best_score"])
        self.patience = state_dict.get("patience", self.patience)
        self.stopping_reason = EarlyStoppingReason(
            state_dict.get("stopping_reason", EarlyStoppingReason.NOT_STOPPED.value)
        )
        self.stopping_reason_message = state_dict.get("stopping_reason_message")
