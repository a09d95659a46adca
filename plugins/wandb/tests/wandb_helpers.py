"""Reading back what the W&B logger wrote, with ember_wandb's run-file reader."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ember.hub.testing import ReadBack
from ember.hub.tracking import flatten_params
from ember_wandb.logger import STEP_METRIC, WandbLogger
from ember_wandb.offline import OfflineRun, read_offline_run


def offline_run(logger: WandbLogger) -> OfflineRun:
    """The merged run files of the logger's W&B run."""
    assert logger.root is not None and logger.run_id is not None, "the logger never opened"
    return read_offline_run(logger.root / "wandb", logger.run_id)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_back(logger: WandbLogger) -> ReadBack:
    """Every metric, config value, text, artifact and the status, as ember's kit wants them."""
    run = offline_run(logger)
    back = ReadBack(hyperparams=flatten_params(run.config))
    in_history: set[str] = set()
    for row in run.history:
        step = row.get(STEP_METRIC)
        for key, value in row.items():
            if key.startswith("_") or key == STEP_METRIC:
                continue
            in_history.add(key)
            if _number(value):
                back.metrics.append((key, int(step), float(value)))
            elif isinstance(value, str):
                back.texts.append((key, None if step is None else int(step), value))
            elif isinstance(value, dict) and value.get("_type") == "image-file":
                data = run.media_file(value["path"]).read_bytes()
                back.images.append((key, None if step is None else int(step), data))
    for key, value in run.summary.items():
        if isinstance(value, str) and key not in in_history:
            back.texts.append((key, None, value))
    for art in run.artifacts:
        name = art.metadata["ember_name"]
        data = Path(art.files[name]).read_bytes()
        back.artifacts.append((art.metadata["ember_kind"], name, data))
    if run.exit_code is not None:
        back.status = (
            "success" if run.exit_code == 0 else "interrupted" if run.preempted else "failed"
        )
    return back


def images(logger: WandbLogger) -> list[tuple[str, int | None, bytes, dict]]:
    """``(key, step, PNG bytes, W&B's image record)`` for every image in the history."""
    run = offline_run(logger)
    found = []
    for row in run.history:
        for key, value in row.items():
            if isinstance(value, dict) and value.get("_type") == "image-file":
                data = run.media_file(value["path"]).read_bytes()
                found.append((key, row.get(STEP_METRIC), data, value))
    return found


SCRIPT = Path(__file__).parent / "scripts" / "train_with.py"


def train_command(root: Path, logger: dict, mode: str, *extra: str) -> list[str]:
    """The command line of a short real fit with ``logger`` (see scripts/train_with.py)."""
    return [sys.executable, str(SCRIPT), str(root), json.dumps(logger), mode, *extra]


def run_training(
    root: Path, logger: dict, mode: str = "fit", *extra: str, prefix: Sequence[str] = ()
) -> dict:
    """Run the fit in a subprocess (in ``root``, with the test's HOME) and return its report."""
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [*prefix, *train_command(root, logger, mode, *extra)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def files_under(folder: Path) -> list[str]:
    """Every file (not folder) under ``folder``, relative."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())
