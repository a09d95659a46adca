"""A tiny real model whose validation metric follows a script, and a quiet Trainer: the
checkpoint tests train for real and know in advance which epochs should rank best."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from ember.trainer import EmberModule, Trainer
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


def make_loader(n: int = 32, batch_size: int = 8, seed: int = 0) -> DataLoader:
    """``n`` rows of 4 features, 2 classes, ``n / batch_size`` batches."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=batch_size)


class Scripted(EmberModule):
    """Trains a linear layer; logs ``scores[current_epoch]`` as ``metric`` in validation."""

    def __init__(self, scores: list[float] | None = None, metric: str = "val_score") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(4, 2)
        self.scores = scores or [0.0] * 100
        self.metric = metric

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.log(self.metric, torch.tensor(float(self.scores[self.current_epoch])))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(
    root: Path,
    callbacks: list[Any],
    max_epochs: int,
    scores: list[float] | None = None,
    ckpt_path: str | None = None,
    validate: bool = True,
    **flags: Any,
) -> Trainer:
    """Fit :class:`Scripted` for ``max_epochs`` (4 steps each) under ``root``."""
    trainer = Trainer(
        max_epochs=max_epochs,
        default_root_dir=str(root),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        **flags,
    )
    val = make_loader(seed=1) if validate else None
    trainer.fit(Scripted(scores), make_loader(), val, ckpt_path=ckpt_path)
    return trainer


def names(folder: str | Path) -> list[str]:
    """The checkpoint files in ``folder``, sorted."""
    return sorted(p.name for p in Path(folder).iterdir() if p.suffix == ".ckpt")
