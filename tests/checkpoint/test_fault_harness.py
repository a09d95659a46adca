"""The fault harness: a real training process is killed with SIGKILL at random moments and
resumed from its newest checkpoint, again and again. After every kill the newest
checkpoint must load and hold exactly the weights the uninterrupted run had at that step;
the last resume must finish with exactly the uninterrupted run's weights and top-k
bookkeeping.

Kill timings are random; set EMBER_FAULT_SEED to replay a failing sequence."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from ember.trainer.checkpoint import ModelCheckpoint, find_last_checkpoint, load_checkpoint_safe
from harness import (
    STEPS_PER_EPOCH,
    Launcher,
    Reference,
    assert_same_weights,
    best_scores,
    kill,
    run_reference,
    start,
)


def newest_checkpoint(root: Path) -> Path | None:
    """What ``ckpt_path="last"`` resumes: the newest last checkpoint of the run."""
    return find_last_checkpoint([ModelCheckpoint(dirpath=root / "ckpts" / "step")], root)


def check_newest(root: Path, reference: Reference, seed: int) -> int | None:
    """The newest checkpoint loads and is on the uninterrupted trajectory; its step."""
    path = newest_checkpoint(root)
    if path is None:  # killed before the first save: the resume starts afresh
        return None
    checkpoint = load_checkpoint_safe(path)
    step = checkpoint["global_step"]
    assert checkpoint["loops"]["fit_loop"]["global_step"] == step
    assert_same_weights(
        checkpoint["state_dict"],
        reference.trajectory[step],
        f"checkpoint {path} at step {step} (EMBER_FAULT_SEED={seed})",
    )
    return step


def kill_and_resume(
    launcher: Launcher | None,
    base: Path,
    reference: Reference,
    kills: int,
    seed: int,
    workers: tuple[int, ...] = (0,),
) -> dict[str, int]:
    """Kill runs until ``kills`` kills have landed (a run that finishes first is checked and
    a new one started), then resume the last one to its end. Returns the counts."""
    rng = random.Random(seed)
    # spread the kills over about two thirds of a run
    longest_wait = 2 * reference.seconds / (kills + 5)
    made = landed = finished = mid_epoch = during_save = 0
    chain, resume, previous_step = 0, False, -1

    def args(resume: bool) -> tuple[str, ...]:
        chosen = ("--workers", str(rng.choice(workers)))
        return (*chosen, "--resume") if resume else chosen

    root = base / "run0"
    while landed < kills:
        proc = start(launcher, root, *args(resume))
        proc.wait_ready()
        time.sleep(rng.uniform(0, longest_wait))
        made += 1
        status = kill(proc)
        if status == 0:  # it finished before the kill: check it, start another run
            finished += 1
            assert_same_weights(
                torch.load(root / "final.pt", weights_only=True), reference.final, str(root)
            )
            chain += 1
            root, resume, previous_step = base / f"run{chain}", False, -1
            continue
        assert status == -signal.SIGKILL, f"status {status}:\n{proc.output()}"
        landed += 1
        # a save cut short leaves its temporary file (the next run's set-up removes it)
        during_save += any(root.rglob("*.ember-tmp"))
        step = check_newest(root, reference, seed)
        if step is not None:
            assert step >= previous_step, "a resumed run went back in time"
            previous_step = step
            mid_epoch += bool(step % STEPS_PER_EPOCH)
        resume = True

    proc = start(launcher, root, *args(True))
    assert proc.wait() == 0, proc.output()
    assert_same_weights(
        torch.load(root / "final.pt", weights_only=True),
        reference.final,
        f"final weights after {landed} kills (EMBER_FAULT_SEED={seed})",
    )
    assert best_scores(root) == reference.best_scores
    assert check_newest(root, reference, seed) == reference.steps
    return {
        "made": made,
        "landed": landed,
        "finished": finished,
        "mid_epoch": mid_epoch,
        "during_save": during_save,
    }


def _seed() -> int:
    return int(os.environ.get("EMBER_FAULT_SEED", time.time_ns() % 2**32))


def test_sigkill_at_random_moments_then_resume_reaches_the_same_weights(
    launcher: Launcher, reference: Reference, tmp_path: Path
) -> None:
    seed = _seed()
    counts = kill_and_resume(launcher, tmp_path, reference, kills=16, seed=seed)
    print(f"fault harness (EMBER_FAULT_SEED={seed}): {counts}")
    assert counts["landed"] >= 16
    assert counts["mid_epoch"] >= 1


@pytest.mark.slow
def test_many_sigkills_of_fresh_interpreters_with_and_without_workers(tmp_path: Path) -> None:
    """Each run a new ``python`` process (no launcher), loading with 0 or 2 workers."""
    seed = _seed()
    reference = run_reference(None, tmp_path / "reference")
    counts = kill_and_resume(None, tmp_path, reference, kills=25, seed=seed, workers=(0, 2))
    print(f"fault harness, fresh interpreters (EMBER_FAULT_SEED={seed}): {counts}")
    assert counts["landed"] >= 25
    assert counts["mid_epoch"] >= 1
