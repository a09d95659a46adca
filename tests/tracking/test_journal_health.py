"""The journal stays healthy under long runs, full disks and damage: its write-ahead log
stays bounded, a full disk stops the run cleanly with everything journaled kept, and a
damaged journal is reported and skipped by ``ember runs``."""

from __future__ import annotations

from pathlib import Path

from ember.hub.tracking import Run
from ember.hub.tracking.journal import WAL_LIMIT_BYTES


def test_write_ahead_log_stays_bounded_during_a_long_run(tmp_path: Path) -> None:
    # 20k steps x 5 metrics grew the log to ~95 MB before it was bounded
    run = Run.start(tmp_path, ["csv"])
    wal = run.journal_path.with_name("journal.db-wal")
    peak = 0
    for step in range(20_000):
        run.log_metrics({f"m{i}": step * 0.1 + i for i in range(5)}, step)
        if step % 100 == 0 and wal.exists():
            peak = max(peak, wal.stat().st_size)
    report = run.finish()
    assert report.loggers[0].state == "ok"
    # generous for a loaded machine: the log is checkpointed at half the limit and
    # restarted past it; unbounded it passes 90 MB here
    assert peak < 4 * WAL_LIMIT_BYTES, f"write-ahead log reached {peak / 1e6:.1f} MB"
    assert not wal.exists() or wal.stat().st_size == 0
