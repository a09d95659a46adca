"""Exact resume under DDP: a 2-process run (ember's launcher) killed with SIGKILL at
random moments and resumed from ``last.ckpt`` ends with weights bitwise-equal to an
uninterrupted 2-process run. Extends the fault harness's training script
(``tests/checkpoint/scripts/train_resumable.py --devices 2``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TRAIN = Path(__file__).parents[1] / "checkpoint" / "scripts" / "train_resumable.py"
EPOCHS = "3"
TIMEOUT_S = 600


def _start(root: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Both ranks in a session of their own, so that one ``killpg`` kills the job."""
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"run-{time.monotonic_ns()}.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(TRAIN), str(root), "--devices", "2", "--epochs", EPOCHS, *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, log


def _wait_ready(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if log.read_text().count("ready ") >= 2:
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended before training started:\n{log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"training did not start:\n{log.read_text()}")


def _finish(proc: subprocess.Popen[bytes], log: Path) -> None:
    try:
        status = proc.wait(TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert status == 0, log.read_text()


@pytest.mark.slow
def test_ddp_sigkill_then_resume_reaches_the_same_weights(tmp_path: Path) -> None:
    seed = int(os.environ.get("EMBER_FAULT_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    reference, log = _start(tmp_path / "reference")
    _wait_ready(reference, log)
    started = time.monotonic()
    _finish(reference, log)
    # how long training lasts on this machine: a kill at a fixed delay can come after a
    # fast machine has already finished, and then no kill lands at all
    training_s = time.monotonic() - started
    expected = torch.load(tmp_path / "reference" / "final.pt", weights_only=True)

    root = tmp_path / "killed"
    kills = 0
    for attempt in range(3):
        proc, log = _start(root, *(["--resume"] if attempt else []))
        _wait_ready(proc, log)
        time.sleep(rng.uniform(0.1, 0.7) * training_s)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        status = proc.wait(TIMEOUT_S)
        if status == 0:  # it finished before the kill landed
            break
        assert status == -signal.SIGKILL, f"status {status}:\n{log.read_text()}"
        kills += 1
    assert kills >= 1, f"no kill landed (EMBER_FAULT_SEED={seed})"
    if not (root / "final.pt").exists():
        proc, log = _start(root, "--resume")
        _finish(proc, log)
    got = torch.load(root / "final.pt", weights_only=True)
    assert got.keys() == expected.keys()
    differ = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not differ, f"{differ} differ after {kills} kills (EMBER_FAULT_SEED={seed})"
