"""Preemption through the Trainer: SIGTERM or SIGUSR1 to a real training process saves
``preempted.ckpt`` at the next step boundary and exits with status 75; resuming from it
(``ckpt_path="last"``) ends with the uninterrupted run's weights."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import Callback, Trainer
from ember.trainer.checkpoint import (
    EXIT_PREEMPTED,
    OnExceptionCheckpoint,
    Preempted,
    load_checkpoint_safe,
)
from harness import (
    Launcher,
    Reference,
    assert_same_weights,
    best_scores,
    fit_in_process,
    start,
)


def preempt_then_resume(
    launcher: Launcher, fresh: bool, reference: Reference, root: Path, signum: int
) -> None:
    # 120 steps of at least 5 ms: the signal comes while training runs
    proc = start(None if fresh else launcher, root, "--epoch-checkpoints", "--step-sleep", "0.005")
    proc.wait_ready()
    time.sleep(random.uniform(0.0, 0.4))
    proc.signal(signum)
    assert proc.wait() == EXIT_PREEMPTED, proc.output()
    path = root / "ckpts" / "epoch" / "preempted.ckpt"
    name = signal.Signals(signum).name
    assert (
        f"ember: preempted by {name}; checkpoint saved to {path}; exiting with status 75"
        in proc.output()
    )
    checkpoint = load_checkpoint_safe(path)
    step = checkpoint["global_step"]
    assert 0 < step < reference.steps
    # saved at a step boundary: exactly the weights the uninterrupted run had after it
    assert_same_weights(checkpoint["state_dict"], reference.trajectory[step], f"step {step}")

    resumed = start(launcher, root, "--epoch-checkpoints", "--resume")
    assert resumed.wait_ready() == f"ready {path}"  # newer than any last.ckpt
    assert resumed.wait() == 0, resumed.output()
    final = torch.load(root / "final.pt", weights_only=True)
    assert_same_weights(final, reference.final, f"preempted by {name} at step {step}")
    assert best_scores(root) == reference.best_scores


def test_sigterm_to_a_fresh_interpreter(
    launcher: Launcher, reference: Reference, tmp_path: Path
) -> None:
    """The interpreter itself exits with 75 (an uncaught Preempted)."""
    preempt_then_resume(launcher, True, reference, tmp_path, signal.SIGTERM)


def test_sigusr1_as_slurm_sends_it(
    launcher: Launcher, reference: Reference, tmp_path: Path
) -> None:
    preempt_then_resume(launcher, False, reference, tmp_path, signal.SIGUSR1)


class SignalAt(Callback):
    """Sends this process ``signum`` during the step that reaches ``step``."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step = step
        self.signum = signum

    def on_before_optimizer_step(self, trainer: Trainer, *args: Any) -> None:
        if trainer.global_step + 1 == self.step:
            os.kill(os.getpid(), self.signum)


def test_in_process_the_step_finishes_then_it_saves_and_stops(tmp_path: Path) -> None:
    _, full = fit_in_process(tmp_path / "full", 2)
    before = signal.getsignal(signal.SIGTERM)
    on_exception = OnExceptionCheckpoint(tmp_path / "exc")
    with pytest.raises(Preempted) as info:
        fit_in_process(tmp_path, 2, [SignalAt(7), on_exception])
    assert info.value.code == EXIT_PREEMPTED and info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is uninstalled
    assert not os.path.exists(on_exception.ckpt_path)  # preemption saved its own file
    path = tmp_path / "checkpoints" / "preempted.ckpt"  # no ModelCheckpoint: the default
    assert info.value.checkpoint_path == str(path)
    checkpoint = load_checkpoint_safe(path)
    assert checkpoint["global_step"] == 7  # the step during which the signal came
    assert checkpoint["loops"]["fit_loop"]["batch_idx"] == 7

    trainer, resumed = fit_in_process(tmp_path, 2, ckpt_path="last", seed=3)
    assert trainer.ckpt_path == str(path)
    assert_same_weights(resumed.state_dict(), full.state_dict(), "resumed after SIGTERM")


def test_a_signal_outside_fit_keeps_its_usual_meaning(tmp_path: Path) -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        fit_in_process(tmp_path, 1)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)
