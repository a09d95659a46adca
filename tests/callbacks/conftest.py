"""Small real models and data for the callback tests: every test runs a real Trainer."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import EmberModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

# test modules import terminal_helpers (--import-mode=importlib puts no test folder on sys.path)
sys.path.insert(0, str(Path(__file__).parent))


def loader(n: int = 32, batch_size: int = 8, seed: int = 0) -> DataLoader:
    """``n`` samples of a noisy linear regression in ``n / batch_size`` batches."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


class Regression(EmberModule):
    """A linear regression; ``val_values[epoch]`` replaces the real validation loss so a
    test can script the monitored metric epoch by epoch."""

    def __init__(
        self,
        val_values: Sequence[float] | None = None,
        lr: float = 0.05,
        configure: Callable[[EmberModule], Any] | None = None,
    ) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.val_values = list(val_values) if val_values is not None else None
        self.lr = lr
        self._configure = configure

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        if self.val_values is None:
            value = torch.nn.functional.mse_loss(self.layer(x), y)
        else:
            scripted = self.val_values[min(self.current_epoch, len(self.val_values) - 1)]
            value = torch.tensor(scripted if not math.isnan(scripted) else float("nan"))
        self.log("val_loss", value, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self.layer(batch[0])

    def configure_optimizers(self) -> Any:
        if self._configure is not None:
            return self._configure(self)
        return torch.optim.SGD(self.parameters(), lr=self.lr)


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., Trainer]:
    """A Trainer with quiet defaults (no bar, no summary, no logger) in a temp folder."""

    def make(**kwargs: Any) -> Trainer:
        defaults: dict[str, Any] = {
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "enable_checkpointing": False,
            "num_sanity_val_steps": 0,
            "default_root_dir": tmp_path,
        }
        return Trainer(**{**defaults, **kwargs})

    return make


class TransferCounter:
    """Counts ``Tensor.item`` and ``Tensor.tolist`` calls: each is a device-to-host read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("item", "tolist"):
            original = getattr(torch.Tensor, name)

            def counted(tensor: torch.Tensor, *args: Any, _original: Any = original) -> Any:
                self.count += 1
                return _original(tensor, *args)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.fixture
def transfers(monkeypatch: pytest.MonkeyPatch) -> TransferCounter:
    """Count host transfers for the rest of the test."""
    return TransferCounter(monkeypatch)


@pytest.fixture
def model_cls() -> type[Regression]:
    """The :class:`Regression` module class (test modules cannot import conftest)."""
    return Regression


@pytest.fixture
def make_loader() -> Callable[..., DataLoader]:
    """The :func:`loader` data factory."""
    return loader
