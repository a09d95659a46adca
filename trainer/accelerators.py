"""The built-in accelerators, written against :mod:`ember.trainer.plugins` only."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from ember.trainer.plugins import (
    Accelerator,
    MisconfigurationError,
    parse_device_count,
    parse_device_indices,
)


class CPUAccelerator(Accelerator):
    """The CPU: always available; batches stay where the loader made them."""

    name: ClassVar[str] = "cpu"
    device_type: ClassVar[str] = "cpu"
    moves_batches: ClassVar[bool] = False

    def parse_devices(self, devices: Any) -> list[torch.device]:
        """One CPU device per process; ``devices=N`` asks for N processes."""
        count = parse_device_count(devices)
        return [torch.device("cpu")] * (1 if count == -1 else count)

    def batch_to_device(self, batch: Any, device: torch.device | None = None) -> Any:
        """Batches from a CPU loader are already on the CPU."""
        return batch


class CUDAAccelerator(Accelerator):
    """NVIDIA GPUs through ``torch.cuda``: device indices, cuDNN/cuBLAS determinism and
    the GPUs' random generators."""

    name: ClassVar[str] = "cuda"
    device_type: ClassVar[str] = "cuda"

    @classmethod
    def is_available(cls) -> bool:
        """Whether torch sees a CUDA device."""
        return torch.cuda.is_available()

    def parse_devices(self, devices: Any) -> list[torch.device]:
        """``devices=N`` takes GPUs 0..N-1; a list or ``"0,2"`` names them; -1 takes all."""
        available = torch.cuda.device_count()
        if available == 0:
            raise MisconfigurationError(
                "accelerator='cuda' but torch sees no CUDA device"
                f"{'' if torch.version.cuda else ' (this torch is a CPU-only build)'}; "
                f"available here: {_available_here()}. Install a CUDA build of torch, check "
                "CUDA_VISIBLE_DEVICES, or pass accelerator='auto' or accelerator='cpu'"
            )
        return [torch.device("cuda", i) for i in parse_device_indices(devices, available)]

    def setup_device(self, device: torch.device) -> None:
        """Make ``device`` the current CUDA device."""
        torch.cuda.set_device(device)
        super().setup_device(device)

    def configure_determinism(
        self, deterministic: bool | str | None, benchmark: bool | None
    ) -> None:
        """torch's switch, plus cuBLAS's workspace setting and cuDNN's autotuner."""
        if deterministic:
            # cuBLAS is deterministic only with this workspace configuration
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        super().configure_determinism(deterministic, benchmark)
        if benchmark is not None:
            torch.backends.cudnn.benchmark = bool(benchmark)
        elif deterministic:
            torch.backends.cudnn.benchmark = False

    def rng_state(self) -> dict[str, Any]:
        """Every visible GPU's generator (only once CUDA is initialised: asking earlier
        would start CUDA on every GPU)."""
        if not torch.cuda.is_initialized():
            return {}
        return {"cuda": torch.cuda.get_rng_state_all()}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        """Restore the GPUs' generators saved by :meth:`rng_state`."""
        saved = state.get("cuda")
        if saved is None:
            return
        for index, generator in enumerate(saved[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(generator.cpu(), index)


class MPSAccelerator(Accelerator):
    """Apple-silicon GPUs through ``torch.mps`` (one device)."""

    name: ClassVar[str] = "mps"
    device_type: ClassVar[str] = "mps"

    @classmethod
    def is_available(cls) -> bool:
        """Whether torch was built with MPS and the machine has it."""
        return torch.backends.mps.is_available()

    def parse_devices(self, devices: Any) -> list[torch.device]:
        """The one MPS device (``devices=1``, ``"auto"``, ``-1`` or ``[0]``)."""
        if not self.is_available():
            raise MisconfigurationError(
                "accelerator='mps' but torch sees no MPS device (it needs an Apple-silicon "
                f"Mac and a torch built with MPS); available here: {_available_here()}. "
                "Pass accelerator='auto' or accelerator='cpu'"
            )
        parse_device_indices(devices, 1)
        return [torch.device("mps", 0)]

    def rng_state(self) -> dict[str, Any]:
        """The MPS generator's state."""
        return {"mps": torch.mps.get_rng_state()}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        """Restore the MPS generator saved by :meth:`rng_state`."""
        if "mps" in state:
            torch.mps.set_rng_state(state["mps"].cpu())


def _available_here() -> str:
    """The device families present on this machine, for error messages."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append(f"cuda ({torch.cuda.device_count()} device(s))")
    if torch.backends.mps.is_available():
        found.append("mps")
    return ", ".join(found)
