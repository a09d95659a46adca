"""The ``Trainer``: Lightning's flags and entry points (``fit``, ``validate``, ``test``,
``predict``) over ember's parts.

The Trainer is the facade users know; the work is done by parts it builds and hands to
the loops (``docs/architecture.md`` follows one batch through them):

* :class:`~ember.trainer.flags.TrainerFlags`: the checked flags;
* :class:`~ember.trainer.hardware.Hardware`: accelerator, precision mode, strategy;
* :class:`~ember.trainer.hooks.HookDispatcher`: fires callback and module hooks;
* :class:`~ember.trainer.data_schedule.DataSchedule`: loaders, lengths, validation schedule;
* :class:`~ember.trainer.optimization.Optimization`: backward, unscale, clip, step;
* :class:`~ember.trainer.metrics.Metrics`: ``self.log`` results and the metric views;
* :class:`~ember.trainer.tracking_session.TrackingSession`: runs, journal and loggers;
* :class:`~ember.trainer.checkpointing.Checkpointing`: checkpoint dump/restore, preemption.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
from ember.hub import CALLBACK_HOOKS, Lifecycle, PluginManager, get_plugin_manager
from ember.trainer.callback import Callback, callback_role
from ember.trainer.checkpointing import Checkpointing
from ember.trainer.data_schedule import DataSchedule
from ember.trainer.datamodule import EmberDataModule
from ember.trainer.determinism import Determinism
from ember.trainer.errors import MisconfigurationError
from ember.trainer.fit_checks import warn_at_fit_start
from ember.trainer.flags import (
    TrainerFlags,
    check_call,
    check_writable_root,
    root_dir_error,
    unknown_argument,
)
from ember.trainer.hardware import Hardware, make_batch_transfer
from ember.trainer.hooks import HookDispatcher, without_logging
from ember.trainer.loops import EvaluationLoop, FitLoop, LoopProgress, PredictLoop
from ember.trainer.metrics import Metrics
from ember.trainer.module import EmberModule, overrides
from ember.trainer.optim import LRSchedulerConfig
from ember.trainer.optimization import Optimization
from ember.trainer.plugins import Accelerator, Precision, Strategy
from ember.trainer.results import plain_metric
from ember.trainer.state import RunningStage, TrainerFn, TrainerState, TrainerStatus
from ember.trainer.tracking_session import TrackingSession, run_hyperparameters
from ember.trainer.utilities import rank_zero_only
from torch import Tensor

if TYPE_CHECKING:
    from ember.hub.tracking import LoggerArg, LoggerHandle, LoggerHandles, Run

#: the flags readable as ``trainer.<flag>`` (Lightning's attribute names)
_FLAG_NAMES = frozenset(TrainerFlags.__dataclass_fields__)


def _known_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """``__init__`` with its arguments checked first: a misspelled or Lightning-only one
    (``max_epoch=3``, ``gpus=1``) is an error that names the right one. The signature
    stays the original's, so run-file schemas read it unchanged."""
    known = frozenset(inspect.signature(init).parameters) - {"self"}

    @functools.wraps(init)
    def checked(self: Trainer, *args: Any, **kwargs: Any) -> None:
        if args:
            raise MisconfigurationError(
                f"Trainer takes keyword arguments only (e.g. Trainer(max_epochs=3)); got "
                f"{len(args)} positional: {', '.join(map(repr, args))}"
            )
        for name, value in kwargs.items():
            if name not in known:
                raise unknown_argument(name, value, known)
        init(self, **kwargs)

    return checked


