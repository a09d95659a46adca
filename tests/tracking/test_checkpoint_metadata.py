"""Checkpoint artifacts say which one is the best so far, so that loggers can upload or
alias only that one (``log_checkpoints="best"`` in the tracker plugins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from ember.hub.tracking import JournalReader
from ember.trainer import EmberModule, Trainer
from ember.trainer.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

#: the monitored score at the end of each epoch: better, worse, best
SCORES = [0.5, 0.9, 0.3]


class Scored(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(2, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.net(batch[0]).pow(2).mean()

    def on_train_epoch_end(self) -> None:
        self.log("score", SCORES[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_best_checkpoint_is_marked_in_the_artifact_metadata(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="score", save_top_k=2)
    trainer = Trainer(
        max_epochs=3,
        default_root_dir=tmp_path,
        callbacks=[checkpoint],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data = TensorDataset(torch.randn(8, 2))
    trainer.fit(Scored(), DataLoader(data, batch_size=4))
    with JournalReader(trainer.log_dir) as reader:
        metadata = [r.data["metadata"] for r in reader.records("artifact")]
    assert [m.get("best", False) for m in metadata] == [True, False, True]
    assert metadata[2]["monitor"] == "score"
    assert abs(metadata[2]["score"] - 0.3) < 1e-6
    assert [m["epoch"] for m in metadata] == [0, 1, 2]
