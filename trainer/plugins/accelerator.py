"""The accelerator contract: a device family, how ``devices=`` names its devices, how a
batch gets onto one, the determinism switches and the device's random state."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from ember.trainer.errors import MisconfigurationError
from ember.trainer.plugins.tensors import move_to_device


def parse_device_count(devices: Any) -> int:
    """How many devices a ``devices=`` value asks for: ``"auto"`` (1), an int (-1: all),
    a string such as ``"2"`` or ``"0,1"``, or a list of indices."""
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
            return parse_device_count(int(text))
        indices = [d.strip() for d in text.split(",") if d.strip()]
        if not indices or not all(d.isdigit() for d in indices):
            raise MisconfigurationError(
                f"devices={devices!r} is not valid: pass 'auto', a count such as '2', or "
                "device indices such as '0,1'"
            )
        return len(indices)
    if isinstance(devices, (list, tuple)):
        if not devices:
            raise MisconfigurationError("devices=[] selects no device: name at least one")
        bad = [d for d in devices if isinstance(d, bool) or not isinstance(d, int) or d < 0]
        if bad:
            raise MisconfigurationError(
                f"devices={devices!r} is not valid: a list names device indices, ints >= 0 "
                f"(got {bad[0]!r})"
            )
        return len(devices)
    raise MisconfigurationError(
        f"devices={devices!r} is not valid: pass an int, a list of indices or 'auto'"
    )


def parse_device_indices(devices: Any, available: int) -> list[int]:
    """The device indices a ``devices=`` value names when ``available`` devices exist:
    ``"auto"`` and ``-1`` take all, ``N`` the first N, a list or ``"0,2"`` exactly those."""
    count = parse_device_count(devices)  # checks the value's form
    if isinstance(devices, str) and "," in devices:
        devices = [int(d) for d in devices.split(",") if d.strip()]
    if isinstance(devices, (list, tuple)):
        indices = [int(d) for d in devices]
    else:
        if devices in ("auto", None) or count == -1:
            count = available
        indices = list(range(count))
    missing = [i for i in indices if not 0 <= i < available]
    if missing or not indices:
        raise MisconfigurationError(
            f"devices={devices!r} names device(s) {missing or indices}, but this machine has "
            f"{available}: pass indices below {available}"
        )
    return indices


class Accelerator:
    """A device family. Subclasses set :attr:`name` and :attr:`device_type`, implement
    :meth:`parse_devices`, and add their device's determinism switches and random state."""

    #: the provider name the class is registered under (the record's spelling)
    name: ClassVar[str] = ""
    #: the ``torch.device`` type of this family (``"cpu"``, ``"cuda"``, ...)
    device_type: ClassVar[str] = "cpu"
    #: whether batches from a loader must be copied; the loop skips the call when not
    moves_batches: ClassVar[bool] = True

    def __init__(self) -> None:
        self._device: torch.device | None = None

    @classmethod
    def is_available(cls) -> bool:
        """Whether this machine has the hardware (asked by ``accelerator="auto"``)."""
        return True

    def parse_devices(self, devices: Any) -> list[torch.device]:
        """The devices that ``Trainer(devices=...)`` names on this accelerator (one per
        process); :func:`parse_device_count` and :func:`parse_device_indices` help."""
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

    def configure_determinism(
        self, deterministic: bool | str | None, benchmark: bool | None
    ) -> None:
        """Apply ``Trainer(deterministic=..., benchmark=...)``: torch's deterministic
        algorithms here; a device family adds its own switches (cuDNN, cuBLAS)."""
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=deterministic == "warn")
        elif deterministic is False:
            torch.use_deterministic_algorithms(False)

    def rng_state(self) -> dict[str, Any]:
        """The device's random generators, saved in checkpoints (tensors and plain data)."""
        return {}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`rng_state` returned (keys it did not write are ignored)."""

    def teardown(self) -> None:
        """Release what :meth:`setup_device` took."""
