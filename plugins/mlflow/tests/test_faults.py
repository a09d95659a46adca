"""Faults with real processes: an MLflow server that goes away mid-run, and a training
process killed with SIGKILL and resumed."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from ember.hub.tracking import JournalReader
from ember_mlflow.testing import MlflowServer
from mlflow_helpers import read_mlflow, runs_of, train

EMBER = Path(sys.executable).with_name("ember")


@pytest.fixture
def trainings() -> Iterator[list[subprocess.Popen[str]]]:
    """Training processes a test starts; any still running at the end (a failed test)
    are killed, so none waits forever at its gate."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)


def _read_until(proc: subprocess.Popen[str], step: int, seen: list[str]) -> None:
    """Read the trainer's output until it starts ``step``."""
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("step ") and int(line.split()[1]) >= step:
            return
    raise AssertionError("the training ended early:\n" + "".join(seen))


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _delivered(uri: str) -> int:
    """How many loss steps the (only) MLflow run holds; 0 before it exists."""
    runs = runs_of(uri)
    return len(_loss_steps(uri, runs[0].info.run_id)) if runs else 0


def _loss_steps(uri: str, run_id: str) -> list[int]:
    back, _ = read_mlflow(uri, run_id)
    return sorted(s for n, s, _ in back.metrics if n == "loss")


def test_server_outage_then_ember_sync_completes_the_run(
    own_mlflow_server: MlflowServer, tmp_path: Path, trainings: list
) -> None:
    """The server stops mid-run; training finishes anyway and prints an ember sync
    command; once the server is back, that command completes the MLflow run with every
    step once and the final status."""
    server = own_mlflow_server.start()
    root = tmp_path / "work"
    root.mkdir()
    steps = 40
    proc = train(root, server.uri, steps, pause=0.05, gate=10)
    trainings.append(proc)
    seen: list[str] = []
    _read_until(proc, 10, seen)  # the training waits at step 10 until ROOT/go exists
    _wait(lambda: bool(runs_of(server.uri)), 120, "the MLflow run")
    (run,) = runs_of(server.uri)
    _wait(lambda: len(_loss_steps(server.uri, run.info.run_id)) >= 3, 120, "some metrics")
    server.stop()
    (root / "go").touch()

    out, _ = proc.communicate(timeout=600)
    seen.append(out)
    output = "".join(seen)
    assert proc.returncode == 0, output
    assert f"step {steps}" in output, "training must finish while the tracker is down"
    # the same command at the end of fit (still retrying) and in the final report
    commands = sorted(
        {ln.strip() for ln in output.splitlines() if ln.strip().startswith("ember sync")}
    )
    assert len(commands) == 1, output
    assert f"--option tracking_uri={server.uri}" in commands[0]

    server.start()
    before = _loss_steps(server.uri, run.info.run_id)
    assert 3 <= len(before) < steps, "the outage should have left steps undelivered"
    sync = subprocess.run(
        [str(EMBER), *shlex.split(commands[0])[1:]],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sync.returncode == 0, sync.stdout + sync.stderr

    (after,) = runs_of(server.uri)
    assert after.info.run_id == run.info.run_id, "sync completes the same MLflow run"
    back, _ = read_mlflow(server.uri, run.info.run_id)
    loss = [(s, v) for n, s, v in back.metrics if n == "loss"]
    assert sorted(s for s, _ in loss) == list(range(1, steps + 1)), "each step exactly once"
    run_dir = root / "ember_runs" / re.search(r"done (\S+)", output).group(1)
    with JournalReader(run_dir) as reader:
        journal = {s: v for s, v, _ in reader.metric_series("loss")}
    assert dict(loss) == journal
    assert back.hyperparams["lr"] == "0.1" and back.status == "success"
    again = subprocess.run(
        [str(EMBER), *shlex.split(commands[0])[1:]], cwd=root, capture_output=True, text=True
    )
    assert again.returncode == 0 and "nothing to deliver" in again.stdout


OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from ember.hub.tracking import RunInfo
from ember_mlflow.logger import MLflowLogger
import mlflow

go = Path(sys.argv[2])
go.with_name(sys.argv[3] + ".ready").touch()
while not go.exists():
    time.sleep(0.01)
logger = MLflowLogger(tracking_uri=sys.argv[1])
print(logger.open(RunInfo(id=sys.argv[3], name=sys.argv[3], dir=str(go.parent), started_at=0.0)))
logger.finalize("success")
"""


def test_processes_opening_one_new_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    """A sweep starting four runs on a new SQLite store: each opens it at the same moment.
    MLflow creates and migrates a new database on first open, and before ember-mlflow held
    a lock for that, most of these opens failed ("table params already exists",
    "duplicate column name")."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_WHEN_TOLD, uri, str(go), f"run{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(4)
    ]
    ready = [tmp_path / f"run{i}.ready" for i in range(4)]
    try:
        _wait(lambda: all(r.exists() for r in ready), 120, "the processes to import MLflow")
        go.touch()
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for proc in procs:  # none is left waiting for the file after a failure
            if proc.poll() is None:
                proc.kill()
                proc.wait(60)
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
    assert len(runs_of(uri)) == 4


def test_a_killed_run_resumes_into_the_same_mlflow_run(tmp_path: Path, trainings: list) -> None:
    """SIGKILL mid-run, then resume from the last checkpoint: the same MLflow run
    continues and finishes. MLflow cannot delete metric steps, so a step past the
    checkpoint that MLflow had already received is stored twice (same value: training is
    deterministic), marked by the tag ember.resumed_from_step."""
    root = tmp_path / "work"
    root.mkdir()
    (tmp_path / "store").mkdir()
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    # create the store here: MLflow creates a new SQLite store on first open, and the
    # reads below would otherwise race the training process doing it
    assert runs_of(uri) == []
    steps = 24
    proc = train(root, uri, steps, pause=0.0, gate=11)
    trainings.append(proc)
    seen: list[str] = []
    _read_until(proc, 11, seen)  # it waits at step 11, after the step-8 checkpoint
    _wait(lambda: _delivered(uri) >= 10, 120, "10 steps in MLflow")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(60)
    (killed,) = runs_of(uri)
    assert killed.info.status == "RUNNING"
    delivered = set(_loss_steps(uri, killed.info.run_id))

    ckpts = {int(re.search(r"step=(\d+)", p.name).group(1)): p for p in (root / "ckpt").iterdir()}
    ckpt_step = max(ckpts)
    resumed = train(root, uri, steps, pause=0.0, ckpt=str(ckpts[ckpt_step]))
    trainings.append(resumed)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "complete delivery" not in out, out

    (run,) = runs_of(uri)
    assert run.info.run_id == killed.info.run_id, "re-attached to the same MLflow run"
    back, extra = read_mlflow(uri, run.info.run_id)
    counts = Counter(s for n, s, _ in back.metrics if n == "loss")
    assert set(counts) == set(range(1, steps + 1))
    for step, n in counts.items():
        twice = step > ckpt_step and step in delivered
        assert n == (2 if twice else 1), (step, n, ckpt_step, sorted(delivered))
    values: dict[int, set[float]] = {}
    for n, s, v in back.metrics:
        if n == "loss":
            values.setdefault(s, set()).add(round(v, 6))
    assert all(len(v) == 1 for v in values.values()), "a replayed step has the same value"
    assert extra["tags"]["ember.resumed_from_step"] == str(ckpt_step)
    assert back.status == "success"
