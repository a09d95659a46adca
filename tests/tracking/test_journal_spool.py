"""The training thread spools packed rows (a copy into a memory map of the spool file)
instead of committing them; the rows reach the database in batches. A row is as safe as a
commit once ``log_metrics`` returns: a killed process's spooled rows are read back, moved
in when the run is resumed or synced, in sequence order with the records written
directly, each once."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ember.hub.tracking import JournalReader, JournalWriteError, Run
from ember.hub.tracking import journal as journal_module
from ember.hub.tracking.journal import _FRAME, PACKED, SPOOL_FILES, Journal, _spooled

_LOG_THEN_WAIT = """
import errno, mmap, os, sys, time
from ember.hub.tracking import Run
from ember.hub.tracking import journal
if os.environ.get("NO_MMAP"):  # a file system that cannot map files
    def refuse(*args, **kwargs):
        raise OSError(errno.ENODEV, "No such device")
    mmap.mmap = refuse
journal.INGEST_INTERVAL_S = 3600.0  # nothing moves the rows in: they stay spooled
journal.SPOOL_BYTES = 4096  # 200 rows of 64 bytes: the spool file grows twice
if len(sys.argv) > 2:  # resume that run directory, from step 200
    resume = {"id": sys.argv[2].rsplit("/", 1)[-1], "dir": sys.argv[2]}
    run = Run.start(sys.argv[1], [], resume=resume)
    steps = range(200, 300)
else:
    run = Run.start(sys.argv[1], [], name="killed")
    steps = range(200)
for step in steps:
    run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 200}, step=step)
