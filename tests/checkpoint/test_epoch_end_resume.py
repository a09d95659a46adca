"""Resuming from a checkpoint saved at an epoch's end (issue 13, item 2).

A checkpoint saved by an epoch's end hooks (ModelCheckpoint's default save point) resumes
at the start of the next epoch: that epoch's end hooks do not run again, the callbacks'
states (EarlyStopping's best score and wait count, ModelCheckpoint's best) continue, and
what the monitors saw is restored for what still runs (the per-epoch schedulers). A
checkpoint saved after validation resumes without validating again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ckpt_helpers import Scripted, make_loader
from ember.hub.tracking import JournalReader
from ember.trainer import Callback, Trainer
from ember.trainer.callbacks import EarlyStopping
from ember.trainer.checkpoint import ModelCheckpoint, load_checkpoint_safe


class Crash(Exception):
    """Stands for a kill right after the checkpoint."""


class CountEpochs(Callback):
    """A stateful callback: counts the training epochs that ended, across resumes."""

    def __init__(self) -> None:
        self.epochs = 0
        self.validations = 0

    def on_train_epoch_end(self, *args: Any) -> None:
        self.epochs += 1

    def on_validation_end(self, trainer: Trainer, *args: Any) -> None:
        if not trainer.sanity_checking:
            self.validations += 1

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "validations": self.validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = state["epochs"]
        self.validations = state["validations"]


class CrashAt(Callback):
    """Stands for a kill right after the checkpoint that ModelCheckpoint (which runs last)
    saves at the end of ``epoch`` (from ``on_train_epoch_end``, or from
    ``on_validation_end`` with ``hook="on_validation_end"``): raises at the next hook."""

    def __init__(self, epoch: int, hook: str = "on_train_epoch_end") -> None:
        self.epoch = epoch
        self.validation = hook == "on_validation_end"
        self.armed = False

    def on_save_checkpoint(self, trainer: Trainer, *args: Any) -> None:
        if trainer.current_epoch == self.epoch and trainer.validating == self.validation:
            self.armed = True

    def _crash_if_armed(self, *args: Any) -> None:
        if self.armed:
            raise Crash

    on_train_epoch_start = on_train_batch_start = on_train_epoch_end = _crash_if_armed


class Counted(Scripted):
    """Counts its own epoch ends and validation batches (a fresh count per process)."""

    def __init__(self, scores: list[float] | None = None) -> None:
        super().__init__(scores, metric="val_loss")
        self.epoch_ends = 0
        self.val_batches = 0

    def on_train_epoch_end(self) -> None:
        self.epoch_ends += 1

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.val_batches += 1
        super().validation_step(batch, batch_idx)


def _fit(
    root: Path,
    callbacks: list[Any],
    max_epochs: int,
    module: Scripted,
    ckpt_path: str | None = None,
    **flags: Any,
) -> Trainer:
    trainer = Trainer(
        max_epochs=max_epochs,
        default_root_dir=str(root),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=flags.pop("logger", False),
        num_sanity_val_steps=0,
        **flags,
    )
    trainer.fit(module, make_loader(), make_loader(seed=1), ckpt_path=ckpt_path)
    return trainer


SCORES = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_end_hooks_of_the_saved_epoch_do_not_run_again(tmp_path: Path) -> None:
    ckpts = tmp_path / "ckpts"
    counter = CountEpochs()
    module = Counted(SCORES)
    with pytest.raises(Crash):
        _fit(
            tmp_path,
            [counter, ModelCheckpoint(dirpath=ckpts, save_last=True), CrashAt(epoch=1)],
            3,
            module,
        )
    assert counter.epochs == 2 and module.epoch_ends == 2
    saved = load_checkpoint_safe(ckpts / "last.ckpt")
    assert saved["epoch"] == 1 and saved["loops"]["fit_loop"]["epoch_ending"] == 1

    counter, module = CountEpochs(), Counted(SCORES)
    trainer = _fit(
        tmp_path, [counter, ModelCheckpoint(dirpath=ckpts, save_last=True)], 3, module, "last"
    )
    assert trainer.current_epoch == 3 and trainer.global_step == 12
    assert counter.epochs == 3  # 2 before the checkpoint, 1 after: not 4
    assert module.epoch_ends == 1  # only epoch 2's end ran in the resumed process
    assert counter.validations == 3
    assert module.val_batches == 4  # epoch 2's validation only


@pytest.mark.parametrize("logger", [False, None])
def test_early_stopping_with_ckpt_path_last(tmp_path: Path, logger: Any) -> None:
    """The normal case: EarlyStopping and ModelCheckpoint at their defaults, a job
    relaunched with ckpt_path="last". Scores get worse after epoch 0 (patience 2): the
    uninterrupted run stops after epoch 2, and so must the resumed one."""

    def callbacks() -> list[Any]:
        return [
            EarlyStopping(monitor="val_loss", patience=2),
            ModelCheckpoint(monitor="val_loss", save_last=True),
        ]

    first = _fit(tmp_path, callbacks(), 2, Counted(SCORES), logger=logger)
    assert first.early_stopping_callback.wait_count == 1

    resumed = _fit(tmp_path, callbacks(), 6, Counted(SCORES), "last", logger=logger)
    early, ckpt = resumed.early_stopping_callback, resumed.checkpoint_callback
    assert resumed.state.status == "finished"
    assert early.best_score == 1.0 and early.wait_count == 2
    assert early.stopped_epoch == 2 and resumed.current_epoch == 3
    assert float(ckpt.best_model_score) == 1.0
    assert Path(ckpt.best_model_path).name == "epoch=0-step=4.ckpt"
    # relaunched once more: the last checkpoint was saved by the end hooks of the epoch
    # EarlyStopping stopped after, so the run stops there again instead of training on
    again = _fit(tmp_path, callbacks(), 6, Counted(SCORES), "last", logger=logger)
    assert again.current_epoch == 3 and again.global_step == 12
    if logger is None:  # one run, resumed, and its journal says it succeeded
        assert resumed.run.id == first.run.id
        with JournalReader(resumed.run.dir) as journal:
            assert journal.status()[0] == "success"


def test_a_checkpoint_saved_after_validation_does_not_validate_again(tmp_path: Path) -> None:
    """ModelCheckpoint(save_on_train_epoch_end=False) saves from on_validation_end, before
    the epoch's end hooks: the resumed run runs those hooks (with the monitored values of
    the checkpoint), not the validation."""
    ckpts = tmp_path / "ckpts"

    def callbacks(*extra: Any) -> list[Any]:
        return [
            CountEpochs(),
            EarlyStopping(monitor="val_loss", patience=5, check_on_train_epoch_end=True),
            ModelCheckpoint(dirpath=ckpts, save_last=True, save_on_train_epoch_end=False),
            *extra,
        ]

    with pytest.raises(Crash):
        _fit(tmp_path, callbacks(CrashAt(1, "on_validation_end")), 3, Counted(SCORES))
    saved = load_checkpoint_safe(ckpts / "last.ckpt")["loops"]["fit_loop"]
    assert saved["epoch_ending"] == 0 and saved["callback_metrics"]["val_loss"] == 2.0

    module = Counted(SCORES)
    trainer = _fit(tmp_path, callbacks(), 3, module, "last")
    counter, early = trainer.callbacks[0], trainer.early_stopping_callback
    assert module.val_batches == 4  # epoch 2 only: epoch 1's validation is not redone
    assert counter.validations == 3
    assert module.epoch_ends == 2 and counter.epochs == 3  # epoch 1's end ran once, here
    assert early.wait_count == 2 and early.best_score == 1.0


class Plateau(Counted):
    """An epoch scheduler that reads the monitored metric."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def test_epoch_scheduler_steps_once_with_the_saved_metric(tmp_path: Path) -> None:
    full = _fit(tmp_path / "full", [ModelCheckpoint(save_last=True)], 3, Plateau(SCORES))
    lr_full = full.optimizers[0].param_groups[0]["lr"]
    ckpts = tmp_path / "cut" / "ckpts"
    with pytest.raises(Crash):
        _fit(
            tmp_path / "cut",
            [ModelCheckpoint(dirpath=ckpts, save_last=True), CrashAt(epoch=1)],
            3,
            Plateau(SCORES),
        )
    resumed = _fit(
        tmp_path / "cut",
        [ModelCheckpoint(dirpath=ckpts, save_last=True)],
        3,
        Plateau(SCORES),
        "last",
    )
    assert lr_full == 0.25  # the plateau halved it after epochs 1 and 2
    assert resumed.optimizers[0].param_groups[0]["lr"] == lr_full
    full_w, resumed_w = full.module.state_dict(), resumed.module.state_dict()
    assert all(torch.equal(full_w[k], resumed_w[k]) for k in full_w)