class Trainer:
    """Runs an :class:`~ember.trainer.EmberModule`: ``fit``, ``validate``, ``test``,
    ``predict``. Flags follow PyTorch Lightning's names and defaults; see
    ``docs/trainer.md``.

    :param plugin_manager: the hub's plugin manager that resolves providers, callbacks,
        loggers and lifecycle plugins (default: the process-global one).
    """

    @_known_arguments
    def __init__(
        self,
        *,
        accelerator: str | Mapping[str, Any] | Accelerator = "auto",
        strategy: str | Mapping[str, Any] | Strategy = "auto",
        devices: int | str | list[int] = "auto",
        num_nodes: int = 1,
        precision: str | int | Mapping[str, Any] | Precision = "32-true",
        logger: LoggerArg = None,
        logger_timeout: float = 30.0,
        logger_delivery: str = "thread",
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
        plugin_manager: PluginManager | None = None,
    ) -> None:
        given = {k: v for k, v in locals().items() if k not in ("self", "plugin_manager")}
        #: the flags as given, for the run's recorded configuration
        self._given_flags: dict[str, Any] = given
        self.flags = TrainerFlags.check(
            **{k: v for k, v in given.items() if k in _FLAG_NAMES},
        )
        if plugin_manager is not None and not isinstance(plugin_manager, PluginManager):
            raise MisconfigurationError(
                "plugin_manager must be an ember.hub.PluginManager (or None for the "
                f"process-wide one); got {type(plugin_manager).__name__}"
            )
        self.plugin_manager = plugin_manager if plugin_manager is not None else get_plugin_manager()
        # loggers are resolved now, so that a misspelled name or option fails here
        self.tracking = TrackingSession(
            logger, self.flags.logger_timeout, self.plugin_manager, self.flags.logger_delivery
        )
        self.hardware = Hardware.resolve(
            self.plugin_manager, accelerator, strategy, devices, precision, num_nodes
        )
        #: torch's determinism switches, set for the duration of each entry point
        self._determinism = Determinism(self.flags.deterministic, self.flags.benchmark)
        self.callbacks: list[Any] = self._resolve_callbacks(callbacks)
        self._lifecycle = self._make_lifecycle()
        self._state = TrainerState()
        #: whether trainer.log_metrics in a sanity check has warned (once per trainer)
        self._warned_sanity_log = False
        self.progress = LoopProgress()
        self.metrics = Metrics(self.tracking.log_metrics)
        self.data = DataSchedule(self.flags, self.hardware.strategy, self.progress)
        self.checkpointing = Checkpointing(self)
        #: set by a callback (early stopping) or the module to end training
        self.should_stop = False
        self._module: EmberModule | None = None
        self.datamodule: EmberDataModule | None = None
        #: the hook dispatcher of the running (or last) entry point
        self.hooks: HookDispatcher | None = None
        #: the optimization of the running (or last) fit
        self.optimization: Optimization | None = None
        #: the fit loop of the running (or last) fit
        self.fit_loop: FitLoop | None = None
        self._transfer: Callable[[Any, int], Any] | None = None
        #: when the running fit started training (``None``: it has not got that far)
        self._fit_started: float | None = None

    def __getattr__(self, name: str) -> Any:
        # Lightning's flag attributes (trainer.max_epochs, ...) read the checked flags
        if name in _FLAG_NAMES and "flags" in self.__dict__:
            return getattr(self.__dict__["flags"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ================================================================== callbacks
    def _resolve_callbacks(self, callbacks: Iterable[Any] | Any | None) -> list[Any]:
        """The user's callbacks (objects, provider names or ``{"name": ...}`` mappings),
        then a progress bar, a model summary and a checkpointer unless one with that
        role was given or the flag disables it; checkpointers go last."""
        if callbacks is None:
            given: list[Any] = []
        elif isinstance(callbacks, (str, Mapping)) or not isinstance(callbacks, Iterable):
            given = [callbacks]
        else:
            given = list(callbacks)
        resolved: list[Any] = []
        for cb in given:
            if isinstance(cb, (str, Mapping)):
                cb = self.plugin_manager.create("callback", cb)
            elif isinstance(cb, type):
                raise MisconfigurationError(
                    f"callbacks got the class {cb.__name__}: pass an instance, {cb.__name__}(...)"
                )
            elif not isinstance(cb, Callback) and not any(hasattr(cb, h) for h in CALLBACK_HOOKS):
                raise MisconfigurationError(
                    f"callbacks got {cb!r} ({type(cb).__name__}), which is not a callback: pass "
                    "Callback instances, provider names such as 'early_stopping', or "
                    "{'name': ..., **options} mappings"
                )
            resolved.append(cb)
        twice = [c for i, c in enumerate(resolved) if any(c is d for d in resolved[:i])]
        if twice:
            raise MisconfigurationError(
                f"callbacks holds the same {type(twice[0]).__name__} object twice, so each of "
                "its hooks would run twice: pass it once (or two separate instances)"
            )
        roles = {callback_role(c) for c in resolved}
        flags = self.flags
        from ember.trainer.callbacks import ModelSummary, ProgressBar
        from ember.trainer.checkpoint import ModelCheckpoint

        if flags.enable_progress_bar and "progress_bar" not in roles:
            resolved.append(ProgressBar())
        if flags.enable_model_summary and "model_summary" not in roles:
            resolved.append(ModelSummary())
        checkpointers = [type(c).__name__ for c in resolved if callback_role(c) == "checkpointer"]
        checkpointing = bool(checkpointers)
        if checkpointing and not flags.enable_checkpointing:
            raise MisconfigurationError(
                "Trainer(enable_checkpointing=False) was given a checkpointer callback "
                f"({', '.join(checkpointers)}): remove the callback, or drop "
                "enable_checkpointing=False"
            )
        if flags.enable_checkpointing and not checkpointing and not flags.fast_dev_run:
            # with last.ckpt (a hard link to the epoch's file: no second write), so that a
            # job can always be relaunched with ckpt_path="last"
            resolved.append(ModelCheckpoint(save_last=True))
        # checkpointers run last (as in Lightning), so that a checkpoint saved by an epoch's
        # end hooks holds every other callback's state after that epoch: the resume starts
        # at the next epoch and runs none of those hooks again
        others = [c for c in resolved if callback_role(c) != "checkpointer"]
        return others + [c for c in resolved if callback_role(c) == "checkpointer"]

    def _make_lifecycle(self) -> Lifecycle:
        return Lifecycle(
            plugins=self.plugin_manager.lifecycle_plugins(),
            callbacks=self.callbacks,
            callback_base=Callback,
        )

    def _merge_module_callbacks(self, module: EmberModule) -> bool:
        """Callbacks from ``configure_callbacks`` replace trainer callbacks of the same
        type; checkpointers go last so they see everything the others did. Returns
        whether the callbacks changed."""
        if not overrides(module, "configure_callbacks", EmberModule):
            return False
        extra = module.configure_callbacks()
        if extra is None:
            return False
        extra = [extra] if not isinstance(extra, (list, tuple)) else list(extra)
        if not extra:
            return False
        types = {type(c) for c in extra}
        merged = [c for c in self.callbacks if type(c) not in types] + extra
        checkpointers = [c for c in merged if callback_role(c) == "checkpointer"]
        self.callbacks = [c for c in merged if c not in checkpointers] + checkpointers
        self._lifecycle = self._make_lifecycle()
        return True

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
    def evaluating(self) -> bool:
        """Whether a validation, test or sanity-check loop is running."""
        return self._state.stage in (
            RunningStage.VALIDATING,
            RunningStage.TESTING,
            RunningStage.SANITY_CHECKING,
        )

    @property
    def interrupted(self) -> bool:
        """Whether the last entry point ended with an exception (Ctrl-C included)."""
        return self._state.status == TrainerStatus.INTERRUPTED

    @property
    def received_sigterm(self) -> bool:
        """Whether a preemption signal (SIGTERM, SIGUSR1) arrived during this fit."""
        return self.checkpointing.preemption.requested

    @property
    def is_last_batch(self) -> bool:
        """Whether the training batch being processed is its epoch's last (read it in
        ``on_train_batch_start``/``on_train_batch_end`` or ``training_step``)."""
        return self.progress.is_last_batch

    @property
    def enable_validation(self) -> bool:
        """Whether fit validates: validation data and ``validation_step`` exist and
        ``limit_val_batches`` leaves batches."""
        return self.data.validation_enabled

    @property
    def num_sanity_val_batches(self) -> list[int | float]:
        """Batches per validation loader that the sanity check runs."""
        return self.data.sanity_limits()

    @property
    def precision(self) -> str:
        """The precision mode's name (``"32-true"``, ``"bf16-mixed"``, ...)."""
        return self.precision_plugin.name or type(self.precision_plugin).__name__

    @property
    def num_nodes(self) -> int:
        """How many machines take part (the strategy's ``num_nodes``; 1 when it has none)."""
        return int(getattr(self.strategy, "num_nodes", 1))

    @property
    def node_rank(self) -> int:
        """This machine's index (the strategy's ``node_rank``; 0 when it has none)."""
        return int(getattr(self.strategy, "node_rank", 0))

    @property
    def accumulate_grad_batches(self) -> int:
        """Batches whose gradients add up before each optimizer step: the flag, or what a
        callback (``GradientAccumulationScheduler``) set for the running epoch."""
        optimization = self.optimization
        accumulate = getattr(optimization, "accumulate", None)
        return self.flags.accumulate_grad_batches if accumulate is None else accumulate

    @accumulate_grad_batches.setter
    def accumulate_grad_batches(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise MisconfigurationError(
                f"accumulate_grad_batches must be an int >= 1; got {value!r}"
            )
        optimization = self.optimization
        if optimization is None or not hasattr(optimization, "accumulate"):
            raise MisconfigurationError(
                "trainer.accumulate_grad_batches can be changed only while fit trains (from "
                "on_train_epoch_start, as GradientAccumulationScheduler does); pass "
                "Trainer(accumulate_grad_batches=...) to set it for a whole run"
            )
        optimization.accumulate = value

    @property
    def current_epoch(self) -> int:
        """The running epoch (after fit: the number of epochs run)."""
        return self.progress.current_epoch

    @property
    def global_step(self) -> int:
        """Optimizer steps taken."""
        return self.progress.global_step

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
    def accelerator(self) -> Accelerator:
        """The accelerator the run computes on."""
        return self.hardware.accelerator

    @property
    def precision_plugin(self) -> Precision:
        """The precision mode."""
        return self.hardware.precision

    @property
    def strategy(self) -> Strategy:
        """The strategy: devices, processes, the wrapped model, collectives."""
        return self.hardware.strategy

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers of the running (or last) fit."""
        return self.optimization.optimizers if self.optimization is not None else []

    @property
    def lr_scheduler_configs(self) -> list[LRSchedulerConfig]:
        """The schedulers of the running (or last) fit, with when each steps."""
        return self.optimization.lr_scheduler_configs if self.optimization is not None else []

    @property
    def train_dataloader(self) -> Any:
        """The training loader (``None`` before fit loads it)."""
        return self.data.train_dataloader

    @property
    def num_training_batches(self) -> int | float:
        """Training batches per epoch after ``limit_train_batches``."""
        return self.data.num_training_batches

    @property
    def val_check_batch(self) -> int | float:
        """Validation runs after every this many training batches (``inf``: epoch end)."""
        return self.data.val_check_batch

    @property
    def val_dataloaders(self) -> Any:
        """The validation loader (a list when there are several; ``None`` before loading)."""
        loaders = self.data.val_loaders
        if not loaders:
            return None
        return loaders[0] if len(loaders) == 1 else list(loaders)

    @property
    def num_val_batches(self) -> list[int | float]:
        """Validation batches per loader after ``limit_val_batches``."""
        return self.data.num_val_batches

    @property
    def test_dataloaders(self) -> Any:
        """The test loader(s) of the last ``test``."""
        return self.data.test_dataloaders

    @property
    def num_test_batches(self) -> list[int | float]:
        """Test batches per loader after ``limit_test_batches``."""
        return self.data.num_test_batches

    @property
    def predict_dataloaders(self) -> Any:
        """The prediction loader(s) of the last ``predict``."""
        return self.data.predict_dataloaders

    @property
    def num_predict_batches(self) -> list[int | float]:
        """Prediction batches per loader after ``limit_predict_batches``."""
        return self.data.num_predict_batches

    @property
    def ckpt_path(self) -> str | None:
        """The checkpoint the running (or last) entry point restored, or ``None``."""
        return self.checkpointing.ckpt_path

    @property
    def log_dir(self) -> str:
        """Where this run's files go: its run directory (``<default_root_dir>/ember_runs/
        <run id>``, decided as an entry point sets up), or ``default_root_dir`` without a
        run (``logger=False``, ``fast_dev_run``)."""
        tracking = self.tracking
        return tracking.run_dir or tracking.planned_dir or self.flags.default_root_dir

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
        return [d.index or 0 for d in self.hardware.devices]

    @property
    def num_devices(self) -> int:
        """How many devices are used."""
        return len(self.hardware.devices)

    @property
    def callback_metrics(self) -> dict[str, Tensor]:
        """Latest logged values as tensors, under plain and ``_step``/``_epoch`` names: what
        callbacks such as ``ModelCheckpoint`` and ``EarlyStopping`` monitor.

        Computed when read, so the training loop does no work for it.
        """
        return self.metrics.callback_metrics

    @property
    def logged_metrics(self) -> dict[str, float]:
        """Everything handed to loggers so far (latest value per name), as floats."""
        return self.metrics.logged_metrics

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        """Latest ``prog_bar=True`` values as floats (one host transfer per read)."""
        return self.metrics.progress_bar_metrics

    def _with_role(self, role: str) -> list[Any]:
        return [c for c in self.callbacks if callback_role(c) == role]

    @property
    def checkpoint_callbacks(self) -> list[Any]:
        """Every callback with the ``"checkpointer"`` role (``ModelCheckpoint``, ...)."""
        return self._with_role("checkpointer")

    @property
    def checkpoint_callback(self) -> Any:
        """The first checkpointer, or ``None``."""
        found = self.checkpoint_callbacks
        return found[0] if found else None

    @property
    def early_stopping_callbacks(self) -> list[Any]:
        """Every callback with the ``"early_stopping"`` role."""
        return self._with_role("early_stopping")

    @property
    def early_stopping_callback(self) -> Any:
        """The first early-stopping callback, or ``None``."""
        found = self.early_stopping_callbacks
        return found[0] if found else None

    @property
    def progress_bar_callback(self) -> Any:
        """The callback with the ``"progress_bar"`` role, or ``None``."""
        found = self._with_role("progress_bar")
        return found[0] if found else None

    @property
    def estimated_stepping_batches(self) -> int | float:
        """Optimizer steps the whole fit will take (for OneCycleLR and warm-up schedules)."""
        return self.data.estimated_stepping_batches()

    @property
    def run(self) -> Run:
        """The tracking run of the running or last entry point: ``dir``, ``id``, and
        ``report`` once finished. A ``DisabledRun`` before the first run, with
        ``logger=False`` or ``fast_dev_run``, and on every rank but zero."""
        return self.tracking.run

    def print(self, *args: Any, **kwargs: Any) -> None:
        """``print`` on the main process only."""
        if self.is_global_zero:
            print(*args, **kwargs)

    # ================================================================== logging
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        """Publish ``metrics`` now, at ``step`` (default: the global step): into
        ``logged_metrics``, the run journal and the loggers. The public way for a callback
        to log what it measures (learning rates, gradient norms); tensors are read to the
        host here, so call it at flush points rather than every step."""
        if not isinstance(metrics, Mapping):
            raise MisconfigurationError(
                "trainer.log_metrics(metrics) takes a mapping of names to numbers, got "
                f"{type(metrics).__name__}"
            )
        if self._state.fn is None:
            raise MisconfigurationError(
                "trainer.log_metrics(...) was called before fit, validate, test or predict "
                "started, so there is no run to record it in yet: call it from a callback "
                "hook or a module hook while an entry point runs, or after one"
            )
        values = {
            name: plain_metric("trainer.log_metrics", name, value)
            for name, value in metrics.items()
        }
        if self.sanity_checking:
            # as with self.log, nothing the sanity check measures reaches the run
            if not self._warned_sanity_log:
                self._warned_sanity_log = True
                warnings.warn(
                    "trainer.log_metrics(...) during the sanity check is not recorded, like "
                    "self.log values of the sanity check: check trainer.sanity_checking and "
                    "log after it (num_sanity_val_steps=0 turns the check off)",
                    UserWarning,
                    stacklevel=2,
                )
            return
        self.metrics.publish(values, self.global_step if step is None else step)

    def log_text(self, key: str, text: str, step: int | None = None) -> None:
        """Record a piece of text (generated samples, notes) in the run, at the current
        global step unless ``step`` is given; loggers that take text receive it."""
        self.tracking.log_text(key, text, self.global_step if step is None else step)

    def log_image(self, key: str, image: Any, step: int | None = None) -> None:
        """Record an image in the run, at the current global step unless ``step`` is given.

        ``image``: a tensor or numpy array (HW, HWC or CHW; float in [0, 1] or uint8), a
        PIL image, a matplotlib figure or an image file. It is saved as a PNG under the
        run directory's ``images/`` and journaled; loggers that take images receive it.
        Without a run (``logger=False``, ``fast_dev_run``, ranks but zero) it is dropped.
        """
        self.tracking.log_image(key, image, self.global_step if step is None else int(step))

    @property
    def loggers(self) -> LoggerHandles:
        """A handle on each logger of the run, by position or label; ``call(fn)`` runs
        ``fn`` against the tracker's own object (see docs/tracking.md)."""
        return self.tracking.run.loggers

    @property
    def logger(self) -> LoggerHandle | None:
        """The first logger's handle (``None`` without loggers), as in Lightning."""
        handles = self.tracking.run.loggers
        return handles[0] if handles else None

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
        check_call("fit", ckpt_path)
        if isinstance(train_dataloaders, EmberDataModule):
            datamodule, train_dataloaders = train_dataloaders, None
        if datamodule is not None and (
            train_dataloaders is not None or val_dataloaders is not None
        ):
            raise MisconfigurationError(
                "fit() got both dataloaders and a datamodule: pass one or the other"
            )
        self._launch(
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
        check_call("predict", ckpt_path, return_predictions=return_predictions)
        if isinstance(dataloaders, EmberDataModule):
            datamodule, dataloaders = dataloaders, None
        keep = True if return_predictions is None else return_predictions
        model = self._model_for("predict", model)

        def body() -> Any:
            hooks = self.hooks
            assert hooks is not None
            loaders, lengths, limits = self.data.evaluation_loaders(
                "predict", "predict_dataloader", dataloaders, self.datamodule, hooks.module
            )
            self.checkpointing.restore(ckpt_path)
            self.metrics.activate(None)
            self._state.stage = RunningStage.PREDICTING
            loop = PredictLoop(
                progress=self.progress,
                hooks=hooks,
                strategy=self.strategy,
                precision=self.precision_plugin,
                transfer=self._transfer,
                inference_mode=self.flags.inference_mode,
            )
            outputs = loop.run(loaders, lengths, limits, keep)
            if not keep:
                return None
            return outputs[0] if len(outputs) == 1 else outputs

        return self._launch(TrainerFn.PREDICTING, model, datamodule, body)

    def save_checkpoint(self, filepath: str | os.PathLike[str], weights_only: bool = False) -> None:
        """Write a checkpoint of the running fit to ``filepath`` atomically (through the
        strategy, which decides which process writes)."""
        self.checkpointing.save(filepath, weights_only)

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

    def _launch(
        self,
        fn: TrainerFn,
        model: EmberModule,
        datamodule: EmberDataModule | None,
        body: Callable[[], Any],
    ) -> Any:
        """Run the entry point through the strategy's launcher, if it has one."""
        launcher = self.strategy.launcher
        if launcher is None:
            return self._run(fn, model, datamodule, body)
        return launcher.launch(self._run, fn, model, datamodule, body)

    def _run(
        self,
        fn: TrainerFn,
        model: EmberModule,
        datamodule: EmberDataModule | None,
        body: Callable[[], Any],
    ) -> Any:
        """Attach, set up, run ``body``, and always tear down (``on_exception`` on errors);
        an error while tearing down never hides the run's own error."""
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
        self.metrics.start_entry_point()
        self._module = model
        model.trainer = self
        self.datamodule = datamodule
        if datamodule is not None:
            datamodule.trainer = self
        self.metrics.attach(model)
        self.hooks = HookDispatcher(self._lifecycle, self, model)
        stage = fn.value
        outcome = "failed"
        error: BaseException | None = None
        try:
            self._determinism.apply(self.accelerator)
            self._setup(stage)
            result = body()
            self._state.status = TrainerStatus.FINISHED
            outcome = "success"
            return result
        except BaseException as exc:
            error = exc
            # Ctrl-C, and SystemExit (which the preemption handler's Preempted is)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                outcome = "interrupted"
            self._state.status = TrainerStatus.INTERRUPTED
            self._determinism.explain(exc)
            self.strategy.on_exception(exc)
            self.hooks.exception(exc)
            raise
        finally:
            self._teardown(stage, outcome, error)

    def _setup(self, stage: str) -> None:
        """The environment (before any collective), prepare_data, setup hooks, then the
        module converted, placed and wrapped by the strategy."""
        module = self._module
        assert module is not None
        datamodule = self.datamodule
        if self._merge_module_callbacks(module):
            self.hooks = HookDispatcher(self._lifecycle, self, module)
        hooks = self.hooks
        assert hooks is not None
        self.strategy.setup_environment()
        rank_zero_only.rank = self.global_rank  # type: ignore[attr-defined]
        if self.is_global_zero:
            if datamodule is not None:
                datamodule.prepare_data()
            module.prepare_data()
        self.strategy.barrier("prepare_data")
        # the run folder is known before the callbacks' setup: checkpoints go under it
        # (predict opens no run)
        self.tracking.plan(
            self.flags.default_root_dir,
            lambda value: self.strategy.broadcast(value, src=0),
            enabled=not self.flags.fast_dev_run and self._state.fn != TrainerFn.PREDICTING,
        )
        if datamodule is not None:
            datamodule.setup(stage)
        hooks.setup(stage)
        if overrides(module, "configure_model", EmberModule):
            module.configure_model()
        self.strategy.setup_module(module)
        self._transfer = make_batch_transfer(hooks.module_hooks, self.hardware)

    def _teardown(self, stage: str, outcome: str, error: BaseException | None) -> None:
        """Every teardown step runs even when one fails; the run's error (or else the
        first teardown error) is what propagates, later ones become its notes."""
        module, hooks = self._module, self.hooks
        assert module is not None and hooks is not None
        checkpointing = self.checkpointing
        datamodule = self.datamodule

        def stop_state() -> None:
            checkpointing.preemption.uninstall()
            checkpointing.preemption.reset()
            checkpointing.resume_rng_state = None
            checkpointing.resume_callback_metrics = None
            self.metrics.activate(None)
            self._state.stage = None

        steps: list[tuple[str, Callable[[], Any]]] = [
            ("trainer state", stop_state),
            (
                "module.teardown",
                lambda: without_logging(module, "teardown", module.teardown, stage),
            ),
            ("datamodule.teardown", lambda: datamodule.teardown(stage) if datamodule else None),
            ("callbacks' teardown", lambda: hooks.teardown(stage)),
            (f"{type(self.strategy).__name__}.teardown", self.strategy.teardown),
            ("tracking run", lambda: self._finish_tracking(outcome, error)),
            ("determinism", self._determinism.restore),
        ]
        first: BaseException | None = error
        for what, step in steps:
            try:
                step()
            except BaseException as exc:
                if first is None:
                    first = exc
                    continue
                note = f"while tearing down after this error, {what} raised {exc!r}"
                add_note = getattr(first, "add_note", None)
                if add_note is not None:
                    add_note(note)
        if first is not None and first is not error:
            raise first

    def _finish_tracking(self, outcome: str, error: BaseException | None) -> None:
        report = self.tracking.finish(outcome, self._stage_name())
        started, self._fit_started = self._fit_started, None
        # a fit that failed before training (bad data, a missing hook) gets no summary
        fitted = self._state.fn is TrainerFn.FITTING and started is not None
        if fitted and self.flags.enable_fit_summary:
            from ember.trainer.fit_summary import fit_summary

            self.print(fit_summary(self, outcome, error, self.tracking.report, started))
            return
        if report is not None:
            self.print(report)

    def _start_tracking(self) -> None:
        """Open the entry point's tracking run (not under ``fast_dev_run``)."""
        if self.flags.fast_dev_run:
            self.tracking.resume_from = None
            return
        root = os.path.abspath(self.flags.default_root_dir)
        saves_under_root = self._state.fn == TrainerFn.FITTING and any(
            os.path.commonpath([root, os.path.abspath(getattr(c, "dirpath", None) or root)]) == root
            for c in self.checkpoint_callbacks
        )
        if self.tracking.entries is not None or saves_under_root:
            check_writable_root(self.flags.default_root_dir)
        # on every rank, so a clash of hyperparameters stops them all alike
        hparams = run_hyperparameters(self._module, self.datamodule)
        config = self.tracking.config(
            self._given_flags,
            self.flags,
            self.hardware,
            self.callbacks,
            self._module,
            self.datamodule,
            self.world_size,
        )
        try:
            self.tracking.start(
                self.flags.default_root_dir,
                config,
                hparams,
                self.global_rank,
                lambda value: self.strategy.broadcast(value, src=0),
                self.print,
                self._stage_name(),
            )
        except OSError as exc:
            clear = root_dir_error(self.flags.default_root_dir, exc)
            if clear is None:
                raise
            raise clear from exc

    def _stage_name(self) -> str:
        """The running entry point's name (``fit``, ``validate``, ...), as the run records
        its stages."""
        fn = self._state.fn
        return fn.value if fn is not None else TrainerFn.FITTING.value

    def _evaluation_loop(self, stage: RunningStage) -> EvaluationLoop:
        assert self.hooks is not None
        return EvaluationLoop(
            stage,
            state=self._state,
            progress=self.progress,
            hooks=self.hooks,
            metrics=self.metrics,
            strategy=self.strategy,
            precision=self.precision_plugin,
            transfer=self._transfer,
            inference_mode=self.flags.inference_mode,
        )

    def _fit(self, train_dataloaders: Any, val_dataloaders: Any, ckpt_path: Any) -> None:
        """The fit entry point once set up: data, optimizers, sanity check, the fit loop."""
        hooks = self.hooks
        assert hooks is not None
        module = hooks.module
        mh = hooks.module_hooks
        checkpointing = self.checkpointing
        # SIGTERM/SIGUSR1 now save at the next step boundary; signal handlers can only be
        # installed from the main thread: elsewhere, signals act as usual
        if threading.current_thread() is threading.main_thread():
            checkpointing.preemption.install()
        if not overrides(module, "training_step", EmberModule):
            raise MisconfigurationError(
                f"{type(module).__name__} has no training_step: define "
                "`def training_step(self, batch, batch_idx)` returning the loss"
            )
        data = self.data
        data.configure_fit(
            module,
            self.datamodule,
            train_dataloaders,
            val_dataloaders,
            mh.validation_step is not None,
        )
        previous = data.train_loader.state_dict() if data.train_loader is not None else None
        data.load_train()
        data.load_val()
        self.optimization = Optimization(
            self.flags,
            hooks,
            self.precision_plugin,
            self.strategy,
            self.progress,
            lambda: self.callback_metrics,
        )
        self.optimization.configure()
        warn_at_fit_start(self)
        checkpointing.restore(ckpt_path)
        if checkpointing.ckpt_path is None and previous is not None and self.progress.batch_idx:
            # fit again after a fit that stopped inside an epoch (an exception): continue it
            data.train_loader.load_state_dict(previous)  # type: ignore[union-attr]
        self._start_tracking()
        val_loop = self._evaluation_loop(RunningStage.VALIDATING)
        self.fit_loop = FitLoop(
            flags=self.flags,
            state=self._state,
            progress=self.progress,
            data=data,
            optimization=self.optimization,
            hooks=hooks,
            metrics=self.metrics,
            strategy=self.strategy,
            checkpointing=checkpointing,
            val_loop=val_loop,
            transfer=self._transfer,
            stop_requested=lambda: self.should_stop,
        )
        self._fit_started = time.monotonic()
        hooks.start("on_fit_start")
        anomaly = (
            torch.autograd.detect_anomaly()
            if self.flags.detect_anomaly
            else contextlib.nullcontext()
        )
        with torch.enable_grad(), anomaly:
            self._run_sanity_check(val_loop)
            self.fit_loop.run()
        hooks.end("on_fit_end")

    def _run_sanity_check(self, val_loop: EvaluationLoop) -> None:
        """A few validation batches before training, to fail fast; leaves no trace."""
        limits = self.data.sanity_limits()
        if not any(limits):
            return
        hooks = self.hooks
        assert hooks is not None
        rng = self.checkpointing.rng_state()
        previous = self._state.stage
        self._state.stage = RunningStage.SANITY_CHECKING
        hooks.callbacks_only("on_sanity_check_start")
        val_loop.run(self.data.val_loaders, self.data.val_lengths, limits, sanity=True)
        self._state.stage = RunningStage.SANITY_CHECKING
        hooks.callbacks_only("on_sanity_check_end")
        self._state.stage = previous
        self.checkpointing.restore_rng(rng)
        val_loop.results.clear()
        self.metrics.forget_views()

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
        check_call(fn.value, ckpt_path, verbose=verbose)
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

        def body() -> list[dict[str, float]]:
            hooks = self.hooks
            assert hooks is not None
            module = hooks.module
            if getattr(hooks.module_hooks, f"{prefix}_step") is None:
                raise MisconfigurationError(
                    f"{type(module).__name__} has no {prefix}_step: define "
                    f"`def {prefix}_step(self, batch, batch_idx)` to {fn.value}"
                )
            loaders, lengths, limits = self.data.evaluation_loaders(
                fn.value, method, dataloaders, self.datamodule, module
            )
            self.checkpointing.restore(ckpt_path)
            self._start_tracking()
            stage = RunningStage.VALIDATING if validating else RunningStage.TESTING
            metrics = self._evaluation_loop(stage).run(loaders, lengths, limits)
            if verbose and self.is_global_zero:
                _print_results(fn.value, metrics)
            return metrics

        return self._launch(fn, model, datamodule, body)


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
