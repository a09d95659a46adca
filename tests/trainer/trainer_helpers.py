"""Small real models and data for the trainer tests: every run trains for real, on a few
hundred rows, in well under a second."""

from __future__ import annotations

from typing import Any

import torch
from ember.trainer import EmberModule
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

IN, HIDDEN, OUT = 8, 16, 3


def make_dataset(n: int = 64, seed: int = 0) -> TensorDataset:
    """A fixed classification dataset: ``n`` rows of 8 features, 3 classes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IN, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return TensorDataset(x, y)


def make_loader(n: int = 64, batch_size: int = 16, seed: int = 0, **kwargs: Any) -> DataLoader:
    """A DataLoader over :func:`make_dataset` (no shuffling unless asked)."""
    return DataLoader(make_dataset(n, seed), batch_size=batch_size, **kwargs)


def make_net(seed: int = 0) -> nn.Module:
    """The tiny MLP every test model wraps, with seeded initial weights."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, OUT))


class TinyModel(EmberModule):
    """A classifier that logs ``train_loss`` and ``val_loss``; tests subclass it."""

    def __init__(self, lr: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        self.net = make_net(seed)
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("val_loss", loss)
        return loss

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("test_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)
