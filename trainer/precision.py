"""Precision modes: the dtype the model computes in and how backward and optimizer steps
run under it.

Selected by name through the hub (``Trainer(precision="32-true")``). Mixed-precision
plugins subclass :class:`Precision` and override :meth:`forward_context`,
:meth:`backward` and :meth:`optimizer_step` (loss scaling); the loops skip the calls a
mode says it does not need (:attr:`has_forward_context`, :attr:`converts_input`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


class Precision:
    """Full precision in the module's own dtype; the base of every precision mode."""

    name: ClassVar[str] = ""
    #: whether :meth:`forward_context` does anything (the loop skips the ``with`` if not)
    has_forward_context: ClassVar[bool] = False
    #: whether :meth:`convert_input` does anything (the loop skips the call if not)
    converts_input: ClassVar[bool] = False

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

    def backward(
        self, loss: Tensor, module: nn.Module | None = None, *args: Any, **kwargs: Any
    ) -> None:
        """Run the backward pass of ``loss``."""
        loss.backward(*args, **kwargs)

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients to their true scale before clipping (a no-op without scaling)."""

    def optimizer_step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any] | None = None
    ) -> Any:
        """Step ``optimizer`` (with ``closure`` for optimizers such as LBFGS)."""
        if closure is None:
            return optimizer.step()
        return optimizer.step(closure)

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (a loss scaler's, for mixed modes)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class Float32Precision(Precision):
    """``"32-true"``: float32 everywhere, the default."""

    name: ClassVar[str] = "32-true"


def _to_double(batch: Any) -> Any:
    """``batch`` with its floating-point tensors cast to float64."""
    if isinstance(batch, Tensor):
        return batch.double() if batch.is_floating_point() else batch
    if isinstance(batch, (list, tuple, dict)):
        return _walk(batch, _to_double)
    return batch


def _walk(batch: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(batch, dict):
        return type(batch)({k: fn(v) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(fn(v) for v in batch))
    return type(batch)(fn(v) for v in batch)


class Float64Precision(Precision):
    """``"64-true"``: parameters, floating-point inputs and new tensors in float64."""

    name: ClassVar[str] = "64-true"
    has_forward_context: ClassVar[bool] = True
    converts_input: ClassVar[bool] = True

    def convert_module(self, module: nn.Module) -> nn.Module:
        """Cast every parameter and buffer to float64."""
        return module.double()

    def convert_input(self, batch: Any) -> Any:
        """Cast floating-point tensors of the batch to float64."""
        return _to_double(batch)

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        """Tensors created inside the step default to float64."""
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)
