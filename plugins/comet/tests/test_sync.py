"""``ember sync RUN --to comet`` replays a finished CSV-only run into a Comet archive."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from comet_helpers import run_training
from ember_comet.archive import read_archives
from ember_comet.logger import STATUS_KEY

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
    archives = tmp_path / "archives"
    cmd = [str(EMBER), "sync", str(run_dir), "--to", "comet", "--json"]
    cmd += ["--option", "online=false", "--option", f"offline_directory={archives}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    [zipped] = archives.glob("*.zip")
    archive = read_archives(archives, zipped.name[:32])
    got = [
        (m.payload["metric"]["step"], m.payload["metric"]["metricValue"])
        for m in archive.messages
        if m.type == "metric_msg" and m.payload["metric"]["metricName"] == "train_loss"
    ]
    assert got == expected
    others = {
        m.payload["key"]: m.payload["value"] for m in archive.messages if m.type == "log_other"
    }
    assert others[STATUS_KEY] == "success"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["state"] == "ok (already complete)"  # nothing twice
    assert len(list(archives.glob("*.zip"))) == 1
