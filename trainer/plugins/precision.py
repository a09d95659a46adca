"""The precision contract: the dtype a model computes in, and the loss scaling around
every backward pass and optimizer step, whoever starts them.

The trainer calls :meth:`Precision.backward` for every backward pass (automatic,
closure and ``manual_backward``) and :meth:`Precision.optimizer_step` for every step
(automatic, a module's own ``optimizer_step``, and ``optimizer.step()`` in manual
optimization), so a module that overrides ``backward`` or ``optimizer_step`` still gets
scaling and unscaling. Gradients are unscaled (:meth:`unscale_gradients`) before
``on_before_optimizer_step`` and before :meth:`clip_gradients` on every path.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from ember.trainer.errors import MisconfigurationError
from torch import Tensor, nn


@functools.cache
def _step_needs_closure(cls: type) -> bool:
    try:
        param = inspect.signature(cls.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is inspect.Parameter.empty


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` must be given a closure (LBFGS re-evaluates the loss)."""
    return _step_needs_closure(type(optimizer))


class Precision:
    """Full precision in the module's own dtype; the base of every precision mode."""

    #: the provider name the class is registered under (the record's spelling)
    name: ClassVar[str] = ""
    #: whether :meth:`forward_context` does anything (the loop skips the ``with`` if not)
    has_forward_context: ClassVar[bool] = False
    #: whether :meth:`convert_input` does anything (the loop skips the call if not)
    converts_input: ClassVar[bool] = False

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def setup(self, device: torch.device) -> None:
        """Learn the device the run computes on (called when the environment is set up,
        before any step), e.g. to choose autocast's device type."""
        self.device = device

    @property
    def device_type(self) -> str:
        """``"cpu"``, ``"cuda"``, ...: the type of the run's device."""
        return self.device.type

    def convert_module(self, module: nn.Module) -> nn.Module:
        """Cast the module's parameters for this mode (nothing to do by default)."""
        return module

    def convert_input(self, batch: Any) -> Any:
        """Cast a batch's floating-point tensors for this mode (nothing by default)."""
        return batch

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        """The context the steps run in (autocast for mixed modes)."""
        yield

    def scale_loss(self, loss: Tensor) -> Tensor:
        """The tensor backward runs on: ``loss`` times the loss scale (``loss`` here)."""
        return loss

    def backward(self, loss: Tensor, module: nn.Module | None, *args: Any, **kwargs: Any) -> None:
        """Run backward on the scaled loss through the module's own ``backward`` (the
        user's override, if any)."""
        scaled = self.scale_loss(loss)
        if module is None:
            scaled.backward(*args, **kwargs)
        else:
            module.backward(scaled, *args, **kwargs)  # type: ignore[operator]

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring ``optimizer``'s gradients to their true scale (once per step; a no-op
        without scaling). Called before ``on_before_optimizer_step`` and clipping."""

    def clip_gradients(
        self, optimizer: torch.optim.Optimizer, clip_val: float, algorithm: str = "norm"
    ) -> None:
        """Clip ``optimizer``'s (already unscaled) gradients by total norm or by value."""
        if algorithm not in ("norm", "value"):
            raise MisconfigurationError(
                f"gradient_clip_algorithm must be 'norm' or 'value'; got {algorithm!r}"
            )
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if algorithm == "norm":
            torch.nn.utils.clip_grad_norm_(params, clip_val)
        else:
            torch.nn.utils.clip_grad_value_(params, clip_val)

    def optimizer_step(self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any]) -> Any:
        """Step ``optimizer``. ``closure`` brings the gradients (it runs backward when the
        optimizer re-evaluates the loss, such as LBFGS), unscales them, fires
        ``on_before_optimizer_step`` and clips; it returns the loss. A scaling mode may
        call it first, then skip the step when a gradient is not finite."""
        if needs_closure(optimizer):
            return optimizer.step(closure)
        loss = closure()
        optimizer.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (a loss scaler's, for mixed modes)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
