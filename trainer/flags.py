"""The Trainer's flags, checked once: bad input fails at ``Trainer(...)`` with a message
that says what to pass, and every other part reads the result, a frozen object."""

from __future__ import annotations

import errno
import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ember.hub import did_you_mean
from ember.trainer.errors import MisconfigurationError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(flag: str, value: Any, minimum: int, hint: str = "") -> int:
    if not _is_int(value) or value < minimum:
        raise MisconfigurationError(f"{flag} must be an int >= {minimum}{hint}; got {value!r}")
    return value


def _check_bool(flag: str, value: Any, meaning: str, allow_none: bool = True) -> Any:
    """A switch: ``True``/``False`` (or ``None`` for the default). A string such as ``"no"``
    is truthy, so it is an error rather than a silent ``True``."""
    if isinstance(value, bool) or (allow_none and value is None):
        return value
    choices = "True, False or None" if allow_none else "True or False"
    raise MisconfigurationError(f"{flag} ({meaning}) must be {choices}; got {value!r}")


def _check_root_dir(value: Any) -> str:
    if value is None:
        return os.getcwd()
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise MisconfigurationError(
            "default_root_dir must be a folder path (a str or a pathlib.Path) under which "
            f"runs and checkpoints are written; got {value!r} ({type(value).__name__})"
        )
    path = os.fspath(value)
    if not isinstance(path, str) or not path.strip():
        raise MisconfigurationError(
            "default_root_dir must name a folder; got an empty path (leave it out to use "
            "the current folder)"
        )
    return path


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
    parsed = _parse_duration(value, flag)
    # zero is allowed, as in Lightning: max_time=0 stops at once, and a validation
    # interval of 0 validates after every batch
    if parsed is not None and parsed < timedelta(0):
        raise MisconfigurationError(
            f"{flag}={value!r} is a duration of {parsed}: it must be zero or more"
        )
    return parsed


