"""``lightning.pytorch.utilities`` as Lightning users call it: rank-zero helpers, the
model summary object and ``seed_everything``, imported from ``ember.trainer.utilities``."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from ember.trainer import EmberModule, Trainer, seed_everything
from ember.trainer.utilities import (
    ModelSummary,
    rank_zero_info,
    rank_zero_only,
    rank_zero_warn,
    reset_seed,
    worker_init_function,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset


# ---------------------------------------------------------------------- rank zero
def test_rank_zero_only_runs_on_rank_zero_and_returns_the_default_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @rank_zero_only
    def save_artifacts(name: str) -> str:
        calls.append(name)
        return name

    assert save_artifacts("a") == "a"
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert save_artifacts("b") is None
    assert rank_zero_only(lambda: 1, default=7)() == 7
    assert calls == ["a"]


def test_rank_zero_only_rank_comes_from_the_launcher_environment() -> None:
    code = "from ember.trainer.utilities import rank_zero_only; print(rank_zero_only.rank)"
    env = {**os.environ, "RANK": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "3", out.stderr


def test_rank_zero_messages(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ember.trainer"):
        rank_zero_info("dataset has %d rows", 10)
    assert "dataset has 10 rows" in caplog.text
    with pytest.warns(UserWarning, match="lr is high"):
        rank_zero_warn("lr is high")
    monkeypatch.setattr(rank_zero_only, "rank", 2)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ember.trainer"):
        rank_zero_info("not from rank 2")
    assert caplog.text == ""


# ---------------------------------------------------------------------- model summary
class Encoder(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 3))
        self.decoder = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 28 * 28))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def test_model_summary_object_with_max_depth() -> None:
    model = Encoder()
    summary = ModelSummary(model, max_depth=1)
    assert summary.layer_names == ["encoder", "decoder"]
    assert summary.layer_types == ["Sequential", "Sequential"]
    assert summary.total_parameters == sum(p.numel() for p in model.parameters())
    assert summary.trainable_parameters == summary.total_parameters
    assert summary.model_size == pytest.approx(summary.total_parameters * 4 / 1e6)
    deep = ModelSummary(model, max_depth=-1)
    assert "encoder.0" in deep.layer_names and "decoder.2" in deep.layer_names
    text = str(deep)
    assert "encoder.0" in text and "Total params" in text
    assert "In sizes" not in text
    with pytest.raises(ValueError, match="max_depth"):
        ModelSummary(model, max_depth=-2)


def test_example_input_array_adds_input_and_output_sizes() -> None:
    model = Encoder()
    model.example_input_array = torch.zeros(10, 28 * 28)
    model.train()
    summary = ModelSummary(model, max_depth=1)
    assert summary.in_sizes == [[10, 784], [10, 3]]
    assert summary.out_sizes == [[10, 3], [10, 784]]
    assert "In sizes" in str(summary) and "[10, 784]" in str(summary)
    assert model.training and all(m.training for m in model.modules())  # mode restored


def test_the_summary_callback_prints_sizes_at_fit_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Model(EmberModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(4, 2)
            self.example_input_array = torch.zeros(5, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

        def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            return self(batch).sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Model(), DataLoader(torch.randn(8, 4), batch_size=4))
    out = capsys.readouterr().out
    assert "In sizes" in out and "[5, 4]" in out and "[5, 2]" in out


# ---------------------------------------------------------------------- seeding
def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_seeds_random_numpy_and_torch() -> None:
    assert seed_everything(42) == 42
    first = draws()
    seed_everything(42)
    assert draws() == first
    seed_everything(43)
    assert draws() != first
    assert os.environ["EMBER_GLOBAL_SEED"] == "43"


def test_seed_everything_without_a_seed_reads_the_environment() -> None:
    seed_everything(7)
    expected = draws()
    seed_everything()  # as a spawned process does
    assert draws() == expected
    os.environ["EMBER_GLOBAL_SEED"] = "7"
    reset_seed()
    assert draws() == expected
    del os.environ["EMBER_GLOBAL_SEED"]
    with pytest.warns(UserWarning, match="seed set to 0"):
        assert seed_everything() == 0


@pytest.mark.parametrize("bad", [-1, 2**32, "x"])
def test_seed_everything_rejects_seeds_numpy_cannot_take(bad: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)  # type: ignore[arg-type]


def test_a_spawned_process_agrees_on_the_seed(tmp_path: Path) -> None:
    seed_everything(1234)
    parent = torch.rand(3).tolist()
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch
            from ember.trainer import seed_everything
            print(seed_everything(), torch.rand(3).tolist())
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == f"1234 {parent}"


class Noise(Dataset):
    """Each item is a draw from each generator inside the worker that loads it."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        info = torch.utils.data.get_worker_info()
        worker = -1 if info is None else info.id
        return torch.tensor([worker, *draws()])


class Collect(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.append(batch.clone())
        return self.layer(batch[:, 1:2]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit_with_workers(tmp_path: Path, workers: bool) -> tuple[DataLoader, torch.Tensor]:
    seed_everything(5, workers=workers)
    loader = DataLoader(Noise(), batch_size=2, num_workers=2)
    model = Collect()
    trainer = Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, loader)
    return loader, torch.cat(model.seen)


def test_workers_true_seeds_loader_workers_reproducibly(tmp_path: Path) -> None:
    loader, first = fit_with_workers(tmp_path, workers=True)
    assert loader.worker_init_fn is not None
    _, again = fit_with_workers(tmp_path, workers=True)
    assert torch.equal(first, again)
    by_worker = {int(row[0]): row[1:] for row in first}
    assert set(by_worker) == {0, 1} and not torch.equal(by_worker[0], by_worker[1])
    plain_loader, _ = fit_with_workers(tmp_path, workers=False)
    assert plain_loader.worker_init_fn is None


def test_worker_seeds_differ_between_ranks() -> None:
    def seeded(rank: int) -> tuple[float, float, float]:
        torch.manual_seed(100)  # a worker's base seed: the same on every rank
        worker_init_function(0, rank=rank)
        return draws()

    assert seeded(0) == seeded(0)
    assert seeded(0) != seeded(1)
