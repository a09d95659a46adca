"""Strategies: how training is spread over devices and processes.

Selected by name through the hub (``Trainer(strategy="single_device")``). A strategy
is connected to the run's accelerator and precision mode, places the module, moves
batches, and answers the collective questions (``reduce``, ``barrier``, ``broadcast``)
that distributed strategies answer across processes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from ember.trainer.accelerators import Accelerator
from ember.trainer.errors import MisconfigurationError
from ember.trainer.precision import Precision
from torch import Tensor, nn


class Strategy:
    """One process; the base of every strategy. Subclasses override the collectives."""

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.accelerator: Accelerator | None = None
        self.precision: Precision | None = None
        self.devices: list[torch.device] = []

    def connect(
        self, accelerator: Accelerator, precision: Precision, devices: list[torch.device]
    ) -> None:
        """Attach the run's accelerator, precision mode and parsed devices."""
        self.accelerator = accelerator
        self.precision = precision
        self.devices = devices

    @property
    def root_device(self) -> torch.device:
        """The device this process computes on."""
        return self.devices[self.local_rank] if self.devices else torch.device("cpu")

    @property
    def global_rank(self) -> int:
        """This process's index among all processes."""
        return 0

    @property
    def local_rank(self) -> int:
        """This process's index on its machine."""
        return 0

    @property
    def world_size(self) -> int:
        """How many processes take part."""
        return 1

    @property
    def is_global_zero(self) -> bool:
        """Whether this is the process that logs, prints and writes checkpoints."""
        return self.global_rank == 0

    def setup_environment(self) -> None:
        """Prepare the device (and, for distributed strategies, the process group)."""
        assert self.accelerator is not None, "connect() first"
        self.accelerator.setup_device(self.root_device)

    def model_to_device(self, module: nn.Module) -> nn.Module:
        """Move ``module`` to :attr:`root_device`."""
        return module.to(self.root_device)

    def setup_module(self, module: nn.Module) -> nn.Module:
        """Cast the module for the precision mode and place it on the device."""
        assert self.precision is not None, "connect() first"
        return self.model_to_device(self.precision.convert_module(module))

    def batch_to_device(self, batch: Any) -> Any:
        """Copy ``batch`` to :attr:`root_device`."""
        assert self.accelerator is not None, "connect() first"
        return self.accelerator.batch_to_device(batch, self.root_device)

    def reduce(self, tensor: Tensor, reduce_op: str = "mean") -> Tensor:
        """Combine ``tensor`` across processes (``"mean"``, ``"sum"``, ``"max"``, ``"min"``)."""
        return tensor

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        """Agree on a flag across processes: every process (``all``) or any of them."""
        return decision

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Send ``obj`` from process ``src`` to all."""
        return obj

    def barrier(self, name: str | None = None) -> None:
        """Wait until every process gets here."""

    def teardown(self) -> None:
        """Release what :meth:`setup_environment` took."""
        if self.accelerator is not None:
            self.accelerator.teardown()


class SingleDeviceStrategy(Strategy):
    """Train on one device in this process."""

    name: ClassVar[str] = "single_device"

    def connect(
        self, accelerator: Accelerator, precision: Precision, devices: list[torch.device]
    ) -> None:
        """Attach the run's parts; more than one device is an error."""
        if len(devices) != 1:
            raise MisconfigurationError(
                f"strategy 'single_device' trains on one device, but devices={len(devices)} "
                "were requested: pass devices=1, or a strategy that spreads training over "
                "several devices"
            )
        super().connect(accelerator, precision, devices)