def _parse_duration(value: Any, flag: str) -> timedelta | None:
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
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise MisconfigurationError(
            f"gradient_clip_val must be a finite number >= 0 (or None for no clipping); "
            f"got {value!r}"
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
    #: where the loggers' delivery workers run: ``"thread"`` or ``"process"``
    logger_delivery: str

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
        logger_delivery: str = "thread",
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
        if steps != -1 and least_steps > steps:
            raise MisconfigurationError(
                f"min_steps={least_steps} is more than max_steps={steps}: "
                "lower min_steps or raise max_steps"
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
        if deterministic is not None and not (
            isinstance(deterministic, bool) or deterministic == "warn"
        ):
            raise MisconfigurationError(
                f"deterministic must be True, False, 'warn' or None; got {deterministic!r}"
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
        if logger_delivery not in ("thread", "process"):
            raise MisconfigurationError(
                "logger_delivery must be 'thread' (the loggers deliver from threads of the "
                "training process) or 'process' (from a helper process of their own, so that "
                f"no logger code competes with training); got {logger_delivery!r}"
            )
        switches = {
            "enable_checkpointing": _check_bool(
                "enable_checkpointing", enable_checkpointing, "whether fit saves checkpoints"
            ),
            "enable_progress_bar": _check_bool(
                "enable_progress_bar", enable_progress_bar, "whether a progress bar is shown"
            ),
            "enable_model_summary": _check_bool(
                "enable_model_summary", enable_model_summary, "whether fit prints a model summary"
            ),
            "enable_fit_summary": _check_bool(
                "enable_fit_summary",
                enable_fit_summary,
                "whether fit ends with a summary; None follows enable_progress_bar",
            ),
        }
        root_dir = _check_root_dir(default_root_dir)
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
            benchmark=_check_bool("benchmark", benchmark, "cuDNN's autotuner; None leaves it"),
            inference_mode=_check_bool(
                "inference_mode", inference_mode, "evaluate under torch.inference_mode", False
            ),
            detect_anomaly=_check_bool(
                "detect_anomaly", detect_anomaly, "whether torch.autograd detects anomalies", False
            ),
            reload_dataloaders_every_n_epochs=reload_every,
            default_root_dir=root_dir,
            enable_checkpointing=switches["enable_checkpointing"] is not False,
            enable_progress_bar=switches["enable_progress_bar"] is not False,
            enable_model_summary=switches["enable_model_summary"] is not False,
            enable_fit_summary=switches["enable_progress_bar"] is not False
            if switches["enable_fit_summary"] is None
            else switches["enable_fit_summary"],
            logger_timeout=float(logger_timeout),
            logger_delivery=logger_delivery,
        )


def flag_problem(flags: Mapping[str, Any]) -> str | None:
    """What :meth:`TrainerFlags.check` says about the first bad value among ``flags``
    (flags it does not take are left out), or None: for checking a run file's
    ``[trainer]`` table before anything is built."""
    taken = inspect.signature(TrainerFlags.check).parameters
    try:
        TrainerFlags.check(**{k: v for k, v in flags.items() if k in taken})
    except MisconfigurationError as exc:
        return str(exc)
    return None


class UnknownArgumentError(MisconfigurationError, TypeError):
    """``Trainer(...)`` got an argument it does not have (a TypeError too, as Python's own
    error for an unexpected keyword is)."""


#: Lightning's Trainer arguments that ember's Trainer does not take (removed in Lightning
#: 2.0, or Lightning-only), with what to write instead
_LIGHTNING_ARGUMENTS: dict[str, str] = {
    "gpus": 'accelerator="gpu", devices={value!r}',
    "tpu_cores": "accelerator=<a TPU accelerator plugin>, devices={value!r} (ember has no "
    "built-in TPU accelerator)",
    "ipus": "accelerator=<an IPU accelerator plugin>, devices={value!r}",
    "hpus": "accelerator=<an HPU accelerator plugin>, devices={value!r}",
    "num_processes": 'accelerator="cpu", devices={value!r}',
    "auto_select_gpus": 'accelerator="gpu" with devices=N (the first N GPUs) or a list of '
    "GPU indices",
    "resume_from_checkpoint": "trainer.fit(model, ckpt_path={value!r})",
    "checkpoint_callback": "enable_checkpointing={value!r}",
    "progress_bar_refresh_rate": "enable_progress_bar=False to hide it, or "
    "callbacks=[ProgressBar(refresh_rate=N)] (from ember.trainer.callbacks)",
    "weights_summary": "enable_model_summary=False to skip it, or "
    "callbacks=[ModelSummary(max_depth=N)] (from ember.trainer.callbacks)",
    "track_grad_norm": "callbacks=[GradientNormMonitor(norm_type={value!r})] "
    "(from ember.trainer.callbacks)",
    "terminate_on_nan": "nothing: a non-finite loss always stops training with "
    "NonFiniteLossError (detect_anomaly=True also names the operation)",
    "flush_logs_every_n_steps": "nothing: loggers deliver on their own threads; "
    "log_every_n_steps sets how often step values are published",
    "amp_backend": 'precision="16-mixed" (or "bf16-mixed")',
    "amp_level": 'precision="16-mixed" (or "bf16-mixed")',
    "auto_lr_find": "a learning-rate search of your own: ember has no tuner",
    "auto_scale_batch_size": "a batch size of your choosing: ember has no tuner",
    "replace_sampler_ddp": "nothing: strategy='ddp' adds a DistributedSampler unless the "
    "loader has a sampler of its own",
    "use_distributed_sampler": "nothing: strategy='ddp' adds a DistributedSampler unless "
    "the loader has a sampler of its own",
    "plugins": "precision=..., strategy=... or accelerator=... by name (plugins register "
    "them through the 'ember' entry point group)",
    "sync_batchnorm": "torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) before fit",
    "move_metrics_to_cpu": "nothing: ember reads logged values to the host only at flush points",
    "profiler": "torch.profiler.profile() around trainer.fit(...)",
    "barebones": "enable_progress_bar=False, enable_model_summary=False, "
    "enable_checkpointing=False, logger=False",
}


#: names people guess for an argument, where the closest spelling would mislead
_GUESSES = {
    "epochs": "max_epochs",
    "num_epochs": "max_epochs",
    "n_epochs": "max_epochs",
    "steps": "max_steps",
    "num_steps": "max_steps",
    "loggers": "logger",
    "callback": "callbacks",
    "root_dir": "default_root_dir",
    "log_dir": "default_root_dir",
    "grad_clip": "gradient_clip_val",
}


def unknown_argument(name: str, value: Any, known: Any) -> UnknownArgumentError:
    """The error for ``Trainer(name=value)`` when ``name`` is not an argument: Lightning's
    old names say what replaces them; any other name gets the closest real one."""
    known = sorted(known)
    replacement = _LIGHTNING_ARGUMENTS.get(name)
    if replacement is not None:
        return UnknownArgumentError(
            f"Trainer has no argument {name!r} (PyTorch Lightning's; ember's Trainer does not "
            f"take it): pass {replacement.format(value=value)}"
        )
    guess = _GUESSES.get(name)
    hint = f"; did you mean {guess!r}?" if guess else did_you_mean(name, known)
    return UnknownArgumentError(
        f"Trainer has no argument {name!r}{hint} Its arguments: {', '.join(known)}"
    )


def check_writable_root(root_dir: str) -> None:
    """Raise a clear error, before a run starts, when ``default_root_dir`` cannot hold the
    run's files: it (or the folder it would be made in) is a file, or is not writable."""
    path = os.path.abspath(root_dir)
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    where = f"default_root_dir={root_dir!r}"
    if not os.path.isdir(existing):
        raise MisconfigurationError(
            f"{where} cannot be a folder: {existing!r} is a file. Pass a folder path "
            "(runs and checkpoints are written under it)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == path else f" (it would be made inside {existing!r})"
        raise MisconfigurationError(
            f"{where} is not writable{made}: runs and checkpoints are written under it. "
            "Pass a folder you can write to, or logger=False and enable_checkpointing=False "
            "to write nothing"
        )


def root_dir_error(root_dir: str, error: OSError) -> MisconfigurationError | None:
    """A clear error for ``error`` raised while making the run's folders under
    ``default_root_dir`` (a read-only filesystem, missing permissions), or ``None`` when
    the error is of another kind (a full disk is reported where it happens)."""
    if not isinstance(
        error, (PermissionError, FileNotFoundError, NotADirectoryError, FileExistsError)
    ) and error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
        return None
    return MisconfigurationError(
        f"default_root_dir={root_dir!r}: the run's folder cannot be made there "
        f"({error.strerror or error}: {error.filename!r}). Pass a folder you can write to, or "
        "logger=False and enable_checkpointing=False to write nothing"
    )


def check_call(entry: str, ckpt_path: Any = None, **switches: Any) -> None:
    """Check the arguments of ``fit``/``validate``/``test``/``predict`` that are not data:
    ``ckpt_path`` is a path (or ``"last"``/``"best"``), and each switch a bool (or None)."""
    if ckpt_path is not None and (
        not isinstance(ckpt_path, (str, os.PathLike)) or isinstance(ckpt_path, bytes)
    ):
        raise MisconfigurationError(
            f"{entry}(ckpt_path=...) must be a checkpoint file's path, 'last' or 'best' (or "
            f"None); got {ckpt_path!r} ({type(ckpt_path).__name__})"
        )
    for name, value in switches.items():
        if value is not None and not isinstance(value, bool):
            raise MisconfigurationError(f"{entry}({name}=...) must be True or False; got {value!r}")
