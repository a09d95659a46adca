"""The digits example, run exactly as its README says: a subprocess from the repo root."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_digits_example_trains_above_95_percent(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "examples.digits.train", "--root", str(root)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output

    accuracy = re.search(r"final val_acc = ([0-9.]+)", proc.stdout)
    assert accuracy, output
    assert float(accuracy.group(1)) > 0.95, output

    run_files = re.search(r"^run files: (.+?)(?:  \(.*)?$", proc.stdout, re.MULTILINE)
    assert run_files, output
    run_dir = Path(run_files.group(1).strip())
    assert run_dir.is_dir(), f"the printed run directory {run_dir} does not exist\n{output}"
    assert root.resolve() in (run_dir.resolve(), *run_dir.resolve().parents), output
    assert any(run_dir.iterdir()), f"the run directory {run_dir} is empty\n{output}"
