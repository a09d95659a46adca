"""Running ``scripts/train_ddp.py`` as real processes: in one process, under ember's own
DDP launcher, or under torchrun; and reading back what each rank wrote."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent / "scripts"
TRAIN = SCRIPTS / "train_ddp.py"
#: generous: the shared test machine may be loaded, and gloo start-up takes seconds
TIMEOUT_S = 600


def run_script(out: Path, *args: str, torchrun: list[str] | None = None, **kw: Any) -> Any:
    """Run the training script (under ``torchrun`` with those options, if given); returns
    the finished ``CompletedProcess``."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(TRAIN), "--out", str(out), *args]
    if torchrun is not None:
        command = [sys.executable, "-m", "torch.distributed.run", *torchrun, *command[1:]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run(
        command,
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", TIMEOUT_S),
        **kw,
    )


def results(out: Path) -> dict[int, dict[str, Any]]:
    """Each rank's ``rank<N>.json``, by rank."""
    return {
        int(p.stem.removeprefix("rank")): json.loads(p.read_text())
        for p in sorted(out.glob("rank*.json"))
    }


def metric_rows(out: Path) -> list[dict[str, str]]:
    """The rows of the single run's CSV metrics (asserting there is one run)."""
    runs = list((out / "root" / "ember_runs").iterdir())
    assert len(runs) == 1, runs
    with open(runs[0] / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def check(proc: subprocess.CompletedProcess[str]) -> None:
    """Fail with the processes' output when they did not succeed."""
    assert proc.returncode == 0, f"status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
