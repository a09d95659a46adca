"""The Trainer surface Lightning users read and set: attributes, a time-based
``val_check_interval``, ``should_stop`` from a callback, and what ``callback_metrics``
holds after each entry point."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import Callback, EmberModule, MisconfigurationError, Trainer
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, IterableDataset, TensorDataset


def dataset(n: int = 40) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x.sum(dim=1, keepdim=True))


class LitModel(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.validations = 0
        self.plateau_inputs: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.mse_loss(self.layer(x), y))

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.validations += 1
            # Lightning's documented pattern for a plateau scheduler in manual optimization
            self.plateau_inputs.append(float(self.trainer.callback_metrics["val_loss"]))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", F.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def trainer(tmp_path: Path, **flags: Any) -> Trainer:
    flags.setdefault("logger", False)
    return Trainer(
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        **flags,
    )


class Recorder(Callback):
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rows.append(("start", batch_idx, trainer.is_last_batch))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append(("end", batch_idx, trainer.is_last_batch))

    def on_validation_start(self, trainer, pl_module):
        self.rows.append(("val", trainer.sanity_checking, trainer.evaluating))


def test_trainer_attributes_during_and_after_fit(tmp_path: Path) -> None:
    recorder = Recorder()
    t = trainer(tmp_path, max_epochs=2, callbacks=[recorder], limit_val_batches=2)
    model = LitModel()
    t.fit(model, DataLoader(dataset(), batch_size=16), DataLoader(dataset(), batch_size=8))
    last = [(kind, i) for kind, i, is_last in recorder.rows if kind != "val" and is_last]
    assert last == [("start", 2), ("end", 2)] * 2
    validations = [row for row in recorder.rows if row[0] == "val"]
    assert validations == [("val", True, True), ("val", False, True), ("val", False, True)]
    assert t.num_training_batches == 3
    assert t.num_val_batches == [2]
    assert t.num_sanity_val_batches == [2]
    assert t.estimated_stepping_batches == 6
    assert t.lightning_module is model and t.model is model
    assert t.log_dir == str(tmp_path)
    assert t.precision == "32-true"
    assert (t.num_nodes, t.node_rank, t.world_size, t.global_rank) == (1, 0, 1, 0)
    assert t.enable_validation and not t.interrupted and not t.received_sigterm
    assert not t.evaluating and not t.sanity_checking


def test_is_last_batch_on_a_loader_without_length(tmp_path: Path) -> None:
    class Stream(IterableDataset):
        def __iter__(self):
            yield from dataset(12)

    recorder = Recorder()
    t = trainer(tmp_path, max_epochs=1, callbacks=[recorder])
    t.fit(LitModel(), DataLoader(Stream(), batch_size=4))
    assert [(i, last) for kind, i, last in recorder.rows if kind == "end"] == [
        (0, False),
        (1, False),
        (2, True),
    ]


def test_should_stop_set_by_a_callback_ends_training(tmp_path: Path) -> None:
    class StopAtStep(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 4:
                trainer.should_stop = True

    t = trainer(tmp_path, max_epochs=5, callbacks=[StopAtStep()])
    t.fit(LitModel(), DataLoader(dataset(), batch_size=8))
    assert t.global_step == 4 and t.current_epoch == 1


def test_callback_metrics_hold_the_epoch_values_in_epoch_end_hooks(tmp_path: Path) -> None:
    model = LitModel()
    t = trainer(tmp_path, max_epochs=3)
    t.fit(model, DataLoader(dataset(), batch_size=8), DataLoader(dataset(16), batch_size=8))
    # what the module read in on_validation_epoch_end is each epoch's own validation loss
    assert len(model.plateau_inputs) == 3
    assert model.plateau_inputs[-1] == pytest.approx(float(t.callback_metrics["val_loss"]))
    assert model.plateau_inputs[0] != pytest.approx(model.plateau_inputs[-1])


def test_callback_metrics_after_test_are_the_test_stage_s(tmp_path: Path) -> None:
    t = trainer(tmp_path, max_epochs=1)
    model = LitModel()
    t.fit(model, DataLoader(dataset(), batch_size=8), DataLoader(dataset(16), batch_size=8))
    assert {"train_loss", "val_loss"} <= set(t.callback_metrics)
    t.test(model, DataLoader(dataset(16), batch_size=8), verbose=False)
    assert set(t.callback_metrics) == {"test_loss"}
    assert "test_loss" in t.logged_metrics
    assert not {"train_loss", "val_loss"} & set(t.logged_metrics)
    t.validate(model, DataLoader(dataset(16), batch_size=8), verbose=False)
    assert set(t.callback_metrics) == {"val_loss"}


# ---------------------------------------------------------------------- time-based validation
@pytest.mark.parametrize("interval", [timedelta(0), {"seconds": 0}, "00:00:00:00"])
def test_a_zero_duration_validates_after_every_batch(tmp_path: Path, interval: Any) -> None:
    model = LitModel()
    t = trainer(tmp_path, max_epochs=2, val_check_interval=interval, num_sanity_val_steps=0)
    t.fit(model, DataLoader(dataset(), batch_size=8), DataLoader(dataset(16), batch_size=8))
    assert model.validations == 10  # 5 batches x 2 epochs, none added at the epoch ends
    assert t.val_check_interval == timedelta(0)


def test_a_long_duration_never_validates_in_a_short_fit(tmp_path: Path) -> None:
    model = LitModel()
    t = trainer(
        tmp_path,
        max_epochs=2,
        val_check_interval=timedelta(hours=1),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
    )
    t.fit(model, DataLoader(dataset(), batch_size=8), DataLoader(dataset(16), batch_size=8))
    assert model.validations == 0


def test_a_bad_duration_is_a_clear_error() -> None:
    with pytest.raises(MisconfigurationError, match=r"val_check_interval=.*DD:HH:MM:SS"):
        Trainer(val_check_interval="half an hour", logger=False)