def test_a_checkpoint_saved_after_a_mid_epoch_validation_does_not_validate_again(
    tmp_path: Path,
) -> None:
    """Validation after every 2 of 4 batches; the checkpoint is saved by the first
    validation of epoch 1 (mid-epoch): the resumed run goes on with batch 3."""
    ckpts = tmp_path / "ckpts"

    def callbacks(*extra: Any) -> list[Any]:
        return [
            CountEpochs(),
            ModelCheckpoint(dirpath=ckpts, save_last=True, save_on_train_epoch_end=False),
            *extra,
        ]

    with pytest.raises(Crash):
        _fit(
            tmp_path,
            callbacks(CrashAt(1, "on_validation_end")),
            2,
            Counted(SCORES),
            val_check_interval=0.5,
        )
    assert load_checkpoint_safe(ckpts / "last.ckpt")["global_step"] == 6

    module = Counted(SCORES)
    trainer = _fit(tmp_path, callbacks(), 2, module, "last", val_check_interval=0.5)
    assert trainer.global_step == 8
    assert module.val_batches == 4  # the validation after batch 4 only
    assert trainer.callbacks[0].validations == 4 and trainer.callbacks[0].epochs == 2


def test_a_checkpointer_listed_first_still_saves_after_the_other_callbacks(
    tmp_path: Path,
) -> None:
    """Checkpointers run last whatever the listed order (as in Lightning): the epoch's
    checkpoint holds the state the other callbacks reached at that epoch's end."""
    ckpts = tmp_path / "ckpts"

    def callbacks(*extra: Any) -> list[Any]:
        return [ModelCheckpoint(dirpath=ckpts, save_last=True), CountEpochs(), *extra]

    _fit(tmp_path, callbacks(), 2, Counted(SCORES))  # last.ckpt: saved at epoch 1's end
    assert load_checkpoint_safe(ckpts / "last.ckpt")["callbacks"]["CountEpochs"] == {
        "epochs": 2,
        "validations": 2,
    }
    trainer = _fit(tmp_path, callbacks(), 3, Counted(SCORES), "last")
    assert isinstance(trainer.callbacks[-1], ModelCheckpoint)
    assert trainer.callbacks[0].epochs == 3


