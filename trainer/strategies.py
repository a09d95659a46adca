"""The built-in strategies, written against :mod:`ember.trainer.plugins` only."""

from __future__ import annotations

from typing import ClassVar

import torch
from ember.trainer.plugins import Accelerator, MisconfigurationError, Precision, Strategy

__all__ = ["SingleDeviceStrategy", "Strategy"]


class SingleDeviceStrategy(Strategy):
    """Train on one device in this process."""

    name: ClassVar[str] = "single_device"

    def connect(
        self, accelerator: Accelerator, precision: Precision, devices: list[torch.device]
    ) -> None:
        """Attach the run's parts; more than one device is an error."""
        if self.num_nodes != 1:
            raise MisconfigurationError(
                f"strategy 'single_device' runs on one machine, but num_nodes={self.num_nodes}: "
                "pass strategy='ddp' (or 'auto') to train on several machines"
            )
        if len(devices) != 1:
            raise MisconfigurationError(
                f"strategy 'single_device' trains on one device, but devices={len(devices)} "
                "were requested: pass devices=1, or a strategy that spreads training over "
                "several devices"
            )
        super().connect(accelerator, precision, devices)
