"""Shared by the run-file tests: paths, a tiny user project, ``ember`` as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS = REPO_ROOT / "examples" / "digits"

#: a tiny model and loader functions, written into a test's folder so that class paths
#: resolve from the current directory as a user's own project would
TINY_MODULE = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from ember.trainer import EmberModule


class Tiny(EmberModule):
    def __init__(self, lr: float = 0.1, width: int = 4):
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(width, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.layer(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", nn.functional.mse_loss(self.layer(x), y))

    def predict_step(self, batch, batch_idx):
        return self.layer(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(n: int = 32, batch_size: int = 8, seed: int = 0, width: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=batch_size)
"""


def run_ember(
    *args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The ``ember`` command as a user runs it: a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "ember.hub", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
