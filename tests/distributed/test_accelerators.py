"""Accelerator names and ``devices=`` forms; clear errors when the hardware is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import Trainer
from ember.trainer.accelerators import CPUAccelerator, CUDAAccelerator, MPSAccelerator
from ember.trainer.errors import MisconfigurationError
from ember.trainer.plugins import parse_device_count, parse_device_indices


def _trainer(tmp_path: Path, **flags: Any) -> Trainer:
    return Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path, **flags)


@pytest.mark.parametrize(
    ("devices", "count"), [(1, 1), ("auto", 1), (2, 2), ("2", 2), ("0,1", 2), ([0, 1, 2], 3)]
)
def test_device_forms(devices: Any, count: int) -> None:
    assert parse_device_count(devices) == count


def test_device_indices() -> None:
    assert parse_device_indices("0,2", 3) == [0, 2]
    assert parse_device_indices(-1, 3) == [0, 1, 2]
    assert parse_device_indices("auto", 2) == [0, 1]
    with pytest.raises(MisconfigurationError, match="indices below 2"):
        parse_device_indices([3], 2)


@pytest.mark.parametrize("devices", [0, -2, True, [], 1.5])
def test_bad_devices_are_clear_errors(devices: Any) -> None:
    with pytest.raises(MisconfigurationError, match="devices"):
        parse_device_count(devices)


def test_auto_picks_what_is_present(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    expected = CUDAAccelerator if torch.cuda.is_available() else CPUAccelerator
    assert type(trainer.accelerator) is expected
    assert type(trainer.strategy).__name__ == "SingleDeviceStrategy"


def test_several_cpu_devices_choose_ddp(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, accelerator="cpu", devices=2)
    assert trainer.strategy.name == "ddp"
    assert trainer.world_size == 2 and trainer.global_rank == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
@pytest.mark.parametrize("name", ["gpu", "cuda"])
def test_gpu_without_one_says_what_to_pass(name: str, tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationError) as info:
        _trainer(tmp_path, accelerator=name)
    message = str(info.value)
    assert "no CUDA device" in message and "available here: cpu" in message
    assert "accelerator='auto' or accelerator='cpu'" in message


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the error without MPS")
def test_mps_without_one_says_what_to_pass(tmp_path: Path) -> None:
    assert not MPSAccelerator.is_available()
    with pytest.raises(
        MisconfigurationError, match=r"no MPS device.*accelerator='auto' or accelerator='cpu'"
    ):
        _trainer(tmp_path, accelerator="mps")


def test_num_nodes_needs_a_launcher(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationError, match="torchrun"):
        _trainer(tmp_path, accelerator="cpu", devices=1, num_nodes=2)
    with pytest.raises(MisconfigurationError, match="num_nodes"):
        _trainer(tmp_path, accelerator="cpu", strategy="single_device", num_nodes=2)
    with pytest.raises(MisconfigurationError, match="num_nodes must be"):
        _trainer(tmp_path, num_nodes=0)
