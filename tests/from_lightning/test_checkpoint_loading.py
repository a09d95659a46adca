"""Loading checkpoints as Lightning code does: ``strict_loading`` on the module,
``load_from_checkpoint(strict=False)``, and catching a mismatch as a ``RuntimeError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import EmberModule, Trainer
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)


class Classifier(EmberModule):
    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Linear(4, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.body(x)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class WithHead(Classifier):
    def __init__(self, hidden: int = 8) -> None:
        super().__init__(hidden)
        self.extra_head = nn.Linear(hidden, 2)  # not in checkpoints of the plain model


class WithFrozenHead(WithHead):
    """A pretrained head loaded elsewhere, frozen: checkpoints need not hold it."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__(hidden)
        self.extra_head.requires_grad_(False)
        self.strict_loading = False

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.1)


def trainer(tmp_path: Path, **flags: Any) -> Trainer:
    return Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **flags,
    )


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    t = trainer(tmp_path / "first", max_epochs=1, enable_checkpointing=False)
    t.fit(Classifier(), loader())
    path = tmp_path / "plain.ckpt"
    t.save_checkpoint(path)
    return path


def test_load_from_checkpoint_strict_false_loads_what_matches(checkpoint: Path) -> None:
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    with pytest.raises(RuntimeError, match="extra_head"):
        WithHead.load_from_checkpoint(checkpoint)
    with pytest.warns(UserWarning, match="extra_head.weight"):
        model = WithHead.load_from_checkpoint(checkpoint, strict=False)
    assert torch.equal(model.body.weight, saved["body.weight"])


def test_strict_loading_on_the_module_is_the_default(checkpoint: Path) -> None:
    with pytest.warns(UserWarning, match="extra_head"):
        model = WithFrozenHead.load_from_checkpoint(checkpoint)
    assert not model.strict_loading
    with pytest.raises(Exception, match="contradicts"):
        WithFrozenHead.load_from_checkpoint(checkpoint, strict=True)


def test_a_shape_mismatch_is_caught_as_runtime_error(checkpoint: Path) -> None:
    try:
        Classifier.load_from_checkpoint(checkpoint, hidden=16)
    except RuntimeError as err:  # what Lightning code catches
        assert "shape mismatch" in str(err)
        assert "body.weight: checkpoint [8, 4], model [16, 4]" in str(err)
    else:
        pytest.fail("a shape mismatch loaded")


def test_strict_loading_is_honoured_when_resuming_and_testing(
    tmp_path: Path, checkpoint: Path
) -> None:
    t = trainer(tmp_path / "resume", max_epochs=2, enable_checkpointing=False)
    model = WithFrozenHead()
    head = model.extra_head.weight.detach().clone()
    with pytest.warns(UserWarning, match="extra_head.weight, extra_head.bias"):
        t.fit(model, loader(), ckpt_path=checkpoint)
    assert t.current_epoch == 2
    assert torch.equal(model.extra_head.weight, head)  # not in the checkpoint, not trained
    t2 = trainer(tmp_path / "val", enable_checkpointing=False)
    with pytest.warns(UserWarning, match="extra_head"):
        metrics = t2.validate(WithFrozenHead(), loader(), ckpt_path=checkpoint, verbose=False)
    assert "val_loss" in metrics[0]
    with pytest.raises(RuntimeError, match="extra_head"):
        t2.validate(WithHead(), loader(), ckpt_path=checkpoint, verbose=False)


def test_test_ckpt_path_last_tests_the_weights_fit_ended_with(tmp_path: Path) -> None:
    """Lightning's default checkpointer writes no last.ckpt, so test(ckpt_path="last")
    after fit tests the weights in memory. ember's keeps last.ckpt and rewrites it when
    training ends, so the same call tests the same weights, even when training stopped
    between two save points."""
    # 4 batches, validation (a save point) after batches 2 and 4; training stops at 3
    t = trainer(tmp_path, max_epochs=1, max_steps=3, val_check_interval=0.5)
    model = Classifier()
    t.fit(model, DataLoader(loader().dataset, batch_size=4), loader())
    last = Path(t.log_dir) / "checkpoints" / "last.ckpt"  # the run's folder
    saved = torch.load(last, weights_only=True)
    assert (saved["global_step"], t.global_step) == (3, 3)
    in_memory = t.validate(model, loader(), verbose=False)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    from_last = t.validate(model, loader(), ckpt_path="last", verbose=False)
    assert t.ckpt_path == str(last)
    assert from_last == in_memory
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
