"""``EmberModule``: the model, its steps, its optimizers and its hooks, written as a
LightningModule is written.

Every hook below is a documented no-op; the trainer calls only the ones a subclass
overrides (decided once per run), so an unused hook costs nothing in the loop.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from ember.trainer.datamodule import DataHooks
from ember.trainer.errors import MisconfigurationError
from ember.trainer.hparams import HyperparametersMixin
from torch import Tensor, nn

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+; annotations stay strings at run time

    from ember.trainer.trainer import Trainer

#: module hooks the trainer calls only when a subclass overrides them
MODULE_HOOKS: tuple[str, ...] = (
    "on_fit_start",
    "on_fit_end",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_validation_model_eval",
    "on_validation_model_train",
    "on_test_start",
    "on_test_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_test_model_eval",
    "on_test_model_train",
    "on_predict_start",
    "on_predict_end",
    "on_predict_epoch_start",
    "on_predict_epoch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
    "on_predict_model_eval",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
    "backward",
    "optimizer_step",
    "optimizer_zero_grad",
    "configure_gradient_clipping",
    "lr_scheduler_step",
    "on_save_checkpoint",
    "on_load_checkpoint",
    "training_epoch_end",
    "validation_epoch_end",
    "test_epoch_end",
    "validation_step",
    "test_step",
    "configure_optimizers",
    "configure_model",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "predict_dataloader",
)


def overrides(obj: object, name: str, base: type) -> bool:
    """Whether ``obj`` defines ``name`` differently from ``base`` (or on the instance)."""
    if name in getattr(obj, "__dict__", {}):
        return True
    return getattr(type(obj), name, None) is not getattr(base, name, None)


#: the Lightning ``self.log`` options ember accepts but does not act on, and why; each
#: warns once per process when set (a silent no-op would hide a porting mistake)
_NO_EFFECT = {
    "rank_zero_only": "only the main process hands values to loggers anyway",
    "sync_dist_group": "sync_dist=True always reduces over every process",
    "metric_attribute": "a logged torchmetrics Metric is found from the value itself",
}
_warned_no_effect: set[str] = set()


def _warn_no_effect(option: str, value: Any) -> None:
    """Warn once per process that ``self.log(..., option=value)`` changes nothing."""
    if option in _warned_no_effect:
        return
    _warned_no_effect.add(option)
    warnings.warn(
        f"self.log(..., {option}={value!r}) has no effect in ember: {_NO_EFFECT[option]}. "
        "Remove the argument to silence this warning",
        UserWarning,
        stacklevel=4,
    )


class EmberModule(DataHooks, HyperparametersMixin, nn.Module):
    """A ``torch.nn.Module`` that also says how to train, validate, test and predict.

    Subclass it, write ``training_step`` and ``configure_optimizers`` (and whatever else
    you need), and hand it to :class:`~ember.trainer.Trainer`.
    """

    #: set to ``False`` to call ``self.optimizers()``, ``self.manual_backward()`` and
    #: ``optimizer.step()`` yourself in ``training_step``
    automatic_optimization: bool = True
    #: an input batch (a tensor, a tuple of positional inputs or a dict of keyword ones)
    #: for ``self(example_input_array)``: the model summary then lists each layer's sizes
    example_input_array: Any = None
    _strict_loading: bool | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trainer: Trainer | None = None
        self._ember_results: Any = None
        self._device = torch.device("cpu")

    # ------------------------------------------------------------------ state
    @property
    def trainer(self) -> Trainer:
        """The ``Trainer`` running this module; an error when there is none."""
        if self._trainer is None:
            raise RuntimeError(
                f"{type(self).__name__} is not attached to a Trainer: call "
                "trainer.fit/validate/test/predict with it first"
            )
        return self._trainer

    @trainer.setter
    def trainer(self, trainer: Trainer | None) -> None:
        self._trainer = trainer

    @property
    def device(self) -> torch.device:
        """The device the module's parameters are on."""
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the module's first floating-point parameter (float32 when none)."""
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()

    @property
    def current_epoch(self) -> int:
        """The trainer's current epoch (0 when not attached)."""
        return self._trainer.current_epoch if self._trainer is not None else 0

    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far (0 when not attached)."""
        return self._trainer.global_step if self._trainer is not None else 0

    def _apply(self, fn: Any, recurse: bool = True) -> EmberModule:
        # .to()/.cuda()/.double() all go through _apply: keep ``self.device`` right
        result = super()._apply(fn, recurse)
        for tensor in self.parameters():
            self._device = tensor.device
            break
        else:
            for tensor in self.buffers():
                self._device = tensor.device
                break
        return result

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_trainer"] = None
        state["_ember_results"] = None
        return state

    @property
    def strict_loading(self) -> bool:
        """Whether restoring a checkpoint (``ckpt_path=`` of fit/validate/test/predict,
        :meth:`load_from_checkpoint`) requires its weights to match the module's exactly.
        Set it to ``False`` when the module holds weights the checkpoint leaves out (a
        frozen pretrained backbone saved elsewhere). A shape mismatch is always an error."""
        return self._strict_loading in (None, True)

    @strict_loading.setter
    def strict_loading(self, value: bool) -> None:
        self._strict_loading = bool(value)

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | os.PathLike[str],
        map_location: Any = None,
        strict: bool | None = None,
        **overrides: Any,
    ) -> Self:
        """Build the module from a checkpoint's saved hyperparameters (``overrides`` win)
        and load its weights; the file is read safely (no code from it runs).

        :param map_location: where tensors go, as for ``torch.load``; ``None``: the CPU.
        :param strict: missing or unexpected weights are an error (a shape mismatch always
            is); ``None``: the built module's :attr:`strict_loading`.
        :raises CheckpointError: the file is not a usable checkpoint, or its
            hyperparameters cannot build this class (the message says what to pass).
        """
        from ember.trainer.checkpoint.io import instantiate_from_checkpoint

        location = "cpu" if map_location is None else map_location
        return instantiate_from_checkpoint(  # type: ignore[return-value]
            cls, checkpoint_path, location, strict, **overrides
        )

    def print(self, *args: Any, **kwargs: Any) -> None:
        """``print`` on the main process only."""
        if self._trainer is not None:
            self._trainer.print(*args, **kwargs)
        else:
            print(*args, **kwargs)

    def all_gather(self, data: Any, sync_grads: bool = False) -> Any:
        """Every tensor of ``data`` (a tensor or any container of them) from every process,
        stacked along a new first dimension of size ``world_size`` (1 in one process).
        Tensors must have the same shape on every process. ``sync_grads`` lets gradients
        flow back through the gather."""
        from ember.trainer.plugins import map_batch

        if self._trainer is None:
            raise MisconfigurationError(
                "self.all_gather needs a running trainer: call it from a step or a hook"
            )
        strategy = self._trainer.strategy
        return map_batch(
            data,
            lambda leaf: (
                strategy.all_gather(leaf, sync_grads=sync_grads)
                if isinstance(leaf, Tensor)
                else leaf
            ),
        )

    def freeze(self) -> None:
        """Stop gradients for every parameter and switch to eval mode."""
        for p in self.parameters():
            p.requires_grad = False
        self.eval()

    def unfreeze(self) -> None:
        """Undo :meth:`freeze`."""
        for p in self.parameters():
            p.requires_grad = True
        self.train()

    # ------------------------------------------------------------------ logging
    def log(
        self,
        name: str,
        value: Tensor | float | int,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Record a scalar metric.

        Values stay tensors on their device; the trainer reduces them (``reduce_fx`` over
        the epoch, a mean weighted by ``batch_size``) and reads them back to the host only
        at flush points. Defaults follow Lightning: in ``training_step`` and the training
        batch hooks ``on_step=True, on_epoch=False``; everywhere else
        ``on_step=False, on_epoch=True``. With both set, the logged names get ``_step``
        and ``_epoch`` suffixes.
        """
        results = self._ember_results
        if results is None:
            raise MisconfigurationError(self._log_outside_message(name))
        if rank_zero_only or sync_dist_group is not None or metric_attribute is not None:
            self._note_no_effect(rank_zero_only, sync_dist_group, metric_attribute)
        results.log(
            name,
            value,
            prog_bar,
            logger,
            on_step,
            on_epoch,
            reduce_fx,
            enable_graph,
            sync_dist,
            add_dataloader_idx,
            batch_size,
        )

    def log_dict(
        self,
        dictionary: Mapping[str, Tensor | float | int],
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """:meth:`log` every entry of ``dictionary`` with the same options."""
        if not isinstance(dictionary, Mapping) and not callable(getattr(dictionary, "items", None)):
            raise MisconfigurationError(
                "self.log_dict(dictionary, ...) takes a mapping of names to values (a dict, a "
                f"torchmetrics MetricCollection), got {type(dictionary).__name__}"
            )
        results = self._ember_results
        if results is None:
            raise MisconfigurationError(self._log_outside_message(next(iter(dictionary), "")))
        if rank_zero_only or sync_dist_group is not None:
            self._note_no_effect(rank_zero_only, sync_dist_group, None)
        for name, value in dictionary.items():
            results.log(
                name,
                value,
                prog_bar,
                logger,
                on_step,
                on_epoch,
                reduce_fx,
                enable_graph,
                sync_dist,
                add_dataloader_idx,
                batch_size,
            )

    @staticmethod
    def _note_no_effect(rank_zero_only: bool, sync_dist_group: Any, metric_attribute: Any) -> None:
        if rank_zero_only:
            _warn_no_effect("rank_zero_only", rank_zero_only)
        if sync_dist_group is not None:
            _warn_no_effect("sync_dist_group", sync_dist_group)
        if metric_attribute is not None:
            _warn_no_effect("metric_attribute", metric_attribute)

    def log_image(self, key: str, image: Any, step: int | None = None) -> None:
        """Record an image (tensor or numpy array in HW, HWC or CHW layout, float in [0, 1]
        or uint8; a PIL image; a matplotlib figure; an image file) at the current global
        step: saved as a PNG in the run directory, delivered to loggers that take images.
        See :meth:`ember.trainer.Trainer.log_image`."""
        trainer = self._trainer
        if trainer is None:
            raise MisconfigurationError(
                f"self.log_image({key!r}, ...) needs a trainer: call it while fit, validate "
                "or test runs"
            )
        trainer.log_image(key, image, step=step)

    @property
    def logger(self) -> Any:
        """The trainer's first logger handle (``None`` without a trainer or loggers);
        ``self.logger.call(fn)`` runs ``fn`` against the tracker's own object."""
        trainer = self._trainer
        return None if trainer is None else trainer.logger

    @property
    def loggers(self) -> Any:
        """The trainer's logger handles (empty without a trainer)."""
        trainer = self._trainer
        return () if trainer is None else trainer.loggers

    def _log_outside_message(self, name: str) -> str:
        trainer = self._trainer
        if trainer is not None and trainer.predicting:
            return (
                f"self.log({name!r}, ...) was called during predict, which records no "
                "metrics: return what you need from predict_step instead"
            )
        if trainer is not None and trainer.state.status == "running":
            return (
                f"self.log({name!r}, ...) was called where no step or epoch is being "
                "recorded (setup, configure_optimizers, a *_dataloader hook, teardown ...), "
                "so the value would be lost. Log from training_step, validation_step, "
                "test_step or their batch and epoch hooks, or publish it at once with "
                f"trainer.log_metrics({{{name!r}: value}})"
            )
        return (
            f"self.log({name!r}, ...) was called while no fit, validate or test is running; "
            "log from training_step, validation_step, test_step or the on_* hooks"
        )

    # ------------------------------------------------------------------ optimization
    def optimizers(self, use_pl_optimizer: bool = True) -> Any:
        """The optimizer from ``configure_optimizers`` (a list when there are several).

        In manual optimization each is wrapped so that ``step()`` counts toward
        ``global_step`` and fires ``on_before_optimizer_step``.
        """
        optimization = self.trainer.optimization
        opts = optimization.module_optimizers() if optimization is not None else []
        return opts[0] if len(opts) == 1 else opts

    def lr_schedulers(self) -> Any:
        """The scheduler from ``configure_optimizers`` (a list when several, ``None`` if none)."""
        schedulers = [c.scheduler for c in self.trainer.lr_scheduler_configs]
        if not schedulers:
            return None
        return schedulers[0] if len(schedulers) == 1 else schedulers

    def manual_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Backward pass in manual optimization; use it instead of ``loss.backward()``."""
        self._optimization("manual_backward").manual_backward(loss, *args, **kwargs)

    def clip_gradients(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the gradients of ``optimizer``'s parameters by norm (default) or value."""
        self._optimization("clip_gradients").clip_gradients(
            optimizer, gradient_clip_val, gradient_clip_algorithm
        )

    def _optimization(self, method: str) -> Any:
        optimization = self.trainer.optimization
        if optimization is None:
            raise MisconfigurationError(
                f"self.{method}(...) works while trainer.fit runs (from training_step or a "
                "training hook)"
            )
        return optimization

    def toggle_optimizer(self, optimizer: Any) -> None:
        """Let only ``optimizer``'s parameters require gradients (undo with
        :meth:`untoggle_optimizer`)."""
        optimizer = getattr(optimizer, "optimizer", optimizer)
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self._toggled = {}
        for p in self.parameters():
            if id(p) not in owned:
                self._toggled[id(p)] = (p, p.requires_grad)
                p.requires_grad = False

    def untoggle_optimizer(self, optimizer: Any) -> None:
        """Give back the ``requires_grad`` flags :meth:`toggle_optimizer` changed."""
        for p, flag in getattr(self, "_toggled", {}).values():
            p.requires_grad = flag
        self._toggled = {}

    # ------------------------------------------------------------------ steps
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The model's forward pass (``self(x)``); override it."""
        return super().forward(*args, **kwargs)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | Mapping[str, Any] | None:
        """Compute and return the loss of one batch (or a dict with a ``loss`` key).

        Returning ``None`` skips the optimizer step for this batch.
        """
        raise MisconfigurationError(
            f"{type(self).__name__} has no training_step: define "
            "`def training_step(self, batch, batch_idx)` returning the loss"
        )

    def validation_step(self, batch: Any, batch_idx: int, *args: Any) -> Any:
        """Evaluate one validation batch (usually ``self.log("val_loss", ...)``)."""

    def test_step(self, batch: Any, batch_idx: int, *args: Any) -> Any:
        """Evaluate one test batch."""

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        """Return the prediction for one batch (``self(batch)`` by default)."""
        return self(batch)

    def training_epoch_end(self, outputs: list[Any]) -> None:
        """Receive every ``training_step`` output of the epoch (detached); collected only
        when overridden."""

    def validation_epoch_end(self, outputs: list[Any]) -> None:
        """Receive every ``validation_step`` output (a list per loader when there are
        several); collected only when overridden."""

    def test_epoch_end(self, outputs: list[Any]) -> None:
        """Receive every ``test_step`` output (a list per loader when there are several);
        collected only when overridden."""

    def configure_optimizers(self) -> Any:
        """Return the optimizer(s) and learning-rate scheduler(s), in any Lightning form:
        an optimizer; a list of them; ``([optimizers], [schedulers])``; a dict
        ``{"optimizer": ..., "lr_scheduler": ...}``; or a list of such dicts."""
        raise MisconfigurationError(
            f"{type(self).__name__} has no configure_optimizers: define "
            "`def configure_optimizers(self)` returning e.g. "
            "`torch.optim.Adam(self.parameters(), lr=1e-3)`"
        )

    def configure_callbacks(self) -> Sequence[Any] | Any:
        """Return callbacks this model always needs; they replace trainer callbacks of the
        same type."""
        return []

    def configure_model(self) -> None:
        """Build layers lazily, after ``setup`` and before the optimizers are made."""

    # ------------------------------------------------------------------ data
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Edit a batch before it moves to the device."""
        return batch

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Move a batch to ``device`` (override for custom batch types)."""
        from ember.trainer.plugins import move_to_device

        return move_to_device(batch, device)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Edit a batch after it moved to the device (e.g. GPU augmentation)."""
        return batch

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self) -> None:
        """Called when fit starts."""

    def on_fit_end(self) -> None:
        """Called when fit ends."""

    def on_train_start(self) -> None:
        """Called before the first training epoch."""

    def on_train_end(self) -> None:
        """Called after the last training epoch."""

    def on_train_epoch_start(self) -> None:
        """Called at the start of every training epoch."""

    def on_train_epoch_end(self) -> None:
        """Called at the end of every training epoch (after any end-of-epoch validation)."""

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        """Called before each training batch; return ``-1`` to end the epoch early."""

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Called after each training batch with the step's outputs."""

    def on_validation_start(self) -> None:
        """Called when a validation run starts."""

    def on_validation_end(self) -> None:
        """Called when a validation run ends."""

    def on_validation_epoch_start(self) -> None:
        """Called at the start of a validation epoch."""

    def on_validation_epoch_end(self) -> None:
        """Called at the end of a validation epoch; epoch metrics can still be logged."""

    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Called before each validation batch."""

    def on_validation_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Called after each validation batch."""

    def on_validation_model_eval(self) -> None:
        """Put the model in evaluation mode for validation (``self.eval()``)."""
        self.eval()

    def on_validation_model_train(self) -> None:
        """Put the model back in training mode after validation inside fit. By default
        the trainer restores each submodule's previous mode (frozen parts stay frozen)."""
        self.train()

    def on_test_start(self) -> None:
        """Called when testing starts."""

    def on_test_end(self) -> None:
        """Called when testing ends."""

    def on_test_epoch_start(self) -> None:
        """Called at the start of the test epoch."""

    def on_test_epoch_end(self) -> None:
        """Called at the end of the test epoch; epoch metrics can still be logged."""

    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Called before each test batch."""

    def on_test_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Called after each test batch."""

    def on_test_model_eval(self) -> None:
        """Put the model in evaluation mode for testing (``self.eval()``)."""
        self.eval()

    def on_test_model_train(self) -> None:
        """Put the model back in its previous mode after testing."""
        self.train()

    def on_predict_start(self) -> None:
        """Called when prediction starts."""

    def on_predict_end(self) -> None:
        """Called when prediction ends."""

    def on_predict_epoch_start(self) -> None:
        """Called at the start of the prediction epoch."""

    def on_predict_epoch_end(self) -> None:
        """Called at the end of the prediction epoch."""

    def on_predict_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Called before each prediction batch."""

    def on_predict_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Called after each prediction batch."""

    def on_predict_model_eval(self) -> None:
        """Put the model in evaluation mode for prediction (``self.eval()``)."""
        self.eval()

    def on_before_backward(self, loss: Tensor) -> None:
        """Called before the backward pass."""

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Run the backward pass (``loss.backward()``); override for custom backward."""
        loss.backward(*args, **kwargs)

    def on_after_backward(self) -> None:
        """Called after the backward pass, before gradients are clipped."""

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Called before each optimizer step, with the gradients in place."""

    def on_before_zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        """Called before the gradients are cleared."""

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: torch.optim.Optimizer,
        optimizer_closure: Any = None,
    ) -> None:
        """Step the optimizer; override to change the learning rate by hand (warm-up)."""
        if optimizer_closure is None:
            optimizer.step()
        else:
            optimizer.step(closure=optimizer_closure)

    def optimizer_zero_grad(
        self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer
    ) -> None:
        """Clear the gradients (``set_to_none=True``)."""
        optimizer.zero_grad(set_to_none=True)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip gradients before the optimizer step; by default as the Trainer flags say."""
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Step a learning-rate scheduler (with the monitored metric for plateau ones)."""
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add entries to a checkpoint being saved."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Read entries of a checkpoint being restored."""
