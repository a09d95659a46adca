"""The built-in precision modes, written against :mod:`ember.trainer.plugins` only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from ember.trainer.plugins import Precision, cast_floating
from torch import nn

__all__ = ["Float32Precision", "Float64Precision", "Precision"]


class Float32Precision(Precision):
    """``"32-true"``: float32 everywhere, the default."""

    name: ClassVar[str] = "32-true"


class Float64Precision(Precision):
    """``"64-true"``: parameters, floating-point inputs and new tensors in float64."""

    name: ClassVar[str] = "64-true"
    has_forward_context: ClassVar[bool] = True
    converts_input: ClassVar[bool] = True

    def convert_module(self, module: nn.Module) -> nn.Module:
        """Cast every parameter and buffer to float64."""
        return module.double()

    def convert_input(self, batch: Any) -> Any:
        """Cast floating-point tensors of the batch (any container) to float64."""
        return cast_floating(batch, torch.float64)

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        """Tensors created inside the step default to float64."""
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)
