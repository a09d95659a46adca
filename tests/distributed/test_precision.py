"""Precision modes on the CPU: the conformance suites, agreement with a raw
``torch.autocast`` loop, dtypes, aliases, and the loss scaler's state across a resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import EmberModule, Trainer
from ember.trainer.checkpoint import load_checkpoint_safe
from ember.trainer.precision import (
    BF16MixedPrecision,
    BF16TruePrecision,
    Float16MixedPrecision,
    Float16TruePrecision,
    Float32Precision,
    Float64Precision,
)
from ember.trainer.testing import PrecisionConformance, StrategyConformance
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class TestFloat16Mixed(PrecisionConformance):
    precision = "16-mixed"

    def selection(self) -> dict[str, Any]:
        """A first scale that does not overflow the tiny model's float16 gradients (with
        the default, GradScaler skips the first step, as it is meant to)."""
        return {"precision": {"name": "16-mixed", "init_scale": 1024.0}}


class TestBF16Mixed(PrecisionConformance):
    precision = "bf16-mixed"
    gradient_rtol = 2e-2


class TestBF16True(PrecisionConformance):
    precision = "bf16-true"
    gradient_rtol = 5e-2


class TestFloat16True(PrecisionConformance):
    precision = "16-true"
    gradient_rtol = 1e-2


class TestDDPInOneProcess(StrategyConformance):
    strategy = "ddp"


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = torch.randn(64, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16)


class Net(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        self.losses: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self.net(x).float(), y.to(torch.float32))
        self.losses.append(float(loss.detach()))
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _quiet(tmp_path: Path, **flags: Any) -> Trainer:
    return Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        **flags,
    )


def _raw_autocast_losses(dtype: torch.dtype, scaled: bool) -> list[float]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", enabled=scaled)
    losses = []
    for x, y in _loader():
        with torch.autocast("cpu", dtype=dtype):
            loss = F.mse_loss(net(x).float(), y)
        losses.append(float(loss.detach()))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    return losses


@pytest.mark.parametrize(
    ("precision", "dtype", "scaled"),
    [("bf16-mixed", torch.bfloat16, False), ("16-mixed", torch.float16, True)],
)
def test_mixed_precision_matches_a_raw_autocast_loop(
    precision: str, dtype: torch.dtype, scaled: bool, tmp_path: Path
) -> None:
    """The same losses as autocast (+ GradScaler for float16) written by hand."""
    module = Net()
    _quiet(tmp_path, precision=precision, max_epochs=1).fit(module, _loader())
    torch.testing.assert_close(
        module.losses, _raw_autocast_losses(dtype, scaled), rtol=1e-4, atol=1e-5
    )
    assert module.net[0].weight.dtype == torch.float32


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [("64-true", torch.float64), ("bf16-true", torch.bfloat16), ("16-true", torch.float16)],
)
def test_true_modes_convert_the_parameters(
    precision: str, dtype: torch.dtype, tmp_path: Path
) -> None:
    module = Net()
    _quiet(tmp_path, precision=precision, max_epochs=1).fit(module, _loader())
    assert {p.dtype for p in module.parameters()} == {dtype}
    assert torch.get_default_dtype() == torch.float32  # restored after every step


@pytest.mark.parametrize(
    ("given", "cls"),
    [
        (32, Float32Precision),
        ("32", Float32Precision),
        (64, Float64Precision),
        (16, Float16MixedPrecision),
        ("16", Float16MixedPrecision),
        ("bf16", BF16MixedPrecision),
        ("16-true", Float16TruePrecision),
        ("bf16-true", BF16TruePrecision),
        ("bf16_mixed", BF16MixedPrecision),
    ],
)
def test_aliases_users_type(given: Any, cls: type, tmp_path: Path) -> None:
    assert type(_quiet(tmp_path, precision=given).precision_plugin) is cls


def test_an_unknown_precision_lists_the_modes(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="bf16-mixed") as info:
        _quiet(tmp_path, precision="bf17-mixed")
    assert "precision" in str(info.value)


def test_loss_scaler_state_survives_resume(tmp_path: Path) -> None:
    """A first scale so large every step overflows: the scaler halves it on each skipped
    step; the halved scale is in the checkpoint and comes back on resume."""
    trainer = _quiet(tmp_path, precision={"name": "16-mixed", "init_scale": 2.0**60}, max_epochs=1)
    module = Net()
    trainer.fit(module, _loader())
    state = trainer.precision_plugin.state_dict()
    assert state["scale"] < 2.0**60
    path = tmp_path / "scaler.ckpt"
    trainer.save_checkpoint(path)
    assert load_checkpoint_safe(path)["precision"] == state
    resumed = _quiet(tmp_path, precision="16-mixed", max_epochs=1)
    resumed.fit(Net(), _loader(), ckpt_path=path)
    assert resumed.precision_plugin.state_dict() == state


def test_16_mixed_refuses_a_closure_optimizer(tmp_path: Path) -> None:
    class LBFGSNet(Net):
        def configure_optimizers(self) -> Any:
            return torch.optim.LBFGS(self.parameters())

    with pytest.raises(Exception, match="bf16-mixed"):
        _quiet(tmp_path, precision="16-mixed", max_epochs=1).fit(LBFGSNet(), _loader())
