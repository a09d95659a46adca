"""One dispatcher fires every event on the callbacks (through the hub's lifecycle facade,
plugins first) and on the module, in the order ``docs/hook-order.md`` documents.

Start and before events run the callbacks first, then the module; end and after events
run the module first, then the callbacks. Which module hooks exist is decided once per
run, so an event nobody implements costs one call.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from ember.hub import Lifecycle
from ember.trainer.errors import MisconfigurationError
from ember.trainer.module import MODULE_HOOKS, EmberModule, overrides
from torch import Tensor, nn

#: hooks of the module and of callbacks in which ``self.log`` records nothing (no step or
#: epoch is open, or its metrics are already published), so it raises there, naming the
#: hook; the same hooks as Lightning's. ``self.log`` says so in its own words before any
#: loop runs (``configure_optimizers``, the ``*_dataloader`` hooks) and during predict.
NO_LOGGING_HOOKS = frozenset(
    {
        "setup",
        "teardown",
        "on_fit_start",
        "on_fit_end",
        "on_sanity_check_start",
        "on_sanity_check_end",
        "on_train_end",
        "on_validation_end",
        "on_test_end",
        "on_save_checkpoint",
        "on_load_checkpoint",
        "on_exception",
        "on_before_batch_transfer",
        "transfer_batch_to_device",
        "on_after_batch_transfer",
        "on_validation_model_eval",
        "on_validation_model_train",
        "on_test_model_eval",
        "on_test_model_train",
        "lr_scheduler_step",
    }
)


class LoggingClosed:
    """What ``self.log`` writes to while a hook of :data:`NO_LOGGING_HOOKS` runs: an
    error that names the hook, instead of a value silently dropped."""

    __slots__ = ("hook",)

    def __init__(self, hook: str) -> None:
        self.hook = hook

    def log(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Refuse the value (the arguments of ``ResultCollection.log``); in
        ``on_exception`` only warn, so that the run's own error is the one raised."""
        message = (
            f"self.log({name!r}, ...) cannot be called in {self.hook}: no step or epoch "
            "is being recorded there, so the value would be lost. Log it from a step, a "
            "batch hook or an epoch-level hook (on_train_epoch_end, on_validation_epoch_end, "
            f"...), or publish it at once with trainer.log_metrics({{{name!r}: value}})"
        )
        if self.hook == "on_exception":
            warnings.warn(message, UserWarning, stacklevel=3)
            return
        raise MisconfigurationError(message)


