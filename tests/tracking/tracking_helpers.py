"""Helpers of the tracking tests (a uniquely named module, importable from the tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

from ember_fixture_trackers.loggers import RecorderLogger

EMBER = Path(sys.executable).with_name("ember")


def run_ember(
    *args: str,
    plugins: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``ember`` console script, optionally with the fixture trackers."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}
    full_env["PYTHONPATH"] = str(plugins) if plugins else ""
    full_env.update(env or {})
    return subprocess.run(
        [str(EMBER), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


def read_jsonl(path: Path) -> list[dict]:
    """The entries of a recorder logger's file."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class NotebookLogger(RecorderLogger):
    """A recorder whose tracker object (for ``call``) is the logger itself; importable
    where ember delivers from (a process of its own with ``logger_delivery="process"``)."""

    name = "notebook"
    capabilities = replace(RecorderLogger.capabilities, experiment=True)

    @property
    def experiment(self) -> NotebookLogger:
        return self


def write_note(experiment, text: str) -> int:
    """An escape-hatch function: write ``text`` through the tracker's own object; returns
    the id of the process it ran in."""
    experiment._write({"type": "note", "text": text})
    return os.getpid()


def make_lock(experiment) -> threading.Lock:
    """An escape-hatch function whose result cannot be pickled."""
    return threading.Lock()