print(run.dir, flush=True)
time.sleep(600)
"""


def _packed_rows_in_database(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "journal.db") as db:
        return db.execute("SELECT COUNT(*) FROM records WHERE kind = ?", (PACKED,)).fetchone()[0]


def _spooled_rows(path: Path) -> int:
    """How many whole frames the spool file ``path`` holds."""
    return len(_spooled([path]))


def _append_torn_frame(spool: Path) -> None:
    """Write what a kill in the middle of a copy leaves: a head and part of a body, right
    after the last whole frame."""
    buf = spool.read_bytes()
    at = 0
    while at + _FRAME.size <= len(buf) and any(buf[at : at + _FRAME.size]):
        at += _FRAME.size + _FRAME.unpack_from(buf, at)[0]
    with spool.open("r+b") as f:
        f.seek(at)
        f.write(b"\x30\x00\x00\x00\x01\x02\x03\x04" + b"\x07" * 20)


def _log_then_kill(root: Path, *resume: str, no_mmap: bool = False) -> Path:
    """Run the script above in a process, then kill it with SIGKILL; its run directory."""
    env = {**os.environ, "NO_MMAP": "1"} if no_mmap else None
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOG_THEN_WAIT, str(root), *resume],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        run_dir = Path(proc.stdout.readline().strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return run_dir


@pytest.fixture
def killed_run(tmp_path: Path) -> Path:
    """A run whose process logged 200 steps and was killed with SIGKILL, its rows still
    spooled."""
    run_dir = _log_then_kill(tmp_path / "runs")
    assert _packed_rows_in_database(run_dir) == 0  # all 200 rows are in the spool only
    assert _spooled_rows(run_dir / SPOOL_FILES[0]) == 200
    return run_dir


def test_rows_spooled_before_a_kill_are_read_back(killed_run: Path) -> None:
    with JournalReader(killed_run) as reader:
        assert [s for s, _, _ in reader.metric_series("loss")] == list(range(200))
        assert [v for _, v, _ in reader.metric_series("acc")] == [s / 200 for s in range(200)]
    assert _packed_rows_in_database(killed_run) == 200


def test_a_torn_last_frame_is_left_out_and_resume_continues_the_sequence(
    killed_run: Path,
) -> None:
    _append_torn_frame(killed_run / SPOOL_FILES[0])  # the first file takes the rows
    run = Run.start(
        killed_run.parent.parent, [], resume={"id": killed_run.name, "dir": str(killed_run)}
    )
    run.log_metrics({"loss": 0.0, "acc": 1.0}, step=200)
    run.finish()
    with JournalReader(killed_run) as reader:
        series = reader.metric_series("loss")
        rows = reader.fetch_batch(0, ["metric"], 10_000)[0]
    assert [s for s, _, _ in series] == list(range(201))
    assert [r.seq for r in rows] == list(range(1, 403))  # each record once, no gap
    assert not [n for n in SPOOL_FILES if (killed_run / n).exists()]  # closed: removed


def test_direct_writes_keep_the_sequence_and_readers_here_see_spooled_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 3600.0)
    journal = Journal.create(tmp_path, "r1", "r1", time.time())
    try:
        journal.begin_segment(None, os.getpid(), "host")
        journal.append_step(["a", "b"], [1.0, 2.0], 0, 1.0)
        journal.append_step(["a", "b"], [3.0, 4.0], 1, 2.0)
        journal.append("text", "note", 1, 2.5, {"text": "hello"})  # after the spooled rows
        journal.append_step(["a"], [5.0], 2, 3.0)
        journal.append_metrics([("c", 6.0, 2, 3.5)])
        journal.append_step(["a", "b"], [7.0, 8.0], 3, 4.0)  # spooled, not moved in yet
        assert journal.last_seq() == 9
        with JournalReader(tmp_path) as reader:  # a reader in this process drains first
            rows = reader.fetch_batch(0, ["metric", "text"], 100)[0]
        assert [(r.seq, r.name) for r in rows] == [
            (1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "note"),
            (6, "a"), (7, "c"), (8, "a"), (9, "b"),
        ]  # fmt: skip
    finally:
        journal.close()
    assert not [n for n in SPOOL_FILES if (tmp_path / n).exists()]


def test_a_spool_write_that_fails_stops_the_run_with_what_was_logged_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool file is allocated on disk before it is written through its map, so a
    full disk is an error when it grows (not a SIGBUS in the middle of a copy)."""
    monkeypatch.setattr(journal_module, "SPOOL_BYTES", 4096)
    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 3600.0)
    run = Run.start(tmp_path, [])
    run.log_metrics({"loss": 0.0}, step=0)

    def full(fd: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module, "_allocate", full)
    with pytest.raises(JournalWriteError, match="the disk is full") as failure:
        for step in range(1, 1000):
            run.log_metrics({"loss": float(step)}, step=step)
    assert step == 4096 // 56  # 56-byte rows (one metric): the first 4 KiB held 73 of them
    assert "spool file: [Errno 28] No space left on device" in str(failure.value)
    assert 'ckpt_path="last"' in str(failure.value)
    run.finish("failed")
    with JournalReader(run.dir) as reader:
        assert [(s, v) for s, v, _ in reader.metric_series("loss")] == [
            (s, float(s)) for s in range(step)
        ]
        assert reader.status()[0] == "failed"


def test_the_database_always_holds_a_prefix_of_the_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's cursor moves past what it read: a row committed before an earlier one
    would make it skip that one. Drains on the background thread race the training
    thread's appends and direct writes; a foreign reader never sees a gap."""
    import threading

    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 0.001)
    journal = Journal.create(tmp_path, "r1", "r1", time.time())
    journal.begin_segment(None, os.getpid(), "host")
    gaps: list[str] = []
    done = threading.Event()

    def watch() -> None:
        db = sqlite3.connect(tmp_path / "journal.db")
        while not done.is_set():
            taken: list[int] = []
            for seq, kind, data in db.execute("SELECT seq, kind, data FROM records ORDER BY seq"):
                n = len(data) // 8 if kind == PACKED else 1
                taken.extend(range(seq - n + 1, seq + 1))
            if taken != list(range(1, len(taken) + 1)):
                gaps.append(f"{taken[:5]}...{taken[-5:]}")
        db.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for step in range(6000):
            journal.append_step(
                ["a", "b", "c"][: 1 + step % 3], [1.0, 2.0, 3.0][: 1 + step % 3], step, 0.0
            )
            if step % 500 == 0:
                journal.append("text", "note", step, 0.0, {"text": str(step)})
    finally:
        done.set()
        watcher.join()
        journal.close()
    assert not gaps
    with JournalReader(tmp_path) as reader:
        assert [r.seq for r in reader.fetch_batch(0, ["metric", "text"], 100_000)[0]] == list(
            range(1, 6000 * 2 + 12 + 1)
        )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_leaves_the_spool_to_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data loader worker forked from the training process inherits the journal object
    with its spooled rows; draining there must neither commit them from the wrong process
    nor empty the writer's spool."""
    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 3600.0)
    journal = Journal.create(tmp_path, "r1", "r1", time.time())
    try:
        journal.begin_segment(None, os.getpid(), "host")
        journal.append_step(["loss"], [1.0], 0, 1.0)
        pid = os.fork()
        if pid == 0:  # the child: what a reader there would do
            journal.drain()
            os._exit(0)
        os.waitpid(pid, 0)
        assert _packed_rows_in_database(tmp_path) == 0
        assert _spooled_rows(tmp_path / SPOOL_FILES[0]) == 1
    finally:
        journal.close()
    with JournalReader(tmp_path) as reader:
        assert reader.metric_series("loss") == [(0, 1.0, 1.0)]