def without_logging(module: EmberModule, hook: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` (``hook`` of the module or of callbacks) with ``self.log`` refused."""
    saved = module._ember_results
    module._ember_results = LoggingClosed(hook)
    try:
        return fn(*args)
    finally:
        module._ember_results = saved


class ModuleHooks:
    """One attribute per hook in ``MODULE_HOOKS``: the bound method if the module
    overrides it, else ``None`` (one that refuses ``self.log`` where it records nothing)."""

    def __init__(self, module: EmberModule) -> None:
        for name in MODULE_HOOKS:
            hook = getattr(module, name) if overrides(module, name, EmberModule) else None
            if hook is not None and name in NO_LOGGING_HOOKS:
                hook = functools.partial(without_logging, module, name, hook)
            setattr(self, name, hook)


class TrainingModes:
    """The ``training`` flag of every submodule, to put back after evaluation (a frozen
    backbone in eval mode stays in eval mode)."""

    def __init__(self, module: nn.Module) -> None:
        self._modes = [(m, m.training) for m in module.modules()]

    def restore(self) -> None:
        """Give every submodule its saved flag back."""
        for m, mode in self._modes:
            m.training = mode


BatchStart = Callable[[Any, int, int], Any]
BatchEnd = Callable[[Any, Any, int, int], None]


class HookDispatcher:
    """Fires events for one run of one module.

    :param callbacks: the lifecycle facade over the plugins and the trainer's callbacks.
    :param trainer: what callbacks receive as ``trainer``.
    """

    def __init__(self, callbacks: Lifecycle, trainer: Any, module: EmberModule) -> None:
        self.callbacks = callbacks
        self.trainer = trainer
        self.module = module
        #: the module's overridden hooks (``None`` where it keeps the default)
        self.module_hooks = ModuleHooks(module)

    # ------------------------------------------------------------------ plain events
    def _callbacks(self, event: str, *args: Any) -> None:
        """The callbacks' (and plugins') ``event``, refusing ``self.log`` where it would
        record nothing."""
        fire = getattr(self.callbacks, event)
        if event in NO_LOGGING_HOOKS:
            without_logging(self.module, event, fire, self.trainer, self.module, *args)
        else:
            fire(self.trainer, self.module, *args)

    def start(self, event: str) -> None:
        """A start event (``on_fit_start``, ``on_validation_epoch_start``, ...):
        callbacks, then the module."""
        self._callbacks(event)
        hook = getattr(self.module_hooks, event)
        if hook is not None:
            hook()

    def end(self, event: str) -> None:
        """An end event: the module, then the callbacks."""
        self.module_end(event)
        self.callbacks_end(event)

    def module_end(self, event: str) -> None:
        """The module's half of an end event (an epoch end publishes metrics between
        the halves)."""
        hook = getattr(self.module_hooks, event)
        if hook is not None:
            hook()

    def callbacks_end(self, event: str) -> None:
        """The callbacks' half of an end event."""
        self._callbacks(event)

    def callbacks_only(self, event: str) -> None:
        """An event modules do not receive (``on_sanity_check_start``, ...)."""
        self._callbacks(event)

    def setup(self, stage: str) -> None:
        """``setup``: callbacks, then the module."""
        self._callbacks("setup", stage)
        without_logging(self.module, "setup", self.module.setup, stage)

    def teardown(self, stage: str) -> None:
        """``teardown`` of the callbacks (the module and datamodule tear down first)."""
        self._callbacks("teardown", stage)

    def exception(self, exc: BaseException) -> None:
        """``on_exception`` for callbacks and plugins."""
        self._callbacks("on_exception", exc)

    # ------------------------------------------------------------------ optimization
    def before_backward(self, loss: Tensor) -> None:
        """``on_before_backward``: callbacks, then the module."""
        self.callbacks.on_before_backward(self.trainer, self.module, loss)
        hook = self.module_hooks.on_before_backward
        if hook is not None:
            hook(loss)

    def after_backward(self) -> None:
        """``on_after_backward``: the module, then callbacks."""
        hook = self.module_hooks.on_after_backward
        if hook is not None:
            hook()
        self.callbacks.on_after_backward(self.trainer, self.module)

    def before_optimizer_step(self, optimizer: Any) -> None:
        """``on_before_optimizer_step`` (gradients already unscaled)."""
        self.callbacks.on_before_optimizer_step(self.trainer, self.module, optimizer)
        hook = self.module_hooks.on_before_optimizer_step
        if hook is not None:
            hook(optimizer)

    def before_zero_grad(self, optimizer: Any) -> None:
        """``on_before_zero_grad``: callbacks, then the module."""
        self.callbacks.on_before_zero_grad(self.trainer, self.module, optimizer)
        hook = self.module_hooks.on_before_zero_grad
        if hook is not None:
            hook(optimizer)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """``on_save_checkpoint``: the module, then callbacks."""
        hook = self.module_hooks.on_save_checkpoint
        if hook is not None:
            hook(checkpoint)
        self._callbacks("on_save_checkpoint", checkpoint)

    def load_checkpoint(self, checkpoint: Any) -> None:
        """``on_load_checkpoint``: the module, then callbacks."""
        hook = self.module_hooks.on_load_checkpoint
        if hook is not None:
            hook(checkpoint)
        self._callbacks("on_load_checkpoint", checkpoint)

    # ------------------------------------------------------------------ batches
    def train_batch_events(
        self,
    ) -> tuple[Callable[[Any, int], bool], Callable[[Any, Any, int], None]]:
        """``(start, end)`` for training batches; ``start`` returns whether the module
        asked to end the epoch (by returning -1)."""
        trainer, module = self.trainer, self.module
        cb_start = self.callbacks.on_train_batch_start
        cb_end = self.callbacks.on_train_batch_end
        m_start = self.module_hooks.on_train_batch_start
        m_end = self.module_hooks.on_train_batch_end

        def start(batch: Any, batch_idx: int) -> bool:
            cb_start(trainer, module, batch, batch_idx)
            return m_start is not None and m_start(batch, batch_idx) == -1

        def end(outputs: Any, batch: Any, batch_idx: int) -> None:
            if m_end is not None:
                m_end(outputs, batch, batch_idx)
            cb_end(trainer, module, outputs, batch, batch_idx)

        return start, end

    def batch_events(self, prefix: str, several: bool) -> tuple[BatchStart, BatchEnd]:
        """``(start, end)`` for ``validation``/``test``/``predict`` batches; the module's
        hooks get ``dataloader_idx`` only when there are ``several`` loaders."""
        trainer, module = self.trainer, self.module
        cb_start = getattr(self.callbacks, f"on_{prefix}_batch_start")
        cb_end = getattr(self.callbacks, f"on_{prefix}_batch_end")
        m_start = getattr(self.module_hooks, f"on_{prefix}_batch_start")
        m_end = getattr(self.module_hooks, f"on_{prefix}_batch_end")

        def start(batch: Any, batch_idx: int, dl_idx: int) -> None:
            cb_start(trainer, module, batch, batch_idx, dl_idx)
            if m_start is not None:
                m_start(batch, batch_idx, *((dl_idx,) if several else ()))

        def end(outputs: Any, batch: Any, batch_idx: int, dl_idx: int) -> None:
            if m_end is not None:
                m_end(outputs, batch, batch_idx, *((dl_idx,) if several else ()))
            cb_end(trainer, module, outputs, batch, batch_idx, dl_idx)

        return start, end
