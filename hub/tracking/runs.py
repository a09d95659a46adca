"""Finding runs on disk, summarising them, and replaying a journal into a logger
(the library behind ``ember runs`` and ``ember sync``)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ember.hub.tracking.fanout import DeliveryPolicy, Worker
from ember.hub.tracking.journal import (
    JOURNAL_FILE,
    Journal,
    JournalError,
    JournalReader,
    journal_path,
)
from ember.hub.tracking.logger import RunInfo
from ember.hub.tracking.report import LoggerReport, sync_command
from ember.hub.tracking.run import RUNS_DIR, resolve_loggers
from ember.hub.tracking.secrets import Redactor


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Run directories under ``root``: a ``default_root_dir``, its ``ember_runs`` folder,
    or a run directory itself. Oldest first."""
    root = Path(root)
    if journal_path(root).is_file():
        return [root]
    found: list[Path] = []
    for base in (root / RUNS_DIR, root):
        if base.is_dir():
            found += [p.parent for p in base.glob(f"*/{JOURNAL_FILE}")]
    return sorted(set(found), key=lambda p: (p.stat().st_mtime, p.name))


def resolve_run(ref: str, root: str | os.PathLike[str] = ".") -> Path:
    """The run directory meant by ``ref``: a path, a run id, a unique id prefix or a
    run name (the newest run of that name)."""
    path = Path(ref)
    if path.is_file() and path.name == JOURNAL_FILE:
        return path.parent
    if journal_path(path).is_file():
        return path
    runs = find_runs(root)
    exact = [p for p in runs if p.name == ref]
    if exact:
        return exact[-1]
    prefixed = [p for p in runs if p.name.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    named = []
    for p in runs:
        try:
            with JournalReader(p) as r:
                if r.name == ref:
                    named.append(p)
        except JournalError:
            continue
    if named:
        return named[-1]
    if len(prefixed) > 1:
        raise JournalError(
            f"{ref!r} matches {len(prefixed)} runs ({', '.join(p.name for p in prefixed[:5])}"
            f"{', ...' if len(prefixed) > 5 else ''}); give more of the id"
        )
    raise JournalError(
        f"no run {ref!r}: not a run directory, and no run with that id or name under "
        f"{Path(root) / RUNS_DIR} (choose the root with --root; `ember runs` lists them)"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def run_state(reader: JournalReader) -> str:
    """The recorded status, with ``running`` checked: a run whose process is gone from
    this host is ``killed``."""
    status, _ = reader.status()
    if status != "running":
        return status
    segments = reader.segments()
    if segments:
        last = segments[-1]
        if last["host"] == socket.gethostname() and last["pid"] and not _pid_alive(last["pid"]):
            return "killed"
    return "running"


@dataclass(frozen=True)
class RunSummary:
    """One line of ``ember runs``."""

    id: str
    name: str
    dir: str
    status: str
    started_at: float
    duration: float | None
    last_metrics: Mapping[str, tuple[int, float]]
    resumes: int

    def as_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "id": self.id,
            "name": self.name,
            "dir": self.dir,
            "status": self.status,
            "started_at": self.started_at,
            "duration": self.duration,
            "last_metrics": {k: {"step": s, "value": v} for k, (s, v) in self.last_metrics.items()},
            "resumes": self.resumes,
        }


def summarize(reader: JournalReader) -> RunSummary:
    """The summary of one run."""
    state = run_state(reader)
    status, finished_at = reader.status()
    end = finished_at if status != "running" else reader.last_activity()
    if state == "running":
        end = time.time()
    return RunSummary(
        id=reader.id,
        name=reader.name,
        dir=str(reader.run_dir),
        status=state,
        started_at=reader.created_at,
        duration=None if end is None else max(0.0, end - reader.created_at),
        last_metrics=reader.last_metrics(),
        resumes=max(0, len(reader.segments()) - 1),
    )


def sync(
    run_dir: str | os.PathLike[str],
    to: str | Mapping[str, Any],
    *,
    timeout: float | None = None,
    policy: DeliveryPolicy | None = None,
    force: bool = False,
    plugin_manager: Any = None,
) -> LoggerReport:
    """Replay the journal of ``run_dir`` into the logger ``to`` (a provider name or a
    ``{"name": ..., **options}`` mapping), from that logger's cursor on.

    Idempotent: a second call delivers nothing twice. ``timeout`` bounds the wait (None:
    until done, quarantined or interrupted).
    """
    run_dir = Path(run_dir)
    with JournalReader(run_dir) as reader:
        state = run_state(reader)
        if state == "running" and not force:
            raise JournalError(
                f"run {reader.id} is still running (pid {reader.segments()[-1]['pid']}); its "
                "own loggers are delivering. Sync after it ends, or pass --force"
            )
        entries = resolve_loggers([to], plugin_manager=plugin_manager)
        assert entries is not None  # a list never resolves to "disabled"
        entry = entries[0]
        redactor = Redactor(entry.secrets)
        entry.options = redactor.data(entry.options)
        cursor = reader.cursors().get(entry.key)
        status, _ = reader.status()
        info = RunInfo(
            id=reader.id, name=reader.name, dir=str(run_dir), started_at=reader.created_at
        )
    caps = entry.logger.capabilities
    start_seq = skipped = 0
    if cursor is not None and caps.reattach:
        info = replace(info, resumed=True, resume_ref=cursor["tracker_ref"])
        start_seq, skipped = cursor["seq"], cursor["skipped"]
    hint = sync_command(run_dir, entry.provider or entry.label, entry.options)
    with JournalReader(run_dir) as reader:
        nothing_left = reader.count(entry.supported_kinds(), after_seq=start_seq) == 0
        if cursor is not None and nothing_left and cursor["finalized"]:
            return LoggerReport(
                key=entry.key,
                label=entry.label,
                state="ok (already complete)",
                delivered=reader.count(entry.supported_kinds(), upto_seq=start_seq) - skipped,
                pending=0,
                failed=skipped,
                sync_command=hint,
            )
    journal = Journal.open(run_dir)
    try:
        journal.event("sync", {"logger": entry.key, "from_seq": start_seq})
        worker = Worker(
            entry,
            journal,
            info,
            policy or DeliveryPolicy(),
            redactor,
            start_seq=start_seq,
            skipped=skipped,
            sync_hint=hint,
        )
        # a run that never recorded its end (killed) is closed as failed in the tracker
        worker.request_stop(status if status != "running" else "failed")
        worker.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while worker.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                worker.join(0.2 if left is None else min(0.2, left))
        except KeyboardInterrupt:
            worker.abandon()
            raise
        if worker.is_alive():
            worker.abandon()
        with JournalReader(run_dir) as reader:
            return worker.report(reader)
    finally:
        journal.close()