def test_spooled_rows_a_failed_write_took_along_stay_for_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A direct write commits the spooled rows with it; when that transaction fails (a
    full disk), the rows are in the spool only, and closing (whose drain meets the same
    full disk) keeps the spool for the next open instead of removing it."""
    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 3600.0)
    journal = Journal.create(tmp_path, "r1", "r1", time.time())
    journal.begin_segment(None, os.getpid(), "host")
    journal.append_step(["loss"], [1.0], 0, 1.0)
    full = sqlite3.OperationalError("database or disk is full")

    def refused(seq: int) -> int:
        raise full

    def still_full(rows: list[Any]) -> None:
        raise journal._failed(full)

    with pytest.raises(JournalWriteError, match="the disk is full"):
        journal._direct(refused)
    monkeypatch.setattr(journal, "_ingest", still_full)
    journal.close()
    assert _spooled_rows(tmp_path / SPOOL_FILES[0]) == 1
    with JournalReader(tmp_path) as reader:
        assert reader.metric_series("loss") == [(0, 1.0, 1.0)]


@pytest.mark.parametrize("by", ["drain", "direct write"])
def test_a_spool_that_cannot_be_read_back_fails_the_journal_and_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by: str
) -> None:
    """The training thread keeps no copy of a spooled row: the drain reads the rows back
    from the spool. An I/O error there fails the journal like a failed commit (the next
    write raises :class:`JournalWriteError`), and the spool is kept for the next open."""
    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 3600.0)
    journal = Journal.create(tmp_path, "r1", "r1", time.time())
    journal.begin_segment(None, os.getpid(), "host")
    journal.append_step(["loss"], [1.0], 0, 1.0)

    def unreadable(self: Any) -> list[Any]:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(journal_module._SpoolFile, "rows", unreadable)
    if by == "drain":
        assert journal.drain() is False
    else:
        with pytest.raises(JournalWriteError, match="Input/output error"):
            journal.append("text", "note", 0, 1.0, {"text": "x"})
    with pytest.raises(JournalWriteError, match="Input/output error"):
        journal.append_step(["loss"], [2.0], 1, 2.0)
    journal.close()
    monkeypatch.undo()
    assert _spooled_rows(tmp_path / SPOOL_FILES[0]) == 1
    with JournalReader(tmp_path) as reader:
        assert reader.metric_series("loss") == [(0, 1.0, 1.0)]


def test_a_torn_frame_does_not_hide_what_the_resumed_process_spools(killed_run: Path) -> None:
    """Regression: a resumed process appended its frames after the torn one the kill left,
    where reading stops, so a second kill lost them."""
    _append_torn_frame(killed_run / SPOOL_FILES[0])
    _log_then_kill(killed_run.parent.parent, str(killed_run))  # steps 200..299, killed
    with JournalReader(killed_run) as reader:
        assert [s for s, _, _ in reader.metric_series("loss")] == list(range(300))


def test_a_reader_here_waits_for_a_drain_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a drain takes the spooled rows, then commits them; a reader in this
    process that queried in between found nothing spooled and nothing committed, so a
    delivery worker ran an escape-hatch call (or answered a flush) before rows logged
    ahead of it."""
    import threading

    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 3600.0)
    journal = Journal.create(tmp_path, "r1", "r1", time.time())
    try:
        journal.begin_segment(None, os.getpid(), "host")
        journal.append_step(["a", "b"], [1.0, 2.0], 0, 1.0)
        taken, commit = threading.Event(), threading.Event()
        ingest = journal._ingest

        def slow_ingest(rows: list[Any]) -> None:
            taken.set()
            commit.wait(30)
            ingest(rows)

        monkeypatch.setattr(journal, "_ingest", slow_ingest)
        drain = threading.Thread(target=journal.drain)
        drain.start()
        assert taken.wait(30)  # taken from the spool, not committed
        assert not journal._spools[journal._spool_at].end
        threading.Timer(0.2, commit.set).start()
        with JournalReader(tmp_path) as reader:
            rows = reader.fetch_batch(0, ["metric"], 100)[0]
        drain.join()
        assert [(r.name, r.value) for r in rows] == [("a", 1.0), ("b", 2.0)]
    finally:
        journal.close()


