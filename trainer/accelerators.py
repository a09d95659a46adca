"""Accelerators: which device family a run uses and how batches get onto it.

Selected by name through the hub (``Trainer(accelerator="cpu")``); a plugin adds one by
subclassing :class:`Accelerator` and registering an ``AcceleratorSpec``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from ember.trainer.errors import MisconfigurationError
from torch import Tensor


def move_to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it moved to ``device`` (lists, tuples, named tuples,
    mappings, dataclasses and objects with a ``.to(device)`` method are walked)."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: move_to_device(v, device) for k, v in batch.items()})  # type: ignore[call-arg]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {
            f.name: move_to_device(getattr(batch, f.name), device)
            for f in dataclasses.fields(batch)
            if f.init
        }
        return dataclasses.replace(batch, **changes)
    to = getattr(batch, "to", None)
    if callable(to):
        return to(device)
    return batch


class Accelerator:
    """A device family. Subclasses set :attr:`name` and, when batches must be copied to
    the device, keep :attr:`moves_batches` true."""

    name: ClassVar[str] = ""
    #: whether batches from a loader must be copied; the loop skips the call when not
    moves_batches: ClassVar[bool] = True
    #: ``accelerator="auto"`` picks the available accelerator with the highest priority
    #: (the CPU has 0; a GPU family should use a positive number)
    auto_priority: ClassVar[int] = 0

    def __init__(self) -> None:
        self._device: torch.device | None = None

    @classmethod
    def is_available(cls) -> bool:
        """Whether this machine has the hardware (used by ``accelerator="auto"``)."""
        return True

    def parse_devices(self, devices: Any) -> list[torch.device]:
        """The devices that ``Trainer(devices=...)`` names on this accelerator."""
        raise NotImplementedError(f"{type(self).__name__} must implement parse_devices")

    def setup_device(self, device: torch.device) -> None:
        """Make ``device`` the current one for this process."""
        self._device = device

    @property
    def device(self) -> torch.device:
        """The device chosen by :meth:`setup_device`."""
        if self._device is None:
            raise RuntimeError(f"{type(self).__name__}.setup_device() has not been called")
        return self._device

    def batch_to_device(self, batch: Any, device: torch.device | None = None) -> Any:
        """Copy every tensor of ``batch`` to ``device`` (default: :attr:`device`)."""
        return move_to_device(batch, device if device is not None else self.device)

    def teardown(self) -> None:
        """Release what :meth:`setup_device` took."""


def _count_devices(devices: Any) -> int:
    """How many devices a ``devices=`` value asks for: ``"auto"``, an int, ``"2"``, a list."""
    if devices == "auto" or devices is None:
        return 1
    if isinstance(devices, bool):
        raise MisconfigurationError(
            f"devices={devices!r} is not valid: pass an int, 'auto' or a list"
        )
    if isinstance(devices, int):
        if devices == 0 or devices < -1:
            raise MisconfigurationError(
                f"devices={devices} is not valid: pass a positive number, -1 for all, or 'auto'"
            )
        return devices
    if isinstance(devices, str):
        text = devices.strip()
        if text.lstrip("-").isdigit():
            return _count_devices(int(text))
        return len([d for d in text.split(",") if d.strip()])
    if isinstance(devices, (list, tuple)):
        if not devices:
            raise MisconfigurationError("devices=[] selects no device: name at least one")
        return len(devices)
    raise MisconfigurationError(
        f"devices={devices!r} is not valid: pass an int, a list of indices or 'auto'"
    )


class CPUAccelerator(Accelerator):
    """The CPU: always available; batches stay where the loader made them."""

    name: ClassVar[str] = "cpu"
    moves_batches: ClassVar[bool] = False

    def parse_devices(self, devices: Any) -> list[torch.device]:
        """One CPU device per process; ``devices=N`` asks for N processes."""
        count = _count_devices(devices)
        return [torch.device("cpu")] * (1 if count == -1 else count)

    def batch_to_device(self, batch: Any, device: torch.device | None = None) -> Any:
        """Batches from a CPU loader are already on the CPU."""
        return batch
