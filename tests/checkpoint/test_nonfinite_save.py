"""No checkpoint is written from a state whose loss was not finite (issue 13, item 1).

The non-finite check is batched at metric flushes (no host sync per step); every save
runs the pending check first, whatever triggers it: a step or time trigger that comes
before the flush, the end of an epoch, a preemption, ``trainer.save_checkpoint`` from a
user's hook, or ``OnExceptionCheckpoint``.
"""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from ckpt_helpers import Scripted, make_loader
from ember.trainer import Callback, Trainer
from ember.trainer.checkpoint import ModelCheckpoint, OnExceptionCheckpoint, load_checkpoint_safe
from ember.trainer.errors import NonFiniteLossError


class NaNAt(Scripted):
    """Returns a NaN loss at ``bad_step`` (0-based global step), finite ones otherwise."""

    def __init__(self, bad_step: int) -> None:
        super().__init__()
        self.bad_step = bad_step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        if self.trainer.global_step == self.bad_step:
            loss = loss * float("nan")
        return loss


def _trainer(root: Path, callbacks: list[Any], **flags: Any) -> Trainer:
    options: dict[str, Any] = dict(
        max_epochs=3,
        default_root_dir=str(root),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    options.update(flags)
    return Trainer(callbacks=callbacks, **options)


def _all_finite(path: Path) -> bool:
    state = load_checkpoint_safe(path)["state_dict"]
    return all(bool(torch.isfinite(t).all()) for t in state.values())


def _saved(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ckpt")) if folder.is_dir() else []


def test_step_trigger_before_the_flush_does_not_save_nan_weights(tmp_path: Path) -> None:
    """log_every_n_steps=5, a save every 5 steps, a NaN loss at step 3: the save at step 5
    comes before the flush that would have caught it; it must not write NaN weights."""
    folder = tmp_path / "ckpts"
    ckpt = ModelCheckpoint(dirpath=folder, every_n_train_steps=5, save_last=True)
    trainer = _trainer(tmp_path, [ckpt], log_every_n_steps=5)
    with pytest.raises(NonFiniteLossError, match="global step 2"):
        trainer.fit(NaNAt(bad_step=2), make_loader(n=64))
    assert _saved(folder) == []  # the first save (step 5) came after the NaN at step 3


def test_checkpoints_before_the_nan_stay_and_are_finite(tmp_path: Path) -> None:
    folder = tmp_path / "ckpts"
    ckpt = ModelCheckpoint(dirpath=folder, every_n_train_steps=2, save_last=True, save_top_k=-1)
    trainer = _trainer(tmp_path, [ckpt], log_every_n_steps=50)
    with pytest.raises(NonFiniteLossError):
        trainer.fit(NaNAt(bad_step=4), make_loader(n=64))
    saved = _saved(folder)
    assert [p.name for p in saved] == ["epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt", "last.ckpt"]
    assert all(_all_finite(p) for p in saved)
    assert load_checkpoint_safe(folder / "last.ckpt")["global_step"] == 4


def test_epoch_end_save_after_a_nan_in_the_epoch(tmp_path: Path) -> None:
    """The module's own on_train_epoch_end saves before the epoch's metrics are flushed."""

    class SavesAtEpochEnd(NaNAt):
        def on_train_epoch_end(self) -> None:
            self.trainer.save_checkpoint(tmp_path / "by-hand.ckpt")

    trainer = _trainer(tmp_path, [], log_every_n_steps=50, enable_checkpointing=False)
    with pytest.raises(NonFiniteLossError, match="no checkpoint"):
        trainer.fit(SavesAtEpochEnd(bad_step=1), make_loader())
    assert not (tmp_path / "by-hand.ckpt").exists()


def test_time_trigger_after_a_nan(tmp_path: Path) -> None:
    folder = tmp_path / "ckpts"
    ckpt = ModelCheckpoint(dirpath=folder, train_time_interval=0, save_last=True)
    trainer = _trainer(tmp_path, [ckpt], log_every_n_steps=50)
    with pytest.raises(NonFiniteLossError):
        trainer.fit(NaNAt(bad_step=1), make_loader())
    saved = _saved(folder)
    assert saved and all(_all_finite(p) for p in saved)
    assert load_checkpoint_safe(folder / "last.ckpt")["global_step"] == 1


def test_preemption_after_a_nan_fails_instead_of_saving(tmp_path: Path) -> None:
    """A SIGTERM after the NaN step: the run stops with the NaN error, not with status 75
    and a preempted.ckpt holding NaN weights."""

    class Preempts(Callback):
        def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
            if trainer.global_step == 3:
                signal.raise_signal(signal.SIGTERM)

    folder = tmp_path / "ckpts"
    ckpt = ModelCheckpoint(dirpath=folder, save_last=True)
    trainer = _trainer(tmp_path, [Preempts(), ckpt], log_every_n_steps=50)
    with pytest.raises(NonFiniteLossError):
        trainer.fit(NaNAt(bad_step=1), make_loader())
    assert not (folder / "preempted.ckpt").exists()


def test_on_exception_checkpoint_does_not_save_nan_weights(tmp_path: Path) -> None:
    on_exc = OnExceptionCheckpoint(dirpath=tmp_path / "exc")
    trainer = _trainer(tmp_path, [on_exc], log_every_n_steps=1, enable_checkpointing=False)
    with (
        pytest.raises(NonFiniteLossError),
        pytest.warns(UserWarning, match="not finite"),
    ):
        trainer.fit(NaNAt(bad_step=1), make_loader())
    assert not (tmp_path / "exc" / "on_exception.ckpt").exists()


def test_save_checkpoint_after_a_failed_fit_refuses(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, [], log_every_n_steps=50, enable_checkpointing=False)
    with pytest.raises(NonFiniteLossError):
        trainer.fit(NaNAt(bad_step=1), make_loader())
    with pytest.raises(NonFiniteLossError, match="no checkpoint"):
        trainer.save_checkpoint(tmp_path / "after.ckpt")
    assert not (tmp_path / "after.ckpt").exists()


def test_finite_runs_pay_one_check_per_save_only(tmp_path: Path) -> None:
    """A healthy run saves normally; the checks at saves leave the metrics as they were."""
    folder = tmp_path / "ckpts"
    ckpt = ModelCheckpoint(dirpath=folder, every_n_train_steps=3, save_last=True, save_top_k=-1)
    trainer = _trainer(tmp_path, [ckpt], log_every_n_steps=5)
    trainer.fit(Scripted(), make_loader())
    assert len(_saved(folder)) == 5  # steps 3, 6, 9, 12 and last.ckpt
    assert all(_all_finite(p) for p in _saved(folder))
    assert math.isfinite(float(trainer.callback_metrics.get("epoch", 0)))


class ManualNaNAt(NaNAt):
    """Manual optimization: the loss goes to manual_backward, not back to the trainer."""

    def __init__(self, bad_step: int) -> None:
        super().__init__(bad_step)
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(super().training_step(batch, batch_idx))
        optimizer.step()


def test_manual_optimization_losses_are_checked_too(tmp_path: Path) -> None:
    folder = tmp_path / "ckpts"
    ckpt = ModelCheckpoint(dirpath=folder, every_n_train_steps=1, save_last=True, save_top_k=-1)
    trainer = _trainer(tmp_path, [ckpt], log_every_n_steps=50)
    with pytest.raises(NonFiniteLossError, match="manual_backward was given a loss of nan"):
        trainer.fit(ManualNaNAt(bad_step=2), make_loader())
    saved = _saved(folder)
    assert len(saved) == 3  # steps 1 and 2, and last.ckpt: nothing from step 3 on
    assert all(_all_finite(p) for p in saved)
