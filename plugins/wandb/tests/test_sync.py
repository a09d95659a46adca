"""``ember sync RUN --to wandb`` replays a finished CSV-only run into an offline W&B run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ember_wandb.offline import read_offline_run
from wandb_helpers import run_training

EMBER = Path(sys.executable).with_name("ember")


@pytest.mark.slow
def test_sync_replays_a_csv_only_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run_training(root, {"name": "csv"}, "fit", "--no-checkpoints")
    [run_dir] = (root / "ember_runs").iterdir()
    with (run_dir / "metrics.csv").open(newline="") as f:
        expected = [
            (int(r["step"]), float(r["train_loss"])) for r in csv.DictReader(f) if r["train_loss"]
        ]
    wb = tmp_path / "wb"
    cmd = [str(EMBER), "sync", str(run_dir), "--to", "wandb", "--json"]
    cmd += ["--option", "mode=offline", "--option", f"dir={wb}", "--option", "project=replay"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    [run_file] = (wb / "wandb").glob("offline-run-*/run-*.wandb")
    run = read_offline_run(wb / "wandb", run_file.stem[len("run-") :])
    got = [
        (row["trainer/global_step"], row["train_loss"])
        for row in run.history
        if "train_loss" in row
    ]
    assert got == expected
    assert run.config["model"] == {"hidden": 4} and run.exit_code == 0
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["state"] == "ok (already complete)"  # nothing twice
    assert len(list((wb / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
