"""The Trainer's flags, checked once: bad input fails at ``Trainer(...)`` with a message
that says what to pass, and every other part reads the result, a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ember.trainer.errors import MisconfigurationError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(flag: str, value: Any, minimum: int, hint: str = "") -> int:
    if not _is_int(value) or value < minimum:
        raise MisconfigurationError(f"{flag} must be an int >= {minimum}{hint}; got {value!r}")
    return value


def _check_limit(flag: str, value: Any) -> int | float:
    if value is None:
        return 1.0
    if _is_int(value) and value >= 0:
        return value
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return value
    raise MisconfigurationError(
        f"{flag} must be an int number of batches (>= 0) or a float fraction of the epoch "
        f"in [0.0, 1.0]; got {value!r}"
    )


def _parse_max_time(value: Any, flag: str = "max_time") -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, Mapping):
        try:
            return timedelta(**value)
        except TypeError as exc:
            raise MisconfigurationError(
                f"{flag}={dict(value)!r}: use keys of datetime.timedelta "
                "(days, hours, minutes, seconds); " + str(exc)
            ) from None
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) == 4 and all(p.strip().isdigit() for p in parts):
            days, hours, minutes, seconds = (int(p) for p in parts)
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise MisconfigurationError(
        f"{flag}={value!r}: pass 'DD:HH:MM:SS' (e.g. '00:12:00:00'), a datetime.timedelta, "
        "or a dict such as {'hours': 12}"
    )


def _check_val_interval(value: Any, every_n_epoch: Any) -> int | float | timedelta:
    interval = 1.0 if value is None else value
    if isinstance(interval, (str, Mapping, timedelta)):
        # a duration: validate once this much training time has passed since the last time
        interval = _parse_max_time(interval, "val_check_interval")
    elif _is_int(interval):
        _check_int("val_check_interval", interval, 1, " (batches)")
    elif not (isinstance(interval, float) and 0.0 < interval <= 1.0):
        raise MisconfigurationError(
            "val_check_interval must be a float fraction of the training epoch in "
            "(0.0, 1.0], an int number of batches, or a duration (a datetime.timedelta, "
            f"'DD:HH:MM:SS' or a dict such as {{'minutes': 30}}); got {interval!r}"
        )
    if every_n_epoch is not None:
        _check_int(
            "check_val_every_n_epoch",
            every_n_epoch,
            1,
            " (or None to count val_check_interval batches across epochs)",
        )
    elif not _is_int(interval) and not isinstance(interval, timedelta):
        raise MisconfigurationError(
            "check_val_every_n_epoch=None counts val_check_interval batches (or time) across "
            f"epochs, so val_check_interval must be an int or a duration; got {interval!r}"
        )
    return interval  # type: ignore[return-value]


def _check_clip(value: Any, algorithm: Any) -> tuple[int | float | None, str]:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
    ):
        raise MisconfigurationError(
            f"gradient_clip_val must be a number >= 0 (or None); got {value!r}"
        )
    chosen = "norm" if algorithm is None else algorithm
    if chosen not in ("norm", "value"):
        raise MisconfigurationError(
            f"gradient_clip_algorithm must be 'norm' or 'value'; got {algorithm!r}"
        )
    return value, chosen


@dataclass(frozen=True)
class TrainerFlags:
    """Every flag of ``Trainer(...)`` after checking and defaulting (``fast_dev_run`` and
    ``overfit_batches`` already folded into the limits they imply)."""

    max_epochs: int
    min_epochs: int
    max_steps: int
    min_steps: int
    max_time: timedelta | None
    limit_train_batches: int | float
    limit_val_batches: int | float
    limit_test_batches: int | float
    limit_predict_batches: int | float
    overfit_batches: int | float
    #: batches (int), a fraction of the epoch (float) or training time (timedelta)
    val_check_interval: int | float | timedelta
    check_val_every_n_epoch: int | None
    num_sanity_val_steps: int
    log_every_n_steps: int
    accumulate_grad_batches: int
    gradient_clip_val: int | float | None
    gradient_clip_algorithm: str
    fast_dev_run: int | bool
    deterministic: bool | str | None
    benchmark: bool | None
    inference_mode: bool
    detect_anomaly: bool
    reload_dataloaders_every_n_epochs: int
    default_root_dir: str
    enable_checkpointing: bool
    enable_progress_bar: bool
    enable_model_summary: bool
    #: print the end-of-fit summary (``None`` given: follows ``enable_progress_bar``)
    enable_fit_summary: bool
    logger_timeout: float

    @classmethod
    def check(
        cls,
        *,
        fast_dev_run: bool | int = False,
        max_epochs: int | None = None,
        min_epochs: int | None = None,
        max_steps: int = -1,
        min_steps: int | None = None,
        max_time: Any = None,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        overfit_batches: int | float = 0.0,
        val_check_interval: int | float | None = None,
        check_val_every_n_epoch: int | None = 1,
        num_sanity_val_steps: int | None = None,
        log_every_n_steps: int | None = None,
        enable_checkpointing: bool | None = None,
        enable_progress_bar: bool | None = None,
        enable_model_summary: bool | None = None,
        enable_fit_summary: bool | None = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: int | float | None = None,
        gradient_clip_algorithm: str | None = None,
        deterministic: bool | str | None = None,
        benchmark: bool | None = None,
        inference_mode: bool = True,
        detect_anomaly: bool = False,
        reload_dataloaders_every_n_epochs: int = 0,
        default_root_dir: str | os.PathLike[str] | None = None,
        logger_timeout: float = 30.0,
    ) -> TrainerFlags:
        """Check every flag; raise :class:`MisconfigurationError` naming the first bad one."""
        steps = _check_int("max_steps", max_steps, -1, " (-1 for no limit)")
        time_limit = _parse_max_time(max_time)
        if max_epochs is None:
            max_epochs = 1000 if steps == -1 and time_limit is None else -1
        epochs = _check_int(
            "max_epochs", max_epochs, -1, " (-1 to train until max_steps or max_time)"
        )
        least_epochs = _check_int("min_epochs", 0 if min_epochs is None else min_epochs, 0)
        least_steps = _check_int("min_steps", 0 if min_steps is None else min_steps, 0)
        if epochs != -1 and least_epochs > epochs:
            raise MisconfigurationError(
                f"min_epochs={least_epochs} is more than max_epochs={epochs}: "
                "lower min_epochs or raise max_epochs"
            )
        limits = {
            "train": _check_limit("limit_train_batches", limit_train_batches),
            "val": _check_limit("limit_val_batches", limit_val_batches),
            "test": _check_limit("limit_test_batches", limit_test_batches),
            "predict": _check_limit("limit_predict_batches", limit_predict_batches),
        }
        overfit = _check_limit("overfit_batches", overfit_batches)
        if overfit:
            limits["train"] = limits["val"] = overfit
        interval = _check_val_interval(val_check_interval, check_val_every_n_epoch)
        sanity = _check_int(
            "num_sanity_val_steps",
            2 if num_sanity_val_steps is None else num_sanity_val_steps,
            -1,
            " (-1 for every validation batch)",
        )
        accumulate = _check_int("accumulate_grad_batches", accumulate_grad_batches, 1)
        clip_val, clip_algorithm = _check_clip(gradient_clip_val, gradient_clip_algorithm)
        if isinstance(fast_dev_run, bool):
            fast = int(fast_dev_run)
        else:
            fast = _check_int("fast_dev_run", fast_dev_run, 0, " (or a bool)")
        every_n = _check_int(
            "log_every_n_steps", 50 if log_every_n_steps is None else log_every_n_steps, 0
        )
        if fast:
            limits = dict.fromkeys(limits, fast)
            steps, epochs, sanity, interval, check_val_every_n_epoch = fast, 1, 0, 1.0, 1
            every_n = 1
        reload_every = _check_int(
            "reload_dataloaders_every_n_epochs", reload_dataloaders_every_n_epochs, 0
        )
        if deterministic is not None and deterministic not in (True, False, "warn"):
            raise MisconfigurationError(
                f"deterministic must be True, False, 'warn' or None; got {deterministic!r}"
            )
        if enable_fit_summary not in (None, True, False):
            raise MisconfigurationError(
                f"enable_fit_summary must be True, False or None (follow enable_progress_bar); "
                f"got {enable_fit_summary!r}"
            )
        if (
            isinstance(logger_timeout, bool)
            or not isinstance(logger_timeout, (int, float))
            or not logger_timeout >= 0
        ):
            raise MisconfigurationError(
                "logger_timeout must be a number of seconds >= 0 (how long the end of a run "
                f"waits for loggers to deliver); got {logger_timeout!r}"
            )
        return cls(
            max_epochs=epochs,
            min_epochs=least_epochs,
            max_steps=steps,
            min_steps=least_steps,
            max_time=time_limit,
            limit_train_batches=limits["train"],
            limit_val_batches=limits["val"],
            limit_test_batches=limits["test"],
            limit_predict_batches=limits["predict"],
            overfit_batches=overfit,
            val_check_interval=interval,
            check_val_every_n_epoch=check_val_every_n_epoch,
            num_sanity_val_steps=sanity,
            log_every_n_steps=every_n,
            accumulate_grad_batches=accumulate,
            gradient_clip_val=clip_val,
            gradient_clip_algorithm=clip_algorithm,
            fast_dev_run=fast_dev_run if fast else False,
            deterministic=deterministic,
            benchmark=benchmark,
            inference_mode=bool(inference_mode),
            detect_anomaly=bool(detect_anomaly),
            reload_dataloaders_every_n_epochs=reload_every,
            default_root_dir=os.fspath(
                default_root_dir if default_root_dir is not None else os.getcwd()
            ),
            enable_checkpointing=enable_checkpointing is not False,
            enable_progress_bar=enable_progress_bar is not False,
            enable_model_summary=enable_model_summary is not False,
            enable_fit_summary=enable_progress_bar is not False
            if enable_fit_summary is None
            else enable_fit_summary,
            logger_timeout=float(logger_timeout),
        )
