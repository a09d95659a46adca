"""Optimization code as Lightning users write it: ``ReduceLROnPlateau`` stepped by hand
in manual optimization (no ``monitor``), and steps written without ``batch_idx``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import EmberModule, MisconfigurationError, Trainer
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


def dataset(n: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x.sum(dim=1, keepdim=True))


def trainer(tmp_path: Path, **flags: Any) -> Trainer:
    return Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        **flags,
    )


class ManualPlateau(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.layer = nn.Linear(4, 1)
        self.lrs: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        opt = self.optimizers()
        x, y = batch
        loss = F.mse_loss(self.layer(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.log("train_loss", loss)
        return loss

    def on_train_epoch_end(self) -> None:
        sch = self.lr_schedulers()
        # a metric that never improves: the plateau halves the lr after each epoch
        sch.step(torch.tensor(1.0))
        self.lrs.append(self.optimizers().param_groups[0]["lr"])

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return [opt], [torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)]


def test_reduce_lr_on_plateau_without_monitor_in_manual_optimization(tmp_path: Path) -> None:
    model = ManualPlateau()
    trainer(tmp_path, max_epochs=3).fit(model, DataLoader(dataset(), batch_size=8))
    assert model.lrs == pytest.approx([0.1, 0.05, 0.025])


def test_automatic_optimization_still_needs_the_monitor(tmp_path: Path) -> None:
    class Automatic(ManualPlateau):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = True

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return F.mse_loss(self.layer(x), y)

        def on_train_epoch_end(self) -> None:
            pass

    with pytest.raises(MisconfigurationError, match="without a metric to monitor"):
        trainer(tmp_path, max_epochs=1).fit(Automatic(), DataLoader(dataset(), batch_size=8))


class NoBatchIdx(EmberModule):
    """Every step written without ``batch_idx``, as Lightning allows."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def training_step(self, batch):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def test_step(self, batch):
        x, y = batch
        self.log("test_loss", F.mse_loss(self(x), y))

    def predict_step(self, batch):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def test_steps_without_batch_idx(tmp_path: Path) -> None:
    model = NoBatchIdx()
    t = trainer(tmp_path, max_epochs=2)
    loader = DataLoader(dataset(), batch_size=8)
    t.fit(model, loader, loader)
    assert {"train_loss", "val_loss"} <= set(t.callback_metrics)
    assert "test_loss" in t.test(model, loader, verbose=False)[0]
    predictions = t.predict(model, loader)
    assert torch.allclose(torch.cat(predictions), model(dataset().tensors[0]).detach())
