"""The end-of-run report: per logger, what was delivered, what is pending, what failed,
and the exact ``ember sync`` command that completes delivery."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ember.hub.tracking.secrets import REDACTED


@dataclass(frozen=True)
class LoggerReport:
    """Delivery figures of one logger; ``delivered + pending + failed + removed`` is every
    record of the kinds it supports. ``removed`` counts artifacts whose file was deleted
    after it was logged (a rotated checkpoint): there is nothing left to deliver, and
    that is not a failure."""

    key: str
    label: str
    state: str
    delivered: int
    pending: int
    failed: int
    error: str | None = None
    unsupported: tuple[str, ...] = ()
    sync_command: str | None = None
    removed: int = 0

    @property
    def complete(self) -> bool:
        """Everything the logger supports and that still exists was delivered."""
        return self.pending == 0 and self.failed == 0


@dataclass(frozen=True)
class Report:
    """What a finished run wrote and where each logger stands."""

    run_id: str | None
    run_name: str | None
    run_dir: str | None
    status: str
    records: Mapping[str, int] = field(default_factory=dict)
    loggers: tuple[LoggerReport, ...] = ()

    @property
    def complete(self) -> bool:
        """Every logger received everything it supports."""
        return all(lg.complete for lg in self.loggers)

    @property
    def sync_commands(self) -> list[str]:
        """The commands that complete delivery, one per incomplete logger."""
        return [lg.sync_command for lg in self.loggers if lg.sync_command and not lg.complete]

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json`` output and tests)."""
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "run_dir": self.run_dir,
            "status": self.status,
            "records": dict(self.records),
            "loggers": [lg.__dict__ | {"complete": lg.complete} for lg in self.loggers],
            "complete": self.complete,
        }

    def __str__(self) -> str:
        if self.run_id is None:
            return "ember: tracking disabled for this process (no journal, no loggers)"
        total = sum(self.records.values())
        title = (
            self.run_id
            if self.run_name in (None, self.run_id)
            else (f"{self.run_name} ({self.run_id})")
        )
        lines = [f"ember run {title}: {self.status}, {total} records in {self.run_dir}"]
        if not self.loggers:
            lines.append("  no loggers: the journal is the only record")
            return "\n".join(lines)
        rows = [["LOGGER", "STATE", "DELIVERED", "PENDING", "FAILED"]]
        for lg in self.loggers:
            rows.append([lg.label, lg.state, str(lg.delivered), str(lg.pending), str(lg.failed)])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for row in rows:
            cells = [
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=False))
            ]
            lines.append("  " + "  ".join(cells))
        for lg in self.loggers:
            if lg.error and not lg.complete:
                lines.append(f"  {lg.label}: {lg.error}")
            if lg.removed:
                lines.append(
                    f"  {lg.label}: {lg.removed} artifact(s) not delivered: their files were "
                    "removed after they were logged (e.g. rotated checkpoints)"
                )
            if lg.unsupported:
                lines.append(
                    f"  {lg.label} does not support {', '.join(lg.unsupported)}: "
                    "those records are only in the journal"
                )
        commands = self.sync_commands
        if commands:
            lines.append("complete delivery with:")
            lines += [f"  {c}" for c in commands]
        return "\n".join(lines)


def sync_command(run_dir: str | Path, provider: str, options: Mapping[str, Any]) -> str:
    """The ``ember sync`` command line that delivers ``run_dir`` to ``provider``.

    ``options`` must already be redacted; redacted values are left out (secret options
    come from the environment when the command is run).
    """
    path = str(run_dir)
    try:
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            path = rel
    except ValueError:  # another drive on Windows
        pass
    parts = ["ember", "sync", shlex.quote(path), "--to", shlex.quote(provider)]
    for key, value in options.items():
        if value == REDACTED or value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        parts += ["--option", shlex.quote(f"{key}={text}")]
    return " ".join(parts)
