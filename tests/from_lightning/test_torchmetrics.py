"""Logging TorchMetrics ``Metric`` objects with ``self.log``, as Lightning users do:
computed at the epoch's end and reset, checked against the real ``torchmetrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torchmetrics
from ember.trainer import EmberModule, MisconfigurationError, Trainer
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


def data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return TensorDataset(x, y)


class LitClassifier(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        self.train_acc = MulticlassAccuracy(num_classes=3)
        self.val_acc = MulticlassAccuracy(num_classes=3)
        self.val_f1 = MulticlassF1Score(num_classes=3, average="macro")
        self.step_values: list[float] = []
        self.val_epochs: list[tuple[float, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        self.train_acc(logits, y)  # forward: updates the state and returns the batch value
        self.step_values.append(float(self.train_acc._forward_cache))
        self.log("train_acc", self.train_acc, on_step=True, on_epoch=True)
        return F.cross_entropy(logits, y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        preds = self(x)
        self.val_acc.update(preds, y)
        self.val_f1.update(preds, y)
        self.log("val_acc", self.val_acc)
        self.log("val_f1", self.val_f1, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_epochs.append((float(self.val_acc.compute()), float(self.val_f1.compute())))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


def trainer(tmp_path: Path, **flags: Any) -> Trainer:
    return Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        log_every_n_steps=1,
        **flags,
    )


def reference_accuracy(model: LitClassifier, dataset: TensorDataset) -> tuple[float, float]:
    """What torchmetrics computes over the whole set in one go."""
    x, y = dataset.tensors
    with torch.no_grad():
        preds = model(x)
    acc = torchmetrics.functional.accuracy(
        preds, y, task="multiclass", num_classes=3, average="macro"
    )
    f1 = torchmetrics.functional.f1_score(
        preds, y, task="multiclass", num_classes=3, average="macro"
    )
    return float(acc), float(f1)


def test_metric_objects_are_computed_at_epoch_end_and_reset(tmp_path: Path) -> None:
    model = LitClassifier()
    train, val = data(64, 0), data(40, 1)
    t = trainer(tmp_path, max_epochs=2, num_sanity_val_steps=2)
    t.fit(model, DataLoader(train, batch_size=16), DataLoader(val, batch_size=16))
    acc, f1 = reference_accuracy(model, val)
    # the last validation covered only the real validation set (sanity batches were reset)
    assert model.val_epochs[-1] == pytest.approx((acc, f1))
    assert float(t.callback_metrics["val_acc"]) == pytest.approx(acc)
    assert float(t.callback_metrics["val_f1"]) == pytest.approx(f1)
    assert t.progress_bar_metrics["val_f1"] == pytest.approx(f1)
    # step values are the per-batch forward results; the epoch value compute() over 4 batches
    assert t.logged_metrics["train_acc_step"] == pytest.approx(model.step_values[-1])
    assert float(t.callback_metrics["train_acc_epoch"]) != pytest.approx(model.step_values[-1])
    # and the metrics were reset after each epoch: nothing accumulated is left over
    assert model.val_acc.update_count == 0 and model.train_acc.update_count == 0


def test_validate_returns_the_computed_metric(tmp_path: Path) -> None:
    model = LitClassifier()
    val = data(40, 1)
    results = trainer(tmp_path).validate(model, DataLoader(val, batch_size=8), verbose=False)
    acc, f1 = reference_accuracy(model, val)
    assert results[0]["val_acc"] == pytest.approx(acc)
    assert results[0]["val_f1"] == pytest.approx(f1)


def test_a_metric_that_is_not_a_scalar_is_a_clear_error(tmp_path: Path) -> None:
    class PerClass(LitClassifier):
        def __init__(self) -> None:
            super().__init__()
            self.per_class = MulticlassAccuracy(num_classes=3, average=None)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.per_class.update(self(x), y)
            self.log("per_class", self.per_class)

        def on_validation_epoch_end(self) -> None:
            pass

    with pytest.raises(MisconfigurationError, match=r"returned \(3,\), not one number"):
        trainer(tmp_path).validate(PerClass(), DataLoader(data(8, 1), batch_size=4))


def test_log_dict_of_a_metric_collection(tmp_path: Path) -> None:
    class WithCollection(LitClassifier):
        def __init__(self) -> None:
            super().__init__()
            self.val_metrics = torchmetrics.MetricCollection(
                {"acc": MulticlassAccuracy(num_classes=3), "f1": MulticlassF1Score(num_classes=3)},
                prefix="val_",
            )

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.val_metrics.update(self(x), y)
            self.log_dict(self.val_metrics)

        def on_validation_epoch_end(self) -> None:
            pass

    model = WithCollection()
    val = data(40, 1)
    results = trainer(tmp_path).validate(model, DataLoader(val, batch_size=8), verbose=False)
    acc, f1 = reference_accuracy(model, val)
    assert results[0] == pytest.approx({"val_acc": acc, "val_f1": f1})