def test_a_stop_decided_mid_epoch_survives_the_resume(tmp_path: Path) -> None:
    """EarlyStopping on a mid-epoch validation stops training there; the checkpoint saved
    by that validation resumes to the same stop: the epoch ends, nothing more trains."""
    ckpts = tmp_path / "ckpts"

    def callbacks(*extra: Any) -> list[Any]:
        return [
            EarlyStopping(monitor="val_loss", patience=2),
            ModelCheckpoint(dirpath=ckpts, save_last=True, save_on_train_epoch_end=False),
            *extra,
        ]

    full = _fit(tmp_path / "full", callbacks(), 3, Counted(SCORES), val_check_interval=0.5)
    assert (full.global_step, full.current_epoch) == (6, 2)  # stopped after epoch 1, batch 2
    with pytest.raises(Crash):
        _fit(
            tmp_path,
            callbacks(CrashAt(1, "on_validation_end")),
            3,
            Counted(SCORES),
            val_check_interval=0.5,
        )
    module = Counted(SCORES)
    resumed = _fit(tmp_path, callbacks(), 3, module, "last", val_check_interval=0.5)
    assert (resumed.global_step, resumed.current_epoch) == (6, 2)
    assert module.epoch_ends == 1 and module.val_batches == 0
    assert resumed.early_stopping_callback.stopped_epoch == 1
