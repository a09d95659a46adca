"""Exact resume through the Trainer: a run stopped anywhere (mid-epoch, just before a
validation, at an epoch's end, after fit) and resumed, in this process or in a new one,
ends with weights bitwise-equal (``torch.equal`` on every tensor of the state dict) to
a run that was never interrupted. The model draws from every generator (dropout, torch,
numpy and Python noise) and the loader shuffles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import Callback, Trainer
from ember.trainer.checkpoint import OnExceptionCheckpoint, load_checkpoint_safe
from harness import (
    STEPS_PER_EPOCH,
    Counting,
    Launcher,
    Reference,
    assert_same_weights,
    best_scores,
    build_run,
    fit_in_process,
    start,
)

EPOCHS = 3
STEPS = EPOCHS * STEPS_PER_EPOCH


class Crash(Exception):
    """Stands for the kill: the run ends right after its checkpoint."""


class SaveThenCrash(Callback):
    """Saves a checkpoint after optimizer step ``step`` (or at the end of epoch ``epoch``),
    then crashes."""

    def __init__(self, path: Path, step: int | None = None, epoch: int | None = None) -> None:
        self.path = path
        self.step = step
        self.epoch = epoch

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            raise Crash

    def on_train_epoch_end(self, trainer: Trainer, *args: Any) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.save_checkpoint(self.path)
            raise Crash


class CountBatches(Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, *args: Any) -> None:
        self.batches += 1


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    _, module = fit_in_process(tmp_path_factory.mktemp("full"), EPOCHS)
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    "where",
    [
        {"step": 5},  # mid-epoch
        {"step": 6},  # after a batch, before the mid-epoch validation it triggers
        {"step": 12},  # the epoch's last batch, before its validation and end
        {"step": 17},  # mid-epoch in the second epoch
        {"epoch": 1},  # inside the epoch-end hooks
    ],
)
def test_resume_in_process_matches_the_uninterrupted_run(
    tmp_path: Path, uninterrupted: dict[str, torch.Tensor], where: dict[str, int]
) -> None:
    path = tmp_path / "cut.ckpt"
    with pytest.raises(Crash):
        fit_in_process(tmp_path, EPOCHS, [SaveThenCrash(path, **where)])
    saved_step = load_checkpoint_safe(path)["global_step"]

    counter = CountBatches()
    trainer, resumed = fit_in_process(tmp_path, EPOCHS, [counter], ckpt_path=path, seed=123)
    assert trainer.ckpt_path == str(path)
    assert trainer.global_step == STEPS and trainer.current_epoch == EPOCHS
    assert counter.batches == STEPS - saved_step  # no batch trained twice, none skipped
    assert_same_weights(resumed.state_dict(), uninterrupted, f"resumed at {where}")


def test_a_resumed_epoch_never_reads_the_samples_it_skips(
    tmp_path: Path, uninterrupted: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "cut.ckpt"
    with pytest.raises(Crash):
        fit_in_process(tmp_path, EPOCHS, [SaveThenCrash(path, step=17)])
    data = Counting()
    _, resumed = fit_in_process(tmp_path, EPOCHS, ckpt_path=path, seed=7, data=data)
    assert data.reads == (STEPS - 17) * 8  # the remaining batches of 8, nothing more
    assert_same_weights(resumed.state_dict(), uninterrupted, "resumed at step 17")


def test_training_on_from_the_end_of_a_fit_matches_one_longer_fit(
    tmp_path: Path, uninterrupted: dict[str, torch.Tensor]
) -> None:
    trainer, _ = fit_in_process(tmp_path, EPOCHS - 1)
    trainer.save_checkpoint(tmp_path / "end.ckpt")
    _, longer = fit_in_process(tmp_path, EPOCHS, ckpt_path=tmp_path / "end.ckpt", seed=5)
    assert_same_weights(longer.state_dict(), uninterrupted, "trained on after fit")


@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_mid_epoch_then_resume_in_a_new_process(
    launcher: Launcher, reference: Reference, tmp_path: Path, workers: int
) -> None:
    """The process is killed right after the checkpoint of step 17 (mid-epoch); a new
    process resumes with ``ckpt_path="last"``."""
    killed = start(launcher, tmp_path, "--kill-at-step", "17", "--workers", str(workers))
    assert killed.wait() == -9, killed.output()
    resumed = start(launcher, tmp_path, "--resume", "--workers", str(workers))
    assert resumed.wait_ready() == f"ready {tmp_path / 'ckpts' / 'step' / 'last.ckpt'}"
    assert resumed.wait() == 0, resumed.output()
    final = torch.load(tmp_path / "final.pt", weights_only=True)
    assert_same_weights(final, reference.final, f"killed at step 17, {workers} workers")
    assert best_scores(tmp_path) == reference.best_scores


class CrashOnce(Callback):
    """Crashes once, after optimizer step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.crashed = False

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        if trainer.global_step == self.step and not self.crashed:
            self.crashed = True
            raise Crash


def test_fit_again_after_an_exception_continues_the_epoch(tmp_path: Path) -> None:
    """No checkpoint: fitting the same trainer again continues the epoch where the
    exception stopped it (same order, no batch twice). Not bit for bit: fit calls
    configure_optimizers again, so the optimizer and scheduler start afresh."""
    counter = CountBatches()
    trainer, module, train, val = build_run(tmp_path, EPOCHS, [counter, CrashOnce(17)])
    with pytest.raises(Crash):
        trainer.fit(module, train, val)
    trainer.fit(module, train, val)
    assert trainer.global_step == STEPS and counter.batches == STEPS


class FailBefore(Callback):
    """Raises as the batch after optimizer step ``step`` starts."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise Crash


def test_an_on_exception_checkpoint_redoes_the_batch_that_failed(
    tmp_path: Path, uninterrupted: dict[str, torch.Tensor]
) -> None:
    on_exception = OnExceptionCheckpoint(tmp_path)
    with pytest.raises(Crash):
        fit_in_process(tmp_path, EPOCHS, [FailBefore(17), on_exception])
    position = load_checkpoint_safe(on_exception.ckpt_path)["loops"]["fit_loop"]
    assert position["batch_idx"] == 5  # the failed batch is not counted as done
    assert position["train_dataloader"]["batches_consumed"] == 5

    counter = CountBatches()
    _, resumed = fit_in_process(
        tmp_path, EPOCHS, [counter], ckpt_path=on_exception.ckpt_path, seed=9
    )
    assert counter.batches == STEPS - 17
    # nothing drew from the random state between the last step and the failure, so this
    # resume is exact too (in general, one from an OnExceptionCheckpoint is approximate)
    assert_same_weights(resumed.state_dict(), uninterrupted, "resumed after the failure")
