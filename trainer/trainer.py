"""The ``Trainer``: Lightning's flags and entry points (``fit``, ``validate``, ``test``,
``predict``) over ember's loops, hub-resolved accelerators, precision modes and
strategies, and lifecycle hooks fired through the hub's facade."""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

import torch
from ember.hub import Lifecycle, get_plugin_manager
from ember.hub.records import normalize_name
from ember.hub.tracking import DeliveryPolicy, DisabledRun, LoggerEntry, Run, resolve_loggers
from ember.hub.tracking.run import (
    LoggerArg,
    LoggerHandle,
    LoggerHandles,
    finish_when_collected,
)
from ember.trainer.accelerators import Accelerator
from ember.trainer.callback import Callback
from ember.trainer.checkpoint import (
    CheckpointError,
    ModelCheckpoint,
    Preempted,
    PreemptionHandler,
    ResumableLoader,
    preemption_checkpoint_path,
)
from ember.trainer.data import DataSource, limited_length, loader_length, without_shuffling
from ember.trainer.datamodule import EmberDataModule
from ember.trainer.errors import MisconfigurationError
from ember.trainer.loops import EvaluationLoop, FitLoop, LoopProgress, ManualOptimizer, PredictLoop
from ember.trainer.loops.module_hooks import ModuleHooks
from ember.trainer.module import EmberModule, overrides
from ember.trainer.optim import LRSchedulerConfig, normalize_optimizers
from ember.trainer.precision import Precision
from ember.trainer.results import ResultCollection, to_host
from ember.trainer.state import RunningStage, TrainerFn, TrainerState, TrainerStatus
from ember.trainer.strategies import Strategy
from torch import Tensor


# ---------------------------------------------------------------------- flag checks
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


def _parse_max_time(value: Any) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, Mapping):
        try:
            return timedelta(**value)
        except TypeError as exc:
            raise MisconfigurationError(
                f"max_time={dict(value)!r}: use keys of datetime.timedelta "
                "(days, hours, minutes, seconds); " + str(exc)
            ) from None
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) == 4 and all(p.strip().isdigit() for p in parts):
            days, hours, minutes, seconds = (int(p) for p in parts)
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise MisconfigurationError(
        f"max_time={value!r}: pass 'DD:HH:MM:SS' (e.g. '00:12:00:00'), a datetime.timedelta, "
        "or a dict such as {'hours': 12}"
    )


def _class_names(obj: object) -> set[str]:
    return {cls.__name__ for cls in type(obj).__mro__}


