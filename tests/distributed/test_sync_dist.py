"""``self.log(..., sync_dist=True)`` reaches the strategy's ``reduce`` at flush points
only, all synced values of a flush in one call per reduction op."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from ember.trainer import EmberModule, Trainer
from ember.trainer.strategies import SingleDeviceStrategy
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset


class RecordingStrategy(SingleDeviceStrategy):
    """One process; remembers every ``reduce`` it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, str]] = []

    def reduce(self, tensor: Tensor, reduce_op: str = "mean") -> Tensor:
        self.calls.append((tensor.numel(), reduce_op))
        return tensor


class FourMetrics(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("a", loss, sync_dist=True)
        self.log("b", loss * 2, sync_dist=True)
        self.log("c", loss * 3, sync_dist=True, on_epoch=True)
        self.log("peak", loss, sync_dist=True, reduce_fx="max")
        self.log("local", loss)  # not synced: never reduced
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_synced_metrics_reduce_in_one_call_per_op_per_flush(tmp_path: Path) -> None:
    strategy = RecordingStrategy()
    trainer = Trainer(
        strategy=strategy,
        accelerator="cpu",
        max_epochs=1,
        log_every_n_steps=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    data = DataLoader(TensorDataset(torch.randn(64, 3)), batch_size=4)  # 16 steps
    trainer.fit(FourMetrics(), data)
    step_calls = [c for c in strategy.calls if c[0] == 3]
    assert strategy.calls, "sync_dist values were never reduced"
    assert len(strategy.calls) < 16  # not once per step, let alone once per self.log
    assert len(step_calls) >= 16 // 4  # each step flush: a, b, c in one call
    assert set(strategy.calls) <= {(3, "mean"), (1, "max"), (1, "mean")}
    assert {op for _, op in strategy.calls} == {"mean", "max"}
    assert trainer.callback_metrics["b"] == 2 * trainer.callback_metrics["a"]
