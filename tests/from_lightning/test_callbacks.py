"""Lightning's everyday callbacks as Lightning users write them: a gradient accumulation
schedule, a prediction writer, and reading why EarlyStopping stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import EmberModule, MisconfigurationError, Trainer
from ember.trainer.callbacks import (
    BasePredictionWriter,
    EarlyStopping,
    EarlyStoppingReason,
    GradientAccumulationScheduler,
)
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


def dataset(n: int = 48) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x.sum(dim=1, keepdim=True))


class LitRegressor(EmberModule):
    def __init__(self, val_losses: list[float] | None = None) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.val_losses = val_losses
        self.steps_per_epoch: dict[int, int] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def on_train_epoch_end(self) -> None:
        self.steps_per_epoch[self.current_epoch] = self.global_step

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        loss = F.mse_loss(self(x), y)
        if self.val_losses is not None:
            loss = torch.tensor(self.val_losses[self.current_epoch])
        self.log("val_loss", loss)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def trainer(tmp_path: Path, **flags: Any) -> Trainer:
    flags.setdefault("logger", False)
    return Trainer(
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        **flags,
    )


# ---------------------------------------------------------------------- accumulation
def test_gradient_accumulation_scheduler_changes_the_accumulation_by_epoch(
    tmp_path: Path,
) -> None:
    # 12 batches per epoch: epoch 0 steps every batch, epochs 1-2 every 4, then every 3
    accumulator = GradientAccumulationScheduler(scheduling={1: 4, 3: 3})
    model = LitRegressor()
    t = trainer(tmp_path, max_epochs=4, callbacks=[accumulator])
    t.fit(model, DataLoader(dataset(), batch_size=4))
    assert model.steps_per_epoch == {0: 12, 1: 15, 2: 18, 3: 22}
    assert t.accumulate_grad_batches == 3
    assert accumulator.get_accumulate_grad_batches(0) == 1
    assert accumulator.going_to_accumulate_grad_batches()


def test_gradient_accumulation_scheduler_rejects_what_lightning_rejects(
    tmp_path: Path,
) -> None:
    with pytest.raises(MisconfigurationError, match="int >= 1"):
        GradientAccumulationScheduler(scheduling={0: 0})
    with pytest.raises(MisconfigurationError, match="int >= 0"):
        GradientAccumulationScheduler(scheduling={-1: 2})
    assert GradientAccumulationScheduler(scheduling={"2": 4}).scheduling == {0: 1, 2: 4}
    by_name = trainer(
        tmp_path,
        callbacks=[{"name": "gradient_accumulation_scheduler", "scheduling": {"0": 3}}],
    )
    assert [c.scheduling for c in by_name.callbacks if hasattr(c, "scheduling")] == [{0: 3}]
    t = trainer(
        tmp_path,
        max_epochs=1,
        accumulate_grad_batches=2,
        callbacks=[GradientAccumulationScheduler(scheduling={0: 4})],
    )
    with pytest.raises(MisconfigurationError, match="remove accumulate_grad_batches"):
        t.fit(LitRegressor(), DataLoader(dataset(), batch_size=4))


# ---------------------------------------------------------------------- prediction writer
class CustomWriter(BasePredictionWriter):
    def __init__(self, output_dir: Path, write_interval: str) -> None:
        super().__init__(write_interval)
        self.output_dir = output_dir

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        torch.save(
            {"prediction": prediction, "indices": batch_indices},
            self.output_dir / f"{dataloader_idx}_{batch_idx}.pt",
        )

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        torch.save(
            {"predictions": predictions, "indices": batch_indices},
            self.output_dir / "predictions.pt",
        )


def test_prediction_writer_writes_each_batch_and_the_epoch(tmp_path: Path) -> None:
    model = LitRegressor()
    writer = CustomWriter(tmp_path, write_interval="batch_and_epoch")
    t = trainer(tmp_path, callbacks=[writer])
    loader = DataLoader(dataset(10), batch_size=4)
    returned = t.predict(model, loader, return_predictions=False)
    assert returned is None
    batches = [torch.load(tmp_path / f"0_{i}.pt") for i in range(3)]
    assert [b["indices"] for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    epoch = torch.load(tmp_path / "predictions.pt")
    assert epoch["indices"] == [[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]]
    expected = model(dataset(10).tensors[0]).detach()
    assert torch.allclose(torch.cat(epoch["predictions"]), expected)
    assert torch.allclose(torch.cat([b["prediction"] for b in batches]), expected)


def test_prediction_writer_on_epoch_only_with_two_loaders(tmp_path: Path) -> None:
    writer = CustomWriter(tmp_path, write_interval="epoch")
    t = trainer(tmp_path, callbacks=[writer])
    loaders = [DataLoader(dataset(6), batch_size=4), DataLoader(dataset(3), batch_size=2)]
    t.predict(LitRegressor(), loaders)
    assert not list(tmp_path.glob("0_*.pt"))
    epoch = torch.load(tmp_path / "predictions.pt")
    assert [len(p) for p in epoch["predictions"]] == [2, 2]
    assert epoch["indices"] == [[[0, 1, 2, 3], [4, 5]], [[0, 1], [2]]]


def test_prediction_writer_on_a_shuffled_loader_gives_no_indices(tmp_path: Path) -> None:
    writer = CustomWriter(tmp_path, write_interval="batch")
    t = trainer(tmp_path, callbacks=[writer])
    t.predict(LitRegressor(), DataLoader(dataset(4), batch_size=2, shuffle=True))
    assert torch.load(tmp_path / "0_0.pt")["indices"] == []


def test_prediction_writer_interval_is_checked() -> None:
    with pytest.raises(MisconfigurationError, match="'batch', 'epoch', 'batch_and_epoch'"):
        CustomWriter(Path("."), write_interval="step")


# ---------------------------------------------------------------------- early stopping
def test_early_stopping_reason_and_one_line_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    early_stopping = EarlyStopping("val_loss", patience=2)
    assert early_stopping.stopping_reason == EarlyStoppingReason.NOT_STOPPED
    model = LitRegressor(val_losses=[1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    t = trainer(tmp_path, max_epochs=6, callbacks=[early_stopping])
    t.fit(model, DataLoader(dataset(), batch_size=8), DataLoader(dataset(8), batch_size=8))
    assert t.current_epoch == 4
    assert early_stopping.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert early_stopping.stopped_epoch == 3
    assert "did not improve in the last 2 records" in early_stopping.stopping_reason_message
    lines = [line for line in capsys.readouterr().out.splitlines() if "EarlyStopping" in line]
    assert lines == [
        "EarlyStopping stopped training at epoch 3: " + early_stopping.stopping_reason_message
    ]


@pytest.mark.parametrize(
    ("values", "flags", "reason"),
    [
        ([1.0, float("nan")], {}, EarlyStoppingReason.NON_FINITE_METRIC),
        ([1.0, 0.05], {"stopping_threshold": 0.1}, EarlyStoppingReason.STOPPING_THRESHOLD),
        ([1.0, 20.0], {"divergence_threshold": 10.0}, EarlyStoppingReason.DIVERGENCE_THRESHOLD),
    ],
)
def test_early_stopping_reason_of_each_kind(
    tmp_path: Path, values: list[float], flags: dict[str, Any], reason: EarlyStoppingReason
) -> None:
    early_stopping = EarlyStopping("val_loss", patience=10, **flags)
    t = trainer(tmp_path, max_epochs=len(values) + 2, callbacks=[early_stopping])
    model = LitRegressor(val_losses=[*values, 0.0, 0.0])
    t.fit(model, DataLoader(dataset(), batch_size=8), DataLoader(dataset(8), batch_size=8))
    assert early_stopping.stopping_reason == reason
    assert t.current_epoch == len(values)
    state = early_stopping.state_dict()
    restored = EarlyStopping("val_loss")
    restored.load_state_dict(state)
    assert restored.stopping_reason == reason