class Trainer:
    """Runs an :class:`~ember.trainer.EmberModule`: ``fit``, ``validate``, ``test``,
    ``predict``. Flags follow PyTorch Lightning's names and defaults; see
    ``docs/trainer.md``."""

    def __init__(
        self,
        *,
        accelerator: str | Mapping[str, Any] | Accelerator = "auto",
        strategy: str | Mapping[str, Any] | Strategy = "auto",
        devices: int | str | list[int] = "auto",
        precision: str | int | Mapping[str, Any] | Precision = "32-true",
        logger: LoggerArg = None,
        logger_timeout: float = 30.0,
        callbacks: Iterable[Any] | Any | None = None,
        fast_dev_run: bool | int = False,
        max_epochs: int | None = None,
        min_epochs: int | None = None,
        max_steps: int = -1,
        min_steps: int | None = None,
        max_time: str | timedelta | Mapping[str, int] | None = None,
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
        accumulate_grad_batches: int = 1,
        gradient_clip_val: int | float | None = None,
        gradient_clip_algorithm: str | None = None,
        deterministic: bool | str | None = None,
        benchmark: bool | None = None,
        inference_mode: bool = True,
        detect_anomaly: bool = False,
        reload_dataloaders_every_n_epochs: int = 0,
        default_root_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        # the flags as given, for the run's recorded configuration
        self._flags: dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}
        self._state = TrainerState()
        self._progress = LoopProgress()

        # -- stopping
        self.max_steps = _check_int("max_steps", max_steps, -1, " (-1 for no limit)")
        self.max_time = _parse_max_time(max_time)
        if max_epochs is None:
            max_epochs = 1000 if self.max_steps == -1 and self.max_time is None else -1
        self.max_epochs = _check_int(
            "max_epochs", max_epochs, -1, " (-1 to train until max_steps or max_time)"
        )
        self.min_epochs = _check_int("min_epochs", 0 if min_epochs is None else min_epochs, 0)
        self.min_steps = _check_int("min_steps", 0 if min_steps is None else min_steps, 0)
        if self.max_epochs != -1 and self.min_epochs > self.max_epochs:
            raise MisconfigurationError(
                f"min_epochs={self.min_epochs} is more than max_epochs={self.max_epochs}: "
                "lower min_epochs or raise max_epochs"
            )

        # -- how much data
        self.limit_train_batches = _check_limit("limit_train_batches", limit_train_batches)
        self.limit_val_batches = _check_limit("limit_val_batches", limit_val_batches)
        self.limit_test_batches = _check_limit("limit_test_batches", limit_test_batches)
        self.limit_predict_batches = _check_limit("limit_predict_batches", limit_predict_batches)
        self.overfit_batches = _check_limit("overfit_batches", overfit_batches)
        if self.overfit_batches:
            self.limit_train_batches = self.overfit_batches
            self.limit_val_batches = self.overfit_batches

        # -- validation
        if val_check_interval is None:
            val_check_interval = 1.0
        if _is_int(val_check_interval):
            _check_int("val_check_interval", val_check_interval, 1, " (batches)")
        elif not (isinstance(val_check_interval, float) and 0.0 < val_check_interval <= 1.0):
            raise MisconfigurationError(
                "val_check_interval must be a float fraction of the training epoch in "
                f"(0.0, 1.0] or an int number of batches; got {val_check_interval!r}"
            )
        self.val_check_interval: int | float = val_check_interval
        if check_val_every_n_epoch is not None:
            _check_int(
                "check_val_every_n_epoch",
                check_val_every_n_epoch,
                1,
                " (or None to count val_check_interval batches across epochs)",
            )
        elif not _is_int(val_check_interval):
            raise MisconfigurationError(
                "check_val_every_n_epoch=None counts val_check_interval batches across "
                "epochs, so val_check_interval must be an int; got "
                f"{val_check_interval!r}"
            )
        self.check_val_every_n_epoch = check_val_every_n_epoch
        self._num_sanity_val_steps = _check_int(
            "num_sanity_val_steps",
            2 if num_sanity_val_steps is None else num_sanity_val_steps,
            -1,
            " (-1 for every validation batch)",
        )

        # -- optimization
        self.accumulate_grad_batches = _check_int(
            "accumulate_grad_batches", accumulate_grad_batches, 1
        )
        if gradient_clip_val is not None and (
            isinstance(gradient_clip_val, bool)
            or not isinstance(gradient_clip_val, (int, float))
            or gradient_clip_val < 0
        ):
            raise MisconfigurationError(
                f"gradient_clip_val must be a number >= 0 (or None); got {gradient_clip_val!r}"
            )
        self.gradient_clip_val = gradient_clip_val
        algorithm = "norm" if gradient_clip_algorithm is None else gradient_clip_algorithm
        if algorithm not in ("norm", "value"):
            raise MisconfigurationError(
                "gradient_clip_algorithm must be 'norm' or 'value'; got "
                f"{gradient_clip_algorithm!r}"
            )
        self.gradient_clip_algorithm = algorithm

        # -- debugging
        if isinstance(fast_dev_run, bool):
            fast = int(fast_dev_run)
        else:
            fast = _check_int("fast_dev_run", fast_dev_run, 0, " (or a bool)")
        self.fast_dev_run: int | bool = fast_dev_run if fast else False
        if fast:
            self.limit_train_batches = self.limit_val_batches = fast
            self.limit_test_batches = self.limit_predict_batches = fast
            self.max_steps = fast
            self.max_epochs = 1
            self._num_sanity_val_steps = 0
            self.val_check_interval = 1.0
            self.check_val_every_n_epoch = 1
        self.detect_anomaly = bool(detect_anomaly)
        self.inference_mode = bool(inference_mode)
        self.log_every_n_steps = _check_int(
            "log_every_n_steps", 50 if log_every_n_steps is None else log_every_n_steps, 0
        )
        if fast:
            self.log_every_n_steps = 1
        self.reload_dataloaders_every_n_epochs = _check_int(
            "reload_dataloaders_every_n_epochs", reload_dataloaders_every_n_epochs, 0
        )
        self.default_root_dir = os.fspath(
            default_root_dir if default_root_dir is not None else os.getcwd()
        )
        self.deterministic = deterministic
        self.benchmark = benchmark
        self._set_torch_flags(deterministic, benchmark)

        # -- tracking: loggers are resolved now, so that a misspelled name or option fails
        # here, before any training; the run itself starts with fit/validate/test
        self._logger_arg = logger
        self._logger_entries: list[LoggerEntry] | None = resolve_loggers(logger)
        if (
            isinstance(logger_timeout, bool)
            or not isinstance(logger_timeout, (int, float))
            or not logger_timeout >= 0
        ):
            raise MisconfigurationError(
                "logger_timeout must be a number of seconds >= 0 (how long the end of a run "
                f"waits for loggers to deliver); got {logger_timeout!r}"
            )
        self._delivery = DeliveryPolicy(finalize_timeout=float(logger_timeout))
        #: the tracking run of the running (or last) entry point
        self._tracking: Run = DisabledRun()
        #: the identity of this trainer's last run: later entry points continue it
        self._run_identity: dict[str, Any] | None = None
        #: what a fit's checkpoint says to resume: (run identity or None, global step)
        self._resume_from: tuple[dict[str, Any] | None, int] | None = None
        self._hparams_logged: tuple[str, str] | None = None
        #: the run's directory once the tracking pipeline has made one (``log_dir``)
        self._run_dir: str | None = None
        self._enable_checkpointing = enable_checkpointing is not False
        self.enable_progress_bar = enable_progress_bar is not False
        self.enable_model_summary = enable_model_summary is not False

        # -- hardware, through the hub's registry
        pm = get_plugin_manager()
        self.accelerator: Accelerator = self._provider(
            "accelerator", accelerator, Accelerator, self._auto_accelerator
        )
        self._devices = self.accelerator.parse_devices(devices)
        self.precision_plugin: Precision = self._provider(
            "precision", str(precision) if _is_int(precision) else precision, Precision, None
        )
        self.strategy: Strategy = self._provider(
            "strategy",
            strategy,
            Strategy,
            lambda: "single_device" if len(self._devices) == 1 else "ddp",
        )
        self.strategy.connect(self.accelerator, self.precision_plugin, self._devices)

        # -- callbacks, in the order given, and the lifecycle facade over them
        self.callbacks: list[Any] = self._resolve_callbacks(callbacks)
        self._plugins = pm.lifecycle_plugins()
        self._hooks = Lifecycle(
            plugins=self._plugins, callbacks=self.callbacks, callback_base=Callback
        )

        # -- run state
        self.should_stop = False
        self._module: EmberModule | None = None
        self._module_hooks: ModuleHooks | None = None
        self.datamodule: EmberDataModule | None = None
        self._batch_transfer: Callable[[Any, int], Any] | None = None
        self.optimizers: list[torch.optim.Optimizer] = []
        self._manual_optimizers: list[ManualOptimizer] = []
        self.lr_scheduler_configs: list[LRSchedulerConfig] = []
        self.train_dataloader: Any = None
        self._train_length: int | float = 0
        self.num_training_batches: int | float = 0
        self.val_check_batch: int | float = math.inf
        self._val_loaders: list[Any] = []
        self._val_lengths: list[int | float] = []
        self.num_val_batches: list[int | float] = []
        self.test_dataloaders: Any = None
        self.num_test_batches: list[int | float] = []
        self.predict_dataloaders: Any = None
        self.num_predict_batches: list[int | float] = []
        self._train_source: DataSource | None = None
        self._val_source: DataSource | None = None
        self._loaded_epoch = {"train": 0, "val": 0}
        self._has_validation = False
        self._train_results = ResultCollection(training=True)
        self._results: ResultCollection | None = None
        self._callback_metrics: dict[str, Tensor] = {}
        self._logged_metrics: dict[str, float] = {}
        self._progress_bar_metrics: dict[str, float] = {}
        #: the training loader as the fit loop drives it (epoch, position inside it)
        self._train_loader: ResumableLoader | None = None
        #: the checkpoint the running (or last) entry point restored, or ``None``
        self.ckpt_path: str | None = None
        self._preemption = PreemptionHandler()
        self.fit_loop = FitLoop(self)

    # ================================================================== set-up helpers
    @staticmethod
    def _set_torch_flags(deterministic: bool | str | None, benchmark: bool | None) -> None:
        if deterministic is not None and deterministic not in (True, False, "warn"):
            raise MisconfigurationError(
                f"deterministic must be True, False, 'warn' or None; got {deterministic!r}"
            )
        if deterministic:
            # cuBLAS needs this to be deterministic; it has no effect on CPU
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=deterministic == "warn")
        elif deterministic is False:
            torch.use_deterministic_algorithms(False)
        if benchmark is not None:
            torch.backends.cudnn.benchmark = bool(benchmark)
        elif deterministic:
            torch.backends.cudnn.benchmark = False

    @staticmethod
    def _auto_accelerator() -> str:
        """The installed accelerator with the highest ``auto_priority`` whose hardware is
        present (the CPU, at priority 0, always is)."""
        best: tuple[int, str] = (0, "cpu")
        for name, spec in sorted(get_plugin_manager().providers("accelerator").items()):
            try:
                cls = spec.load()
            except ImportError:  # a plugin whose dependencies are missing cannot be "auto"
                continue
            priority = getattr(cls, "auto_priority", 0)
            if priority > best[0] and getattr(cls, "is_available", lambda: False)():
                best = (priority, name)
        return best[1]

    @staticmethod
    def _provider(kind: str, value: Any, base: type, auto: Callable[[], str] | None) -> Any:
        """Build an accelerator, precision mode or strategy from a name, a mapping or an
        instance, through the hub's registry (an unknown name lists what is installed)."""
        if isinstance(value, base):
            return value
        if isinstance(value, str):
            if auto is not None and normalize_name(value) == "auto":
                value = auto()
        elif isinstance(value, Mapping):
            if auto is not None and normalize_name(str(value.get("name", ""))) == "auto":
                value = {**value, "name": auto()}
        else:
            raise MisconfigurationError(
                f"{kind}={value!r}: pass a name (e.g. {kind}='auto'), a mapping "
                f"{{'name': ..., **options}}, or a {base.__name__} instance"
            )
        built = get_plugin_manager().create(kind, value)
        if not isinstance(built, base):
            raise MisconfigurationError(
                f"the {kind} provider {value!r} built a {type(built).__name__}, which is not "
                f"an ember {base.__name__}: its factory must return a {base.__name__} subclass"
            )
        return built

    def _resolve_callbacks(self, callbacks: Iterable[Any] | Any | None) -> list[Any]:
        """The user's callbacks (objects, provider names or ``{"name": ...}`` mappings),
        then a progress bar, a model summary and a ``ModelCheckpoint`` unless disabled or
        given."""
        if callbacks is None:
            given: list[Any] = []
        elif isinstance(callbacks, (str, Mapping)) or not isinstance(callbacks, Iterable):
            given = [callbacks]
        else:
            given = list(callbacks)
        pm = get_plugin_manager()
        resolved: list[Any] = []
        for cb in given:
            if isinstance(cb, (str, Mapping)):
                cb = pm.create("callback", cb)
            elif isinstance(cb, type):
                raise MisconfigurationError(
                    f"callbacks got the class {cb.__name__}: pass an instance, {cb.__name__}(...)"
                )
            resolved.append(cb)
        from ember.trainer.callbacks import ModelSummary, ProgressBar

        if self.enable_progress_bar and not any(isinstance(c, ProgressBar) for c in resolved):
            resolved.append(ProgressBar())
        if self.enable_model_summary and not any(isinstance(c, ModelSummary) for c in resolved):
            resolved.append(ModelSummary())
        checkpointing = any(isinstance(c, ModelCheckpoint) for c in resolved)
        if checkpointing and not self._enable_checkpointing:
            raise MisconfigurationError(
                "Trainer(enable_checkpointing=False) was given a ModelCheckpoint callback: "
                "remove the callback, or drop enable_checkpointing=False"
            )
        if self._enable_checkpointing and not checkpointing and not self.fast_dev_run:
            # with last.ckpt (a hard link to the epoch's file: no second write), so that a
            # job can always be relaunched with ckpt_path="last"
            resolved.append(ModelCheckpoint(save_last=True))
        return resolved

    def _rebuild_hooks(self) -> None:
        self._hooks = Lifecycle(
            plugins=self._plugins, callbacks=self.callbacks, callback_base=Callback
        )

    def _merge_module_callbacks(self, module: EmberModule) -> None:
        """Callbacks from ``configure_callbacks`` replace trainer callbacks of the same
        type; checkpoint callbacks go last so they see everything the others did."""
        if not overrides(module, "configure_callbacks", EmberModule):
            return
        extra = module.configure_callbacks()
        if extra is None:
            return
        extra = [extra] if not isinstance(extra, (list, tuple)) else list(extra)
        if not extra:
            return
        types = {type(c) for c in extra}
        kept = [c for c in self.callbacks if type(c) not in types]
        merged = kept + extra
        checkpoints = [c for c in merged if "ModelCheckpoint" in _class_names(c)]
        self.callbacks = [c for c in merged if c not in checkpoints] + checkpoints
        self._rebuild_hooks()

    # ================================================================== read-only state
    @property
    def state(self) -> TrainerState:
        """Which entry point and loop run, and how the last one ended."""
        return self._state

    @property
    def training(self) -> bool:
        """Whether the training loop is running."""
        return self._state.stage == RunningStage.TRAINING

    @property
    def validating(self) -> bool:
        """Whether a validation loop is running (not the sanity check)."""
        return self._state.stage == RunningStage.VALIDATING

    @property
    def testing(self) -> bool:
        """Whether the test loop is running."""
        return self._state.stage == RunningStage.TESTING

    @property
    def predicting(self) -> bool:
        """Whether the prediction loop is running."""
        return self._state.stage == RunningStage.PREDICTING

    @property
    def sanity_checking(self) -> bool:
        """Whether the sanity check (validation batches before training) is running."""
        return self._state.stage == RunningStage.SANITY_CHECKING

    @property
    def current_epoch(self) -> int:
        """The running epoch (after fit: the number of epochs run)."""
        return self._progress.current_epoch

    @property
    def global_step(self) -> int:
        """Optimizer steps taken."""
        return self._progress.global_step

    @property
    def module(self) -> EmberModule | None:
        """The module being run (``None`` before the first entry point)."""
        return self._module

    @property
    def lightning_module(self) -> EmberModule | None:
        """Alias of :attr:`module`, for code written for Lightning."""
        return self._module

    @property
    def model(self) -> EmberModule | None:
        """Alias of :attr:`module`, for code written for Lightning."""
        return self._module

    @property
    def num_sanity_val_steps(self) -> int:
        """Validation batches per loader run before training (-1: all)."""
        return self._num_sanity_val_steps

    @property
    def val_dataloaders(self) -> Any:
        """The validation loader (a list when there are several; ``None`` before loading)."""
        if not self._val_loaders:
            return None
        return self._val_loaders[0] if len(self._val_loaders) == 1 else list(self._val_loaders)

    @property
    def log_dir(self) -> str:
        """Where this run's files go (``default_root_dir`` until a run directory is set)."""
        return self._run_dir or self.default_root_dir

    @property
    def is_global_zero(self) -> bool:
        """Whether this process logs, prints and saves."""
        return self.strategy.is_global_zero

    @property
    def global_rank(self) -> int:
        """This process's index among all processes."""
        return self.strategy.global_rank

    @property
    def local_rank(self) -> int:
        """This process's index on its machine."""
        return self.strategy.local_rank

    @property
    def world_size(self) -> int:
        """How many processes take part."""
        return self.strategy.world_size

    @property
    def device_ids(self) -> list[int]:
        """Indices of the devices used (0 for the CPU)."""
        return [d.index or 0 for d in self._devices]

    @property
    def num_devices(self) -> int:
        """How many devices are used."""
        return len(self._devices)

    @property
    def callback_metrics(self) -> dict[str, Tensor]:
        """Latest logged values as tensors, under plain and ``_step``/``_epoch`` names: what
        callbacks such as ``ModelCheckpoint`` and ``EarlyStopping`` monitor.

        Computed when read, so the training loop does no work for it.
        """
        results = self._results
        if results is not None:
            self._callback_metrics.update(results.callback_view())
        return self._callback_metrics

    @property
    def logged_metrics(self) -> dict[str, float]:
        """Everything handed to loggers so far (latest value per name), as floats."""
        return self._logged_metrics

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        """Latest ``prog_bar=True`` values as floats (one host transfer per read)."""
        results = self._results
        if results is not None:
            view = results.progress_view()
            if view:
                self._progress_bar_metrics.update(to_host(view)[0])
        return self._progress_bar_metrics

    @property
    def checkpoint_callbacks(self) -> list[Any]:
        """Every ``ModelCheckpoint`` among the callbacks."""
        return [c for c in self.callbacks if "ModelCheckpoint" in _class_names(c)]

    @property
    def checkpoint_callback(self) -> Any:
        """The first ``ModelCheckpoint``, or ``None``."""
        found = self.checkpoint_callbacks
        return found[0] if found else None

    @property
    def early_stopping_callbacks(self) -> list[Any]:
        """Every ``EarlyStopping`` among the callbacks."""
        return [c for c in self.callbacks if "EarlyStopping" in _class_names(c)]

    @property
    def early_stopping_callback(self) -> Any:
        """The first ``EarlyStopping``, or ``None``."""
        found = self.early_stopping_callbacks
        return found[0] if found else None

    @property
    def progress_bar_callback(self) -> Any:
        """The progress bar callback, or ``None``."""
        for c in self.callbacks:
            if "ProgressBar" in _class_names(c):
                return c
        return None

    @property
    def estimated_stepping_batches(self) -> int | float:
        """Optimizer steps the whole fit will take (for OneCycleLR and warm-up schedules)."""
        if self.train_dataloader is None and self._train_source is not None:
            self._load_train_dataloader()
        per_epoch = self.num_training_batches
        if not math.isinf(per_epoch):
            per_epoch = math.ceil(per_epoch / self.accumulate_grad_batches)
        total = math.inf if self.max_epochs == -1 else per_epoch * self.max_epochs
        if self.max_steps != -1:
            total = min(total, self.max_steps)
        return total

    def print(self, *args: Any, **kwargs: Any) -> None:
        """``print`` on the main process only."""
        if self.is_global_zero:
            print(*args, **kwargs)

    # ================================================================== entry points
    def fit(
        self,
        model: EmberModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: EmberDataModule | None = None,
        ckpt_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """Train ``model`` (validating as configured) on the given loaders, the
        datamodule's, or the module's own ``*_dataloader`` methods."""
        if isinstance(train_dataloaders, EmberDataModule):
            datamodule, train_dataloaders = train_dataloaders, None
        if datamodule is not None and (
            train_dataloaders is not None or val_dataloaders is not None
        ):
            raise MisconfigurationError(
                "fit() got both dataloaders and a datamodule: pass one or the other"
            )
        self._run(
            TrainerFn.FITTING,
            model,
            datamodule,
            lambda: self._fit(train_dataloaders, val_dataloaders, ckpt_path),
        )

    def validate(
        self,
        model: EmberModule | None = None,
        dataloaders: Any = None,
        ckpt_path: str | os.PathLike[str] | None = None,
        verbose: bool = True,
        datamodule: EmberDataModule | None = None,
    ) -> list[dict[str, float]]:
        """Run ``validation_step`` over the validation data once; return each loader's
        epoch metrics."""
        return self._evaluate(
            TrainerFn.VALIDATING, model, dataloaders, datamodule, ckpt_path, verbose
        )

    def test(
        self,
        model: EmberModule | None = None,
        dataloaders: Any = None,
        ckpt_path: str | os.PathLike[str] | None = None,
        verbose: bool = True,
        datamodule: EmberDataModule | None = None,
    ) -> list[dict[str, float]]:
        """Run ``test_step`` over the test data once; return each loader's epoch metrics."""
        return self._evaluate(TrainerFn.TESTING, model, dataloaders, datamodule, ckpt_path, verbose)

    def predict(
        self,
        model: EmberModule | None = None,
        dataloaders: Any = None,
        datamodule: EmberDataModule | None = None,
        return_predictions: bool | None = None,
        ckpt_path: str | os.PathLike[str] | None = None,
    ) -> Any:
        """Run ``predict_step`` over the data; return the outputs (a list per loader when
        there are several)."""
        if isinstance(dataloaders, EmberDataModule):
            datamodule, dataloaders = dataloaders, None
        keep = True if return_predictions is None else bool(return_predictions)
        model = self._model_for("predict", model)

        def body() -> Any:
            module = self._module
            assert module is not None
            source = DataSource("predict_dataloader", dataloaders, self.datamodule, module)
            loaders = source.loaders()
            if not loaders:
                raise MisconfigurationError(
                    "predict() needs data: pass dataloaders=..., a datamodule with "
                    "predict_dataloader(), or define predict_dataloader() on the module"
                )
            lengths = [loader_length(d) for d in loaders]
            self.predict_dataloaders = loaders[0] if len(loaders) == 1 else loaders
            self.num_predict_batches = [
                limited_length(n, self.limit_predict_batches, "limit_predict_batches")
                for n in lengths
            ]
            self._restore_checkpoint(ckpt_path)
            self._activate(None, RunningStage.PREDICTING)
            outputs = PredictLoop(self).run(loaders, lengths, self.num_predict_batches, keep)
            if not keep:
                return None
            return outputs[0] if len(outputs) == 1 else outputs

        return self._run(TrainerFn.PREDICTING, model, datamodule, body)

    # ================================================================== the run
    def _model_for(self, entry: str, model: EmberModule | None) -> EmberModule:
        if model is not None:
            return model
        if self._module is None:
            raise MisconfigurationError(
                f"{entry}() needs a model: pass one, e.g. trainer.{entry}(model, ...), or call "
                "trainer.fit(model) first"
            )
        return self._module

    def _run(
        self,
        fn: TrainerFn,
        model: EmberModule,
        datamodule: EmberDataModule | None,
        body: Callable[[], Any],
    ) -> Any:
        """Attach, set up, run ``body``, and always tear down (``on_exception`` on errors)."""
        if not isinstance(model, EmberModule):
            raise MisconfigurationError(
                f"expected an EmberModule, got {type(model).__name__}: subclass "
                "ember.trainer.EmberModule (from ember.trainer import EmberModule)"
            )
        if datamodule is not None and not isinstance(datamodule, EmberDataModule):
            raise MisconfigurationError(
                f"datamodule must be an EmberDataModule, got {type(datamodule).__name__}"
            )
        self._state.fn = fn
        self._state.status = TrainerStatus.RUNNING
        self._state.stage = None
        self.should_stop = False
        self._module = model
        model.trainer = self
        self.datamodule = datamodule
        if datamodule is not None:
            datamodule.trainer = self
        stage = fn.value
        outcome = "failed"
        try:
            self._setup(stage)
            result = body()
            self._state.status = TrainerStatus.FINISHED
            outcome = "success"
            return result
        except BaseException as exc:
            # Ctrl-C, and SystemExit (which the preemption handler's Preempted is)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                outcome = "interrupted"
            self._state.status = TrainerStatus.INTERRUPTED
            self._hooks.on_exception(self, model, exc)
            raise
        finally:
            try:
                self._teardown(stage)
            finally:
                self._finish_run(outcome)

    def _setup(self, stage: str) -> None:
        """prepare_data, setup hooks (datamodule, callbacks, module), device placement."""
        module = self._module
        assert module is not None
        datamodule = self.datamodule
        self._merge_module_callbacks(module)
        if self.is_global_zero:
            if datamodule is not None:
                datamodule.prepare_data()
            module.prepare_data()
        self.strategy.barrier("prepare_data")
        self.strategy.setup_environment()
        if datamodule is not None:
            datamodule.setup(stage)
        self._hooks.setup(self, module, stage)
        module.setup(stage)
        if overrides(module, "configure_model", EmberModule):
            module.configure_model()
        self._module = module = self.strategy.setup_module(module)  # type: ignore[assignment]
        self._module_hooks = ModuleHooks(module)
        self._batch_transfer = self._make_batch_transfer()

    def _teardown(self, stage: str) -> None:
        module = self._module
        assert module is not None
        self._preemption.uninstall()
        self._preemption.reset()
        self.fit_loop.resume_rng_state = None
        self._activate(None, None)
        module.teardown(stage)
        if self.datamodule is not None:
            self.datamodule.teardown(stage)
        self._hooks.teardown(self, module, stage)
        self.strategy.teardown()

    def _make_batch_transfer(self) -> Callable[[Any, int], Any] | None:
        """The function that moves a batch to the device, or ``None`` when nothing would
        (CPU without transfer hooks): the loops then skip the call."""
        mh = self._module_hooks
        assert mh is not None
        before = mh.on_before_batch_transfer
        custom = mh.transfer_batch_to_device
        after = mh.on_after_batch_transfer
        moves = self.accelerator.moves_batches
        convert = (
            self.precision_plugin.convert_input if self.precision_plugin.converts_input else None
        )
        if not (before or custom or after or moves or convert):
            return None
        strategy = self.strategy
        device = strategy.root_device

        def transfer(batch: Any, dataloader_idx: int) -> Any:
            if before is not None:
                batch = before(batch, dataloader_idx)
            if custom is not None:
                batch = custom(batch, device, dataloader_idx)
            elif moves:
                batch = strategy.batch_to_device(batch)
            if after is not None:
                batch = after(batch, dataloader_idx)
            if convert is not None:
                batch = convert(batch)
            return batch

        return transfer

    def _fit(self, train_dataloaders: Any, val_dataloaders: Any, ckpt_path: Any) -> None:
        """The fit entry point once set up: data, optimizers, sanity check, the fit loop."""
        module = self._module
        mh = self._module_hooks
        assert module is not None and mh is not None
        # SIGTERM/SIGUSR1 now save at the next step boundary (_preempt); signal handlers
        # can only be installed from the main thread: elsewhere, signals act as usual
        if threading.current_thread() is threading.main_thread():
            self._preemption.install()
        if not overrides(module, "training_step", EmberModule):
            raise MisconfigurationError(
                f"{type(module).__name__} has no training_step: define "
                "`def training_step(self, batch, batch_idx)` returning the loss"
            )
        self._train_source = DataSource(
            "train_dataloader", train_dataloaders, self.datamodule, module
        )
        if not self._train_source.defined:
            raise MisconfigurationError(
                "fit() needs training data: pass trainer.fit(model, train_dataloader), a "
                "datamodule with train_dataloader(), or define train_dataloader() on "
                f"{type(module).__name__}"
            )
        self._val_source = DataSource("val_dataloader", val_dataloaders, self.datamodule, module)
        self._has_validation = mh.validation_step is not None and (
            self._val_source.defined or bool(self.overfit_batches)
        )
        if self._val_source.defined and mh.validation_step is None:
            warnings.warn(
                f"validation data was given but {type(module).__name__} has no "
                "validation_step: validation is skipped",
                UserWarning,
                stacklevel=3,
            )
        previous = self._train_loader.state_dict() if self._train_loader is not None else None
        self._load_train_dataloader()
        self._load_val_dataloaders()
        self._configure_optimizers()
        self._restore_checkpoint(ckpt_path)
        if self.ckpt_path is None and previous is not None and self._progress.batch_idx:
            # fit again after a fit that stopped inside an epoch (an exception): continue it
            self._train_loader.load_state_dict(previous)  # type: ignore[union-attr]
        self._start_run()
        self._hooks.on_fit_start(self, module)
        if mh.on_fit_start is not None:
            mh.on_fit_start()
        anomaly = (
            torch.autograd.detect_anomaly() if self.detect_anomaly else contextlib.nullcontext()
        )
        with torch.enable_grad(), anomaly:
            self._run_sanity_check()
            self.fit_loop.run()
        if mh.on_fit_end is not None:
            mh.on_fit_end()
        self._hooks.on_fit_end(self, module)

    def _evaluate(
        self,
        fn: TrainerFn,
        model: EmberModule | None,
        dataloaders: Any,
        datamodule: EmberDataModule | None,
        ckpt_path: Any,
        verbose: bool,
    ) -> list[dict[str, float]]:
        """validate() and test(): one pass of the evaluation loop."""
        if isinstance(dataloaders, EmberDataModule):
            datamodule, dataloaders = dataloaders, None
        if datamodule is not None and dataloaders is not None:
            raise MisconfigurationError(
                f"{fn.value}() got both dataloaders and a datamodule: pass one or the other"
            )
        model = self._model_for(fn.value, model)
        validating = fn == TrainerFn.VALIDATING
        prefix, method = (
            ("validation", "val_dataloader") if validating else ("test", "test_dataloader")
        )
        limit_flag = "limit_val_batches" if validating else "limit_test_batches"

        def body() -> list[dict[str, float]]:
            module = self._module
            mh = self._module_hooks
            assert module is not None and mh is not None
            if getattr(mh, f"{prefix}_step") is None:
                raise MisconfigurationError(
                    f"{type(module).__name__} has no {prefix}_step: define "
                    f"`def {prefix}_step(self, batch, batch_idx)` to {fn.value}"
                )
            loaders = DataSource(method, dataloaders, self.datamodule, module).loaders()
            if not loaders:
                raise MisconfigurationError(
                    f"{fn.value}() needs data: pass dataloaders=..., a datamodule with "
                    f"{method}(), or define {method}() on {type(module).__name__}"
                )
            lengths = [loader_length(d) for d in loaders]
            limit = getattr(self, limit_flag)
            limits = [limited_length(n, limit, limit_flag) for n in lengths]
            if validating:
                self._val_loaders, self._val_lengths, self.num_val_batches = (
                    loaders,
                    lengths,
                    limits,
                )
            else:
                self.test_dataloaders = loaders[0] if len(loaders) == 1 else loaders
                self.num_test_batches = limits
            self._restore_checkpoint(ckpt_path)
            self._start_run()
            stage = RunningStage.VALIDATING if validating else RunningStage.TESTING
            metrics = EvaluationLoop(self, stage).run(loaders, lengths, limits)
            if verbose and self.is_global_zero:
                _print_results(fn.value, metrics)
            return metrics

        return self._run(fn, model, datamodule, body)

    # ================================================================== data
    def _load_train_dataloader(self) -> None:
        """(Re)load the training loader and derive the batch counts from it."""
        assert self._train_source is not None
        loaders = self._train_source.loaders()
        if len(loaders) != 1:
            raise MisconfigurationError(
                "fit() needs exactly one training loader; got "
                + ("none (train_dataloader returned None)" if not loaders else f"{len(loaders)}")
                + ". Combine several datasets into one (torch.utils.data.ConcatDataset)."
            )
        loader = loaders[0]
        if self.overfit_batches:
            loader = without_shuffling(loader)
        self.train_dataloader = loader
        self._train_loader = ResumableLoader(loader)
        self._train_length = loader_length(loader)
        n = limited_length(self._train_length, self.limit_train_batches, "limit_train_batches")
        self.num_training_batches = n
        self._loaded_epoch["train"] = self.current_epoch
        interval = self.val_check_interval
        if _is_int(interval):
            if self.check_val_every_n_epoch is not None and not math.isinf(n) and interval > n:
                raise MisconfigurationError(
                    f"val_check_interval={interval} is more than the {n} training batches of "
                    f"an epoch, so validation would never run: set val_check_interval <= {n}, "
                    "or check_val_every_n_epoch=None to count batches across epochs"
                )
            self.val_check_batch = interval
        elif math.isinf(n):
            if interval != 1.0:
                raise MisconfigurationError(
                    f"val_check_interval={interval} is a fraction of the epoch, but the "
                    "training loader has no length: pass an int number of batches instead"
                )
            self.val_check_batch = math.inf
        elif math.isinf(self._train_length) and interval == 1.0:
            self.val_check_batch = math.inf
        else:
            self.val_check_batch = max(1, int(n * interval))

    def _load_val_dataloaders(self) -> None:
        """(Re)load the validation loaders (the training loader under ``overfit_batches``)."""
        if not self._has_validation:
            self._val_loaders, self._val_lengths, self.num_val_batches = [], [], []
            return
        if self.overfit_batches:
            loaders = [self.train_dataloader]
        else:
            assert self._val_source is not None
            loaders = self._val_source.loaders()
        self._val_loaders = loaders
        self._val_lengths = [loader_length(d) for d in loaders]
        self.num_val_batches = [
            limited_length(n, self.limit_val_batches, "limit_val_batches")
            for n in self._val_lengths
        ]
        self._loaded_epoch["val"] = self.current_epoch

    def _reload_due(self, kind: str, epoch: int) -> bool:
        """Whether ``reload_dataloaders_every_n_epochs`` asks for fresh loaders now."""
        every = self.reload_dataloaders_every_n_epochs
        source = self._train_source if kind == "train" else self._val_source
        return bool(
            every
            and source is not None
            and source.reloadable
            and epoch - self._loaded_epoch[kind] >= every
        )

    def _validation_enabled(self) -> bool:
        return self._has_validation and any(self.num_val_batches)

    def _run_sanity_check(self) -> None:
        """A few validation batches before training, to fail fast; leaves no trace."""
        if not self._validation_enabled() or self._num_sanity_val_steps == 0:
            return
        steps = self._num_sanity_val_steps
        limits = [n if steps == -1 else min(steps, n) for n in self.num_val_batches]
        if not any(limits):
            return
        module = self._module
        rng = _capture_rng()
        previous = self._state.stage
        self._state.stage = RunningStage.SANITY_CHECKING
        self._hooks.on_sanity_check_start(self, module)
        self.fit_loop.val_loop.run(self._val_loaders, self._val_lengths, limits, sanity=True)
        self._state.stage = RunningStage.SANITY_CHECKING
        self._hooks.on_sanity_check_end(self, module)
        self._state.stage = previous
        _restore_rng(rng)
        self.fit_loop.val_loop.results.clear()
        self._callback_metrics.clear()
        self._progress_bar_metrics.clear()

    # ================================================================== optimization
    def _configure_optimizers(self) -> None:
        module = self._module
        assert module is not None
        if not overrides(module, "configure_optimizers", EmberModule):
            module.configure_optimizers()  # raises the message that says what to write
        optimizers, configs = normalize_optimizers(module.configure_optimizers())
        name = type(module).__name__
        if module.automatic_optimization:
            if not optimizers:
                raise MisconfigurationError(
                    f"{name}.configure_optimizers returned no optimizer, which automatic "
                    "optimization needs: return one (e.g. torch.optim.SGD(self.parameters(), "
                    "lr=0.1)), or set self.automatic_optimization = False"
                )
            if len(optimizers) > 1:
                raise MisconfigurationError(
                    f"{name}.configure_optimizers returned {len(optimizers)} optimizers, but "
                    "automatic optimization steps exactly one: set "
                    "self.automatic_optimization = False and step them in training_step "
                    "(self.optimizers(), self.manual_backward(loss)), or put all parameter "
                    "groups in one optimizer"
                )
        else:
            if self.accumulate_grad_batches > 1:
                raise MisconfigurationError(
                    f"accumulate_grad_batches={self.accumulate_grad_batches} only applies to "
                    "automatic optimization: remove it, and accumulate in training_step by "
                    "stepping every N batches"
                )
            if self.gradient_clip_val:
                raise MisconfigurationError(
                    "Trainer(gradient_clip_val=...) only applies to automatic optimization: "
                    "remove it, and call self.clip_gradients(optimizer, gradient_clip_val=...) "
                    "in training_step before optimizer.step()"
                )
        self.optimizers = optimizers
        self.lr_scheduler_configs = configs
        self._manual_optimizers = [ManualOptimizer(o, self) for o in optimizers]

    def _module_optimizers(self) -> list[Any]:
        """What ``module.optimizers()`` returns: wrapped in manual optimization."""
        module = self._module
        if module is not None and not module.automatic_optimization:
            return list(self._manual_optimizers)
        return list(self.optimizers)

    def _manual_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """``module.manual_backward``: the backward hooks around the precision's backward."""
        module = self._module
        mh = self._module_hooks
        assert module is not None and mh is not None
        if module.automatic_optimization:
            raise MisconfigurationError(
                "manual_backward is for manual optimization: set "
                "self.automatic_optimization = False in __init__, or return the loss from "
                "training_step and let the trainer call backward"
            )
        self._hooks.on_before_backward(self, module, loss)
        if mh.on_before_backward is not None:
            mh.on_before_backward(loss)
        if mh.backward is not None:
            module.backward(loss, *args, **kwargs)
        else:
            self.precision_plugin.backward(loss, module, *args, **kwargs)
        if mh.on_after_backward is not None:
            mh.on_after_backward()
        self._hooks.on_after_backward(self, module)

    def _clip_gradients(
        self,
        optimizer: Any,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the gradients of ``optimizer``'s parameters (flags fill missing arguments)."""
        value = self.gradient_clip_val if gradient_clip_val is None else gradient_clip_val
        algorithm = (
            self.gradient_clip_algorithm
            if gradient_clip_algorithm is None
            else gradient_clip_algorithm
        )
        if not value:
            return
        if algorithm not in ("norm", "value"):
            raise MisconfigurationError(
                f"gradient_clip_algorithm must be 'norm' or 'value'; got {algorithm!r}"
            )
        if isinstance(optimizer, ManualOptimizer):
            optimizer = optimizer.optimizer
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if algorithm == "norm":
            torch.nn.utils.clip_grad_norm_(params, value)
        else:
            torch.nn.utils.clip_grad_value_(params, value)

    # ================================================================== metrics
    def _activate(
        self, results: ResultCollection | None, stage: RunningStage | None, merge: bool = True
    ) -> ResultCollection | None:
        """Make ``results`` the collection ``self.log`` writes to; keep what the previous
        one holds in ``callback_metrics`` (unless ``merge`` is false: the sanity check)."""
        previous = self._results
        if merge and previous is not None and previous is not results:
            self._merge_views(previous)
        self._results = results
        if self._module is not None:
            self._module._ember_results = results
        self._state.stage = stage
        return previous

    def _merge_views(self, results: ResultCollection) -> None:
        """Copy a collection's current values into the persistent metric dicts."""
        self._callback_metrics.update(results.callback_view())
        view = results.progress_view()
        if view:
            self._progress_bar_metrics.update(to_host(view)[0])

    def _emit(self, metrics: dict[str, float]) -> None:
        """Hand flushed metrics (already floats) to :meth:`_publish` with the epoch added."""
        self._publish({**metrics, "epoch": float(self.current_epoch)}, self.global_step)

    def _publish(self, metrics: dict[str, float], step: int) -> None:
        """The one place flushed metrics leave the loop: plain floats at a step.

        Updates :attr:`logged_metrics` and appends them to the run journal (one
        transaction); the loggers receive them from their own threads, so this never
        waits on a tracker.
        """
        self._logged_metrics.update(metrics)
        self._tracking.log_metrics(metrics, step)

    # ================================================================== tracking
    @property
    def run(self) -> Run:
        """The tracking run of this trainer: ``dir``, ``id``, ``flush()``, and ``report``
        once finished. A ``DisabledRun`` before the first run, with ``logger=False`` or
        ``fast_dev_run``, and on every rank but zero."""
        return self._tracking

    @property
    def loggers(self) -> LoggerHandles:
        """A handle on each logger of the run, by position or label; ``call(fn)`` runs
        ``fn`` against the tracker's own object (see docs/tracking.md)."""
        return self._tracking.loggers

    @property
    def logger(self) -> LoggerHandle | None:
        """The first logger's handle (``None`` without loggers), as in Lightning."""
        handles = self._tracking.loggers
        return handles[0] if handles else None

    def log_text(self, key: str, text: str, step: int | None = None) -> None:
        """Record a piece of text (generated samples, notes) in the run, at the current
        global step unless ``step`` is given; loggers that take text receive it."""
        run = self._check_run_open(f"trainer.log_text({key!r}, ...)")
        run.log_text(key, text, step=self.global_step if step is None else step)

    def log_image(self, key: str, image: Any, step: int | None = None) -> None:
        """Record an image in the run, at the current global step unless ``step`` is given.

        ``image``: a tensor or numpy array (HW, HWC or CHW; float in [0, 1] or uint8), a
        PIL image, a matplotlib figure or an image file. It is saved as a PNG under the
        run directory's ``images/`` and journaled; loggers that take images receive it.
        Without a run (``logger=False``, ``fast_dev_run``, ranks but zero) it is dropped.
        """
        run = self._check_run_open(f"trainer.log_image({key!r}, ...)")
        if not run.enabled:
            return
        from ember.hub.tracking.images import save_png
        from ember.trainer.images import as_image

        step = self.global_step if step is None else int(step)
        folder = run.dir / "images" / _file_safe(key)
        path = folder / f"step{step}.png"
        n = 1
        while path.exists():
            n += 1
            path = folder / f"step{step}-{n}.png"
        width, height, channels = save_png(as_image(image), path)
        run.log_image(
            key, path, step=step, metadata={"width": width, "height": height, "channels": channels}
        )

    def _check_run_open(self, what: str) -> Run:
        run = self._tracking
        if run.report is not None:
            raise MisconfigurationError(
                f"{what} was called after the run {run.id} finished: call it while fit, "
                "validate or test runs (from a hook or a step)"
            )
        return run

    def _start_run(self) -> None:
        """Open the entry point's run: the run of the checkpoint a fit resumes from, else
        this trainer's live run (fit then test: one run, one tracker run per logger),
        else a continuation of its finished one, else a new one."""
        resume_from, self._resume_from = self._resume_from, None
        if self._logger_entries is None or self.fast_dev_run:
            return
        stage = self._state.fn.value if self._state.fn is not None else "fit"
        live = self._tracking
        hparams = self._hparams_for_run()  # on every rank, so a clash stops them all alike
        if resume_from is None and live.enabled and live.report is None:
            live.begin_stage(stage)
            self._log_hparams(live, hparams)
            return
        if live.enabled and live.report is None:  # resuming a checkpoint: re-open its run
            self._finish_run(live.exit_status, final=True)
        ckpt_run, resume_step = resume_from if resume_from is not None else (None, None)
        identity = ckpt_run or self._run_identity
        run = Run.start(
            self.default_root_dir,
            self._logger_entries,
            config=self._tracking_config(),
            resume=identity,
            resume_step=resume_step,
            rank=self.global_rank,
            policy=self._delivery,
        )
        self._tracking = run
        # every rank learns rank zero's run directory, so ``log_dir`` agrees everywhere
        self._run_dir = self.strategy.broadcast(str(run.dir) if run.enabled else None, src=0)
        if not run.enabled:
            return
        run.quiet_exit = True
        finish_when_collected(self, run)
        run.begin_stage(stage)
        self._run_identity = run.state_dict()
        self._log_hparams(run, hparams)
        if identity is None or ckpt_run is not None:
            self.print(self._run_header(run, resumed=identity is not None))

    def _finish_run(self, outcome: str, *, final: bool = False) -> None:
        """End the entry point's stage with ``outcome``, waiting at most ``logger_timeout``
        for the loggers; print the report unless all was delivered. A success keeps the
        tracker runs open for the next stage (they are finalized at exit, or when a fit
        resumes another checkpoint); a failure or an interruption finalizes them now."""
        self._resume_from = None
        run = self._tracking
        if not run.enabled or run.report is not None:
            return
        if outcome == "success" and not final:
            stage = self._state.fn.value if self._state.fn is not None else "fit"
            report = run.end_stage(stage, outcome)
        else:
            report = run.finish(outcome)
        if not report.complete:
            self.print(report)

    def _record_artifact(self, path: str | os.PathLike[str], kind: str) -> None:
        """Record a file the run wrote (``kind``: ``"checkpoint"``) by reference."""
        run = self._tracking
        if not run.enabled or run.report is not None:
            return
        metadata: dict[str, Any] = {"epoch": self.current_epoch}
        if kind == "checkpoint":
            # trackers that keep only the best checkpoint (ember-mlflow's log_checkpoints)
            # need to know; ModelCheckpoint updates best_model_path before it writes
            full = os.path.abspath(os.fspath(path))
            for cb in self.checkpoint_callbacks:
                best = getattr(cb, "best_model_path", "")
                if best and os.path.abspath(best) == full:
                    metadata["best"] = True
                    score = getattr(cb, "best_model_score", None)
                    if getattr(cb, "monitor", None) and score is not None:
                        metadata.update(monitor=cb.monitor, score=float(score))
                    break
            else:
                metadata["best"] = False
        run.log_artifact(path, kind, step=self.global_step, metadata=metadata)

    def _log_hparams(self, run: Run, params: dict[str, Any]) -> None:
        """Record the hyperparameters, once per run unless they changed."""
        if not params:
            return
        logged = (run.id, repr(params))
        if logged != self._hparams_logged:
            run.log_hyperparams(params)
            self._hparams_logged = logged

    def _hparams_for_run(self) -> dict[str, Any]:
        """The datamodule's hyperparameters merged with the module's (as Lightning does);
        ``save_hyperparameters(logger=False)`` keeps an object's out."""
        params: dict[str, Any] = {}
        datamodule, module = self.datamodule, self._module
        if datamodule is not None and getattr(datamodule, "_log_hyperparams", True):
            params.update(datamodule.hparams)
        if module is not None and getattr(module, "_log_hyperparams", True):
            clashes = [
                k for k, v in module.hparams.items() if k in params and repr(params[k]) != repr(v)
            ]
            if clashes:
                raise MisconfigurationError(
                    f"the hyperparameters {clashes} are saved by both the module and the "
                    "datamodule with different values, so the run cannot record one value: "
                    "rename them in one of the two, or call save_hyperparameters(logger=False) "
                    "on one"
                )
            params.update(module.hparams)
        return params

    def _tracking_config(self) -> dict[str, Any]:
        """The resolved configuration the run records (it redacts secrets itself)."""
        flags: dict[str, Any] = {}
        for flag, given in self._flags.items():
            value = getattr(self, flag, given)
            if isinstance(value, timedelta):
                value = str(value)
            elif isinstance(value, os.PathLike):
                value = os.fspath(value)
            flags[flag] = value
        entries = self._logger_entries
        flags.update(
            accelerator=self.accelerator.name or type(self.accelerator).__name__,
            strategy=self.strategy.name or type(self.strategy).__name__,
            precision=self.precision_plugin.name or type(self.precision_plugin).__name__,
            devices=[str(d) for d in self._devices],
            # options as resolved: secret ones already replaced by ***
            logger=False
            if entries is None
            else [{"name": e.provider or e.label, **e.options} for e in entries],
            callbacks=[type(c).__qualname__ for c in self.callbacks],
            enable_checkpointing=self._enable_checkpointing,
        )
        config: dict[str, Any] = {"trainer": flags, "world_size": self.world_size}
        for key, obj in (("model", self._module), ("data", self.datamodule)):
            if obj is not None:
                config[key] = {"class_path": f"{type(obj).__module__}.{type(obj).__qualname__}"}
        return config

    def _run_header(self, run: Run, resumed: bool) -> str:
        """One line: the run, where its files go, its loggers and the active plugins."""
        entries = self._logger_entries or []
        loggers = ", ".join(e.label for e in entries) or "none (journal only)"
        plugins = dict.fromkeys(
            " ".join(filter(None, (p.distribution or p.name, p.version)))
            for p in get_plugin_manager().plugins()
            if p.status == "active"
        )
        where = str(run.dir)
        with contextlib.suppress(ValueError):  # another drive on Windows
            relative = os.path.relpath(where)
            where = where if relative.startswith("..") else relative
        verb = "resumed run" if resumed else "run"
        return (
            f"ember {verb} {run.id} in {where}; loggers: {loggers}; "
            f"plugins: {', '.join(plugins) or 'none'}"
        )

    # ================================================================== checkpoint seams
    def _callback_states(self) -> dict[str, Any]:
        """Each callback's ``state_dict()``, keyed by its ``state_key``."""
        states: dict[str, Any] = {}
        for cb in self.callbacks:
            state_dict = getattr(cb, "state_dict", None)
            if callable(state_dict):
                state = state_dict()
                if state:
                    states[getattr(cb, "state_key", type(cb).__qualname__)] = state
        return states

    def _load_callback_states(self, states: Mapping[str, Any]) -> None:
        """Give each callback the state saved under its ``state_key`` (missing ones are
        left as they are)."""
        for cb in self.callbacks:
            key = getattr(cb, "state_key", type(cb).__qualname__)
            if key in states and callable(getattr(cb, "load_state_dict", None)):
                cb.load_state_dict(states[key])

    def _restore_checkpoint(self, ckpt_path: Any) -> None:
        """Restore a checkpoint before a run: ``None`` means start from the module as is.

        Runs after the callbacks' ``setup`` (their folders decide what ``"last"`` and
        ``"best"`` mean); a fit's random state is restored later, by the fit loop.
        """
        self.ckpt_path = None
        if ckpt_path is None:
            return
        from ember.trainer.checkpoint import load_checkpoint_safe, resolve_ckpt_path

        path = resolve_ckpt_path(ckpt_path, self.callbacks, self.default_root_dir)
        if path is None:
            return
        checkpoint = load_checkpoint_safe(path)
        if self._state.fn == TrainerFn.FITTING and checkpoint.get("weights_only"):
            name = type(self._module).__name__
            raise CheckpointError(
                f"cannot resume training from {path}: it was saved with weights only "
                "(save_weights_only=True), so it holds no optimizer, scheduler, loop or "
                "random state. To train on from its weights, build the model with "
                f"{name}.load_from_checkpoint({os.fspath(path)!r}) and call fit without "
                "ckpt_path; to resume, pass a full checkpoint (ModelCheckpoint(save_last=True) "
                "writes last.ckpt)."
            )
        self.ckpt_path = os.fspath(path)
        self._load_checkpoint_state(checkpoint)

    def _checkpoint_state(self, weights_only: bool = False) -> dict[str, Any]:
        """Everything needed to continue this run exactly (module, optimizers,
        schedulers, loop position, callbacks, datamodule, precision)."""
        module = self._module
        assert module is not None
        state: dict[str, Any] = {
            "epoch": self.current_epoch,
            "global_step": self.global_step,
            "state_dict": module.state_dict(),
            "loops": {"fit_loop": self._fit_loop_state()},
        }
        run_identity = self._tracking.state_dict()
        if run_identity:  # resuming from this checkpoint continues the same run
            state["run"] = run_identity
        from ember.trainer.checkpoint import capture_rng_state, to_plain

        if getattr(module, "_hparams", None):
            state["hyper_parameters"] = to_plain(dict(module.hparams))
        if self.datamodule is not None and getattr(self.datamodule, "_hparams", None):
            state["datamodule_hyper_parameters"] = to_plain(dict(self.datamodule.hparams))
        if weights_only:
            state["weights_only"] = True  # so that resuming from it says why it cannot
        else:
            state["rng"] = capture_rng_state()
            state["optimizer_states"] = [o.state_dict() for o in self.optimizers]
            state["lr_schedulers"] = [c.scheduler.state_dict() for c in self.lr_scheduler_configs]
            state["callbacks"] = self._callback_states()
            precision_state = self.precision_plugin.state_dict()
            if precision_state:
                state["precision"] = precision_state
            if self.datamodule is not None:
                state["datamodule"] = self.datamodule.state_dict()
        mh = self._module_hooks
        if mh is not None and mh.on_save_checkpoint is not None:
            mh.on_save_checkpoint(state)
        self._hooks.on_save_checkpoint(self, module, state)
        return state

    def _load_checkpoint_state(self, checkpoint: Mapping[str, Any]) -> None:
        """Restore what :meth:`_checkpoint_state` saved into the running trainer."""
        module = self._module
        assert module is not None
        mh = self._module_hooks
        if mh is not None and mh.on_load_checkpoint is not None:
            mh.on_load_checkpoint(checkpoint)  # type: ignore[arg-type]
        self._hooks.on_load_checkpoint(self, module, checkpoint)
        from ember.trainer.checkpoint import load_module_state

        load_module_state(module, checkpoint["state_dict"])
        if self._state.fn != TrainerFn.FITTING:
            return
        # the fit continues the checkpoint's run; what was logged after it is superseded
        self._resume_from = (checkpoint.get("run") or None, int(checkpoint.get("global_step", 0)))
        stepped = bool(checkpoint.get("global_step"))
        for optimizer, state in zip(
            self.optimizers, checkpoint.get("optimizer_states", []), strict=False
        ):
            optimizer.load_state_dict(state)
            if stepped:
                # the interrupted run had stepped it; without this torch warns that a
                # scheduler steps "before optimizer.step()" when a resume replays an epoch end
                optimizer._opt_called = True  # type: ignore[attr-defined]
        for config, state in zip(
            self.lr_scheduler_configs, checkpoint.get("lr_schedulers", []), strict=False
        ):
            config.scheduler.load_state_dict(state)
        self._load_callback_states(checkpoint.get("callbacks", {}))
        if "precision" in checkpoint:
            self.precision_plugin.load_state_dict(checkpoint["precision"])
        if self.datamodule is not None and "datamodule" in checkpoint:
            self.datamodule.load_state_dict(checkpoint["datamodule"])
        fit_state = checkpoint.get("loops", {}).get("fit_loop", {})
        self._progress.load_state_dict(fit_state)
        self._resume_train_loader(fit_state.get("train_dataloader"))
        self.fit_loop.resume_rng_state = checkpoint.get("rng")

    def _fit_loop_state(self) -> dict[str, Any]:
        """The fit loop's position, with the training loader's (epoch, batches consumed,
        sampler order) when there is one."""
        state: dict[str, Any] = self._progress.state_dict()
        if self._train_loader is not None:
            state["train_dataloader"] = self._train_loader.state_dict()
        return state

    def _resume_train_loader(self, state: Mapping[str, Any] | None) -> None:
        """Put the training loader where the restored fit stopped inside its epoch."""
        self._reload_for_resume()
        loader = self._train_loader
        if loader is None:
            return
        if state is None:
            # a checkpoint without the loader's state: only the batch count is known, so
            # the consumed batches are read again and dropped (with a warning)
            state = {"epoch": self.current_epoch, "batches_consumed": self._progress.batch_idx}
        loader.load_state_dict(dict(state))

    def _reload_for_resume(self) -> None:
        """Under ``reload_dataloaders_every_n_epochs``, reload as the uninterrupted run
        last did before the restored epoch, so the fit loop does not reload (and lose the
        restored position) on entering it."""
        every = self.reload_dataloaders_every_n_epochs
        if not every:
            return
        last = self.current_epoch - self.current_epoch % every
        if self._reload_due("train", last):
            self._load_train_dataloader()
        if self._reload_due("val", last):
            self._load_val_dataloaders()
        self._loaded_epoch = {"train": last, "val": last}

    def _preempt(self) -> None:
        """Save ``preempted.ckpt`` at this step boundary and stop with status 75."""
        path = preemption_checkpoint_path(self.callbacks, self.default_root_dir)
        # a process told by another one (distributed) saw no signal itself
        signum = self._preemption.signum or signal.SIGTERM
        self.save_checkpoint(path)
        exc = Preempted(signum, str(path))
        if self.is_global_zero:
            print(f"ember: {exc}", file=sys.stderr, flush=True)
        raise exc

    def save_checkpoint(self, filepath: str | os.PathLike[str], weights_only: bool = False) -> None:
        """Write a checkpoint of the running fit to ``filepath`` atomically."""
        from ember.trainer.checkpoint import checkpoint_header, save_checkpoint_atomic

        if self._module is None:
            raise MisconfigurationError(
                "save_checkpoint needs a module: call it during or after "
                "trainer.fit/validate/test/predict"
            )

        state = {**checkpoint_header(), **self._checkpoint_state(weights_only)}
        if self.is_global_zero:
            save_checkpoint_atomic(state, filepath)
            self._record_artifact(filepath, "checkpoint")
        self.strategy.barrier("save_checkpoint")


# ---------------------------------------------------------------------- helpers
def _capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        state["numpy"] = numpy.random.get_state()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        sys.modules["numpy"].random.set_state(state["numpy"])


def _file_safe(key: str) -> str:
    """``key`` as one folder name: path separators and odd characters become ``_``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(key)).strip(".")
    return safe or "image"


def _print_results(entry: str, metrics: list[dict[str, float]]) -> None:
    """The table validate/test print: one row per metric, one column per loader."""
    names = sorted({k for m in metrics for k in m})
    if not names:
        return
    header = [f"{entry.capitalize()} metric"] + [f"DataLoader {i}" for i in range(len(metrics))]
    rows = [[name] + [f"{m[name]:.6g}" if name in m else "" for m in metrics] for name in names]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rule = "-" * (sum(widths) + 3 * (len(widths) - 1))
    print(rule)
    print("   ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(rule)
    for row in rows:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(rule)
