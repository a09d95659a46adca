"""Reading back what the Comet logger wrote: its offline archives, every message checked
against comet_ml's own schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ember.hub.testing import ReadBack
from ember_comet.archive import Archive, read_archives
from ember_comet.logger import STATUS_KEY, CometLogger

#: what Comet adds by itself: a step parameter per step, the process duration metric
_COMET_PARAMS = {"curr_step"}
_COMET_METRICS = {"process duration"}


def archive(logger: CometLogger) -> Archive:
    """Every archive of the logger's experiment, validated."""
    assert logger.archive_dir is not None and logger.key is not None, "not an offline logger"
    return read_archives(logger.archive_dir, logger.key)


def read_back(logger: CometLogger) -> ReadBack:
    """Every metric, parameter, text, artifact and the status, as ember's kit wants them."""
    back = ReadBack()
    for msg in archive(logger).messages:
        p = msg.payload
        if msg.type == "metric_msg" and p["metric"]["metricName"] not in _COMET_METRICS:
            m = p["metric"]
            back.metrics.append((m["metricName"], int(m["step"]), float(m["metricValue"])))
        elif msg.type == "parameter_msg" and p["param"]["paramName"] not in _COMET_PARAMS:
            name = p["param"]["paramName"].replace("|", "/")
            back.hyperparams[name] = p["param"]["paramValue"]
        elif msg.type == "log_other" and p["key"] == STATUS_KEY:
            back.status = p["value"]
        elif msg.type == "file_upload" and p["upload_type"] == "text-sample":
            step = p["additional_params"]["step"]
            assert msg.data is not None
            back.texts.append((p["metadata"]["key"], step, msg.data.decode("utf-8")))
        elif msg.type == "file_upload" and p["upload_type"] == "visualization":
            extra = p["additional_params"]
            back.images.append((extra["figName"], extra["step"], msg.data or b""))
        elif msg.type == "file_upload" and "ember_kind" in (p.get("metadata") or {}):
            meta = p["metadata"]
            assert msg.data is not None
            back.artifacts.append((meta["ember_kind"], meta["ember_name"], msg.data))
    return back


def images(logger: CometLogger) -> list[tuple[str, int | None, bytes, dict]]:
    """``(name, step, PNG bytes, metadata)`` of every image in the archives."""
    return [
        (
            m.payload["additional_params"]["figName"],
            m.payload["additional_params"]["step"],
            m.data or b"",
            m.payload.get("metadata") or {},
        )
        for m in archive(logger).messages
        if m.type == "file_upload" and m.payload["upload_type"] == "visualization"
    ]


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
