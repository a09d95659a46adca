"""ModelSummary's numbers match a hand count, and the table is printed when fit starts."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ember.trainer import EmberModule
from ember.trainer.callbacks import ModelSummary
from ember.trainer.callbacks.model_summary import human_count, summarize
from torch import nn


class Net(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))  # 40 + 72
        self.embedding = nn.Embedding(10, 3)  # 30, frozen below
        self.embedding.weight.requires_grad_(False)
        self.head = nn.Linear(8, 1)  # 9
        self.tied = nn.Linear(8, 1)
        self.tied.weight = self.head.weight  # shared: only its bias (1) is new
        self.scale = nn.Parameter(torch.ones(2, dtype=torch.float64))  # 2, held by the root

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.head(self.encoder(x)), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_numbers_match_a_hand_count() -> None:
    summary = summarize(Net())
    rows = {layer.name: (layer.type, layer.params, layer.trainable) for layer in summary.layers}
    assert rows == {
        "encoder": ("Sequential", 40 + 72, 40 + 72),
        "embedding": ("Embedding", 30, 0),
        "head": ("Linear", 9, 9),
        "tied": ("Linear", 9, 9),
    }
    total = 40 + 72 + 30 + 9 + 1 + 2
    assert summary.total_params == total
    assert summary.trainable_params == total - 30
    assert summary.non_trainable_params == 30
    assert summary.size_bytes == (total - 2) * 4 + 2 * 8  # float32, and the float64 scale
    assert summary.size_mb == pytest.approx(summary.size_bytes / 1e6)


def test_depth() -> None:
    names = [layer.name for layer in summarize(Net(), max_depth=-1).layers]
    assert names == ["encoder", "encoder.0", "encoder.1", "encoder.2", "embedding", "head", "tied"]
    assert summarize(Net(), max_depth=0).layers == ()
    with pytest.raises(ValueError, match="-1"):
        ModelSummary(max_depth=-2)


def test_uninitialized_lazy_parameters_count_as_zero() -> None:
    summary = summarize(nn.Sequential(nn.LazyLinear(3), nn.Linear(3, 2)))
    assert [layer.params for layer in summary.layers] == [0, 8]
    assert summary.total_params == 8


def test_human_count() -> None:
    assert [human_count(n) for n in (0, 999, 1234, 2_500_000, 3 * 10**9, 10**12)] == [
        "0",
        "999",
        "1.2 K",
        "2.5 M",
        "3.0 B",
        "1.0 T",
    ]


def test_table_is_printed_when_fit_starts(
    make_trainer: Any, make_loader: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = make_trainer(max_epochs=1, callbacks=[ModelSummary(max_depth=2)])
    trainer.fit(Net(), make_loader(n=8))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split("|")[1:] == [" Name      ", " Type       ", " Params ", " Trainable"]
    assert any(line.startswith("1 | encoder.0 | Linear") and "| 40" in line for line in lines)
    totals = [line.split(maxsplit=1) for line in lines[-4:]]
    assert totals == [
        ["124", "Trainable params"],
        ["30", "Non-trainable params"],
        ["154", "Total params"],
        ["0.001", "Total estimated model params size (MB)"],
    ]


def test_max_depth_zero_prints_nothing(
    make_trainer: Any, make_loader: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    make_trainer(max_epochs=1, callbacks=[ModelSummary(max_depth=0)]).fit(Net(), make_loader(n=8))
    assert "Total params" not in capsys.readouterr().out
