"""The seed's code example, changed only in its imports (and with its ``...`` written
out), runs as written: a Lightning user's module trains under ember."""

from __future__ import annotations

import torch
from ember.trainer import Callback, EmberDataModule, EmberModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_datasets() -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    y = (x[:, :4].sum(dim=1) > 0).long()
    return TensorDataset(x[:192], y[:192]), TensorDataset(x[192:], y[192:])


class MyModel(EmberModule):
    def __init__(self, validation_dataset: TensorDataset) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
        self.loss_function = nn.CrossEntropyLoss()
        self.validation_dataset = validation_dataset

    def forward(self, inputs):
        return self.layers(inputs)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        loss = self.loss_function(self(inputs), targets)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        inputs, targets = batch
        loss = self.loss_function(self(inputs), targets)
        self.log("val_loss", loss)
        return loss

    def validation_epoch_end(self, validation_step_outputs):  # optional
        self.log("avg_val_loss", torch.stack(validation_step_outputs).mean())

    def val_dataloader(self):
        return DataLoader(self.validation_dataset, batch_size=32)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_the_seed_example_trains_and_validates(tmp_path) -> None:
    train_dataset, validation_dataset = make_datasets()
    torch.manual_seed(0)
    model = MyModel(validation_dataset)
    train_dataloader = DataLoader(train_dataset, batch_size=32, shuffle=True)
    val_dataloader = DataLoader(validation_dataset, batch_size=32)

    trainer = Trainer(max_epochs=3, default_root_dir=tmp_path, enable_progress_bar=False)
    trainer.fit(model, train_dataloader, val_dataloader)

    assert trainer.current_epoch == 3 and trainer.global_step == 18
    metrics = trainer.callback_metrics
    assert {"train_loss", "val_loss", "avg_val_loss"} <= set(metrics)
    assert metrics["avg_val_loss"] < 0.6  # it learned something
    assert issubclass(Callback, object) and issubclass(EmberDataModule, object)


def test_the_seed_example_with_its_own_val_dataloader(tmp_path) -> None:
    train_dataset, validation_dataset = make_datasets()
    model = MyModel(validation_dataset)
    trainer = Trainer(max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False)
    trainer.fit(model, DataLoader(train_dataset, batch_size=32))
    assert trainer.num_val_batches == [2]
    assert "avg_val_loss" in trainer.logged_metrics