@pytest.mark.parametrize("fallocate", ["missing", "unsupported"])
def test_spool_files_grow_where_posix_fallocate_is_missing_or_unsupported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallocate: str
) -> None:
    """macOS and Windows have no ``posix_fallocate``, and some file systems refuse it:
    the spool file is then allocated by writing zeros, and grows the same way."""
    if fallocate == "missing":
        monkeypatch.delattr(os, "posix_fallocate", raising=False)
    else:

        def unsupported(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

        monkeypatch.setattr(os, "posix_fallocate", unsupported)
    monkeypatch.setattr(journal_module, "SPOOL_BYTES", 4096)
    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 3600.0)
    journal = Journal.create(tmp_path, "r1", "r1", time.time())
    try:
        journal.begin_segment(None, os.getpid(), "host")
        for step in range(200):  # 64-byte rows: 12.8 KB, the file doubles twice
            journal.append_step(["loss", "acc"], [float(step), 0.5], step, 1.0)
        spool = tmp_path / SPOOL_FILES[0]
        assert spool.stat().st_size == 16384
        assert _spooled_rows(spool) == 200
    finally:
        journal.close()
    with JournalReader(tmp_path) as reader:
        assert [v for _, v, _ in reader.metric_series("loss")] == [float(s) for s in range(200)]


def test_a_file_system_that_cannot_map_files_gets_the_spool_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some network and FUSE mounts cannot map files: the spool is then written with
    system calls, as durable against a kill, and emptied the same way."""
    run_dir = _log_then_kill(tmp_path / "killed", no_mmap=True)
    assert _packed_rows_in_database(run_dir) == 0
    assert _spooled_rows(run_dir / SPOOL_FILES[0]) == 200
    with JournalReader(run_dir) as reader:
        assert [s for s, _, _ in reader.metric_series("loss")] == list(range(200))

    import mmap

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(mmap, "mmap", refuse)
    monkeypatch.setattr(journal_module, "INGEST_INTERVAL_S", 3600.0)
    journal = Journal.create(tmp_path / "here", "r1", "r1", time.time())
    try:
        journal.begin_segment(None, os.getpid(), "host")
        journal.append_step(["loss"], [1.0], 0, 1.0)
        journal.drain()  # committed: the first file is zeroed, the second takes the rows
        assert _spooled_rows(tmp_path / "here" / SPOOL_FILES[0]) == 0
        journal.append_step(["loss"], [2.0], 1, 2.0)
        assert _spooled_rows(tmp_path / "here" / SPOOL_FILES[1]) == 1
    finally:
        journal.close()
    with JournalReader(tmp_path / "here") as reader:
        assert reader.metric_series("loss") == [(0, 1.0, 1.0), (1, 2.0, 2.0)]
