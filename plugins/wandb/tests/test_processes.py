"""wandb-core and the training process: what is left running, and where files go."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ember_wandb.offline import read_offline_run
from wandb_helpers import files_under, run_training, train_command

W_AND_B_HELPERS = ("wandb-core", "wandb-symon")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _latest_run(wb_dir: Path):
    run_file = next((wb_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    return read_offline_run(wb_dir / "wandb", run_file.stem[len("run-") :])


@pytest.mark.slow
def test_finalize_stops_wandb_core_and_home_stays_empty(
    tmp_path: Path, isolated_home: Path
) -> None:
    """After a fit, no W&B helper process is left, and nothing was written to HOME or to
    the working folder: all of it is under ``dir``."""
    wb = tmp_path / "wb"
    report = run_training(tmp_path / "root", {"name": "wandb", "mode": "offline", "dir": str(wb)})
    assert report["outcome"] == "success"
    assert [c for c in report["children"] if c["comm"] in W_AND_B_HELPERS] == []
    assert files_under(isolated_home) == []
    assert not (tmp_path / "root" / "wandb").exists()
    run = _latest_run(wb)
    assert run.exit_code == 0
    assert len([row for row in run.history if "train_loss" in row]) == 16
    shown = [row["samples/grad"] for row in run.history if "samples/grad" in row]
    assert [(i["width"], i["height"]) for i in shown] == [(4, 3), (4, 3)]


@pytest.mark.slow
def test_crash_in_training_finishes_the_run_as_failed(tmp_path: Path) -> None:
    """An exception in training_step finishes the W&B run as failed and stops wandb-core
    before the process goes on."""
    wb = tmp_path / "wb"
    report = run_training(
        tmp_path / "root", {"name": "wandb", "mode": "offline", "dir": str(wb)}, "crash"
    )
    assert report["outcome"].startswith("failed: deliberate crash")
    assert [c for c in report["children"] if c["comm"] in W_AND_B_HELPERS] == []
    run = _latest_run(wb)
    assert run.exit_code == 1 and not run.preempted
    steps = [row["trainer/global_step"] for row in run.history if "train_loss" in row]
    assert len(steps) == 3, steps  # the three steps before the crash, each once


@pytest.mark.slow
def test_sigkill_of_training_leaves_no_wandb_core(tmp_path: Path) -> None:
    """SIGKILL the training process mid-fit: its wandb-core exits within a few seconds."""
    root = tmp_path / "root"
    root.mkdir()
    logger = {"name": "wandb", "mode": "offline", "dir": str(tmp_path / "wb")}
    proc = subprocess.Popen(
        train_command(root, logger, "hang", "--wait-child", "wandb-core"),
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        line = ""
        while not line.startswith("READY") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert line.startswith("READY"), f"the training never got to step 3 ({line!r})"
        helpers = [c["pid"] for c in json.loads(line[len("READY ") :]) if c["comm"] == "wandb-core"]
        assert helpers, "wandb-core was not running during training"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in helpers), "wandb-core outlived its parent by 10 s"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_run_left_open_is_finished_at_exit(tmp_path: Path) -> None:
    """A script that ends after fit without finishing the run: at exit the W&B run is
    finalized with everything in it, and the process ends."""
    wb = tmp_path / "wb"
    logger = {"name": "wandb", "mode": "offline", "dir": str(wb)}
    report = run_training(tmp_path / "root", logger, "fit", "--at-exit")
    assert report["outcome"] == "success"
    run = _latest_run(wb)
    assert run.exit_code == 0
    assert len([row for row in run.history if "train_loss" in row]) == 16
