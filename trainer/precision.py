"""The built-in precision modes, written against :mod:`ember.trainer.plugins` only."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from ember.trainer.plugins import MisconfigurationError, Precision, cast_floating, needs_closure
from torch import Tensor, nn

__all__ = [
    "BF16MixedPrecision",
    "BF16TruePrecision",
    "Float16MixedPrecision",
    "Float16TruePrecision",
    "Float32Precision",
    "Float64Precision",
    "Precision",
]


class Float32Precision(Precision):
    """``"32-true"``: float32 everywhere, the default."""

    name: ClassVar[str] = "32-true"


class _TruePrecision(Precision):
    """Parameters, floating-point inputs and tensors created in a step all in :attr:`dtype`."""

    dtype: ClassVar[torch.dtype] = torch.float32
    has_forward_context: ClassVar[bool] = True
    converts_input: ClassVar[bool] = True

    def convert_module(self, module: nn.Module) -> nn.Module:
        """Cast every floating-point parameter and buffer to :attr:`dtype`."""
        return module.to(self.dtype)

    def convert_input(self, batch: Any) -> Any:
        """Cast floating-point tensors of the batch (any container) to :attr:`dtype`."""
        return cast_floating(batch, self.dtype)

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        """Tensors created inside the step default to :attr:`dtype`."""
        previous = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)


class Float64Precision(_TruePrecision):
    """``"64-true"``: parameters, floating-point inputs and new tensors in float64."""

    name: ClassVar[str] = "64-true"
    dtype: ClassVar[torch.dtype] = torch.float64


class Float16TruePrecision(_TruePrecision):
    """``"16-true"``: everything in float16, no loss scaling (half the memory of
    ``16-mixed``, at the risk of gradients that underflow)."""

    name: ClassVar[str] = "16-true"
    dtype: ClassVar[torch.dtype] = torch.float16


class BF16TruePrecision(_TruePrecision):
    """``"bf16-true"``: everything in bfloat16 (float32's range, 8 bits of mantissa)."""

    name: ClassVar[str] = "bf16-true"
    dtype: ClassVar[torch.dtype] = torch.bfloat16

    def setup(self, device: torch.device) -> None:
        """Refuse a GPU without bfloat16."""
        _check_bf16(device, self.name)
        super().setup(device)


def _check_bf16(device: torch.device, mode: str) -> None:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MisconfigurationError(
            f"precision={mode!r}: the GPU {torch.cuda.get_device_name(device)} has no "
            "bfloat16 support: use precision='16-mixed' (float16 with loss scaling) instead"
        )


class _MixedPrecision(Precision):
    """Weights stay float32; the steps run under ``torch.autocast`` in :attr:`dtype`."""

    dtype: ClassVar[torch.dtype] = torch.float32
    has_forward_context: ClassVar[bool] = True

    def setup(self, device: torch.device) -> None:
        """Check autocast supports this dtype on ``device``'s type."""
        super().setup(device)
        if not torch.amp.is_autocast_available(device.type):
            raise MisconfigurationError(
                f"precision={self.name!r}: torch has no autocast for {device.type!r} devices: "
                "use precision='32-true'"
            )

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        """Autocast to :attr:`dtype` on the run's device type."""
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield


class BF16MixedPrecision(_MixedPrecision):
    """``"bf16-mixed"``: autocast to bfloat16 (no loss scaling needed: bfloat16 has
    float32's range); on CPU and on GPUs with bfloat16."""

    name: ClassVar[str] = "bf16-mixed"
    dtype: ClassVar[torch.dtype] = torch.bfloat16

    def setup(self, device: torch.device) -> None:
        """Refuse a GPU without bfloat16."""
        _check_bf16(device, self.name)
        super().setup(device)


class Float16MixedPrecision(_MixedPrecision):
    """``"16-mixed"``: autocast to float16 with a dynamic loss scale
    (``torch.amp.GradScaler``) whose state is saved in checkpoints. Steps whose
    gradients overflow are skipped and the scale lowered, as ``GradScaler`` does.

    :param init_scale: the first loss scale.
    :param growth_interval: steps without overflow before the scale doubles.
    """

    name: ClassVar[str] = "16-mixed"
    dtype: ClassVar[torch.dtype] = torch.float16

    def __init__(self, init_scale: float = 2.0**16, growth_interval: int = 2000) -> None:
        super().__init__()
        self.init_scale = float(init_scale)
        self.growth_interval = int(growth_interval)
        self.scaler: torch.amp.GradScaler | None = None
        self._scaler_device_type = ""
        self._pending_state: dict[str, Any] | None = None
        #: optimizers whose gradients were unscaled since the last step
        self._unscaled: set[int] = set()

    def setup(self, device: torch.device) -> None:
        """Build the scaler for ``device``'s type (restoring a checkpointed state)."""
        super().setup(device)
        if self.scaler is None or self._scaler_device_type != device.type:
            if self.scaler is not None and self._pending_state is None:
                self._pending_state = self.scaler.state_dict()
            self.scaler = torch.amp.GradScaler(
                device.type, init_scale=self.init_scale, growth_interval=self.growth_interval
            )
            self._scaler_device_type = device.type
        if self._pending_state is not None:
            self.scaler.load_state_dict(self._pending_state)
            self._pending_state = None

    def _scaler(self) -> torch.amp.GradScaler:
        if self.scaler is None:
            self.setup(self.device)
        assert self.scaler is not None
        return self.scaler

    def scale_loss(self, loss: Tensor) -> Tensor:
        """The loss times the current scale."""
        return self._scaler().scale(loss)

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the scale, once per step, noting any overflow."""
        if id(optimizer) in self._unscaled:
            return
        self._unscaled.add(id(optimizer))
        self._scaler().unscale_(optimizer)

    def optimizer_step(self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any]) -> Any:
        """Run the closure (unscale, hooks, clipping), then step unless a gradient
        overflowed, and update the scale."""
        if needs_closure(optimizer):
            raise MisconfigurationError(
                f"precision='16-mixed' cannot step {type(optimizer).__name__}, which "
                "re-evaluates the loss through a closure: use precision='bf16-mixed' or "
                "'32-true' with it"
            )
        scaler = self._scaler()
        loss = closure()
        self.unscale_gradients(optimizer)
        scaler.step(optimizer)
        scaler.update()
        self._unscaled.discard(id(optimizer))
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The scaler's scale, growth tracker and settings."""
        if self.scaler is None:
            return dict(self._pending_state or {})
        return self.scaler.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the scaler (at set-up, if it is not built yet)."""
        if self.scaler is None:
            self._pending_state = dict(state_dict)
        else:
            self.scaler.load_state_dict(dict(state_dict))
