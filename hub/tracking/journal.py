"""The run journal: the append-only, crash-safe local record of a run.

One SQLite database per run directory (``journal.db``) in WAL mode with
``synchronous=NORMAL``; each flush is one transaction. Why SQLite: see
docs/tracking.md, "Why the journal is SQLite". The journal holds the run's identity,
its segments (one per start or resume), every record (hyperparameters, metrics, texts,
image and artifact references) in one sequence, events (configuration, plugins, status) and one
delivery cursor per logger.

Records are never updated or deleted. Resuming from a checkpoint at step ``S`` opens a
new segment whose ``from_step`` is ``S``; a record of an earlier segment with a step
greater than ``S`` is superseded. The ``live_records`` view applies that rule (for
people reading the file with the sqlite3 shell); :class:`JournalReader` applies it with
one plain condition per resume, which is much cheaper.

``records`` has no index besides its sequence number: an index on the metric name costs
every flush several scattered page writes (measured: 3-5x the insert cost), while the
readers (``ember runs``) can afford one table scan.

A flush of several metrics at one step (the trainer's every flush) is one *packed* row of
kind ``metrics``: its ``data`` holds the values as little-endian float64, its ``name``
the id of their names in ``metric_names``, and its ``seq`` the last of the consecutive
sequence numbers its values take (the row reserves one per value, so every metric keeps
its own ``seq``). One row instead of one per metric makes a flush of 50 metrics about 5
times cheaper; the readers unpack such rows, so everything that reads a journal sees one
record per metric either way.

The spool: the training thread does not commit a packed row itself. It appends the row,
framed with its length and a CRC-32, to a spool file next to the journal by copying it
into a shared memory map of the file (no system call: a ``write`` per row cost a training
step 10-20 µs, a SQLite commit 15-40), packing the values straight into the frame; once
the copy is done the row is in the OS page cache and survives the process being killed,
as a commit does. The training thread keeps no other copy: the rows reach the database,
read back from the spool, in batches, one transaction each (:meth:`Journal.drain`): before
a delivery worker reads, before any other write, when a reader in this process queries,
on a timer (:data:`INGEST_INTERVAL_S`) and at close. Sequence numbers are given out when
a row is spooled, and the database always holds a prefix of them, so a worker's cursor
never passes a row still in the spool. Two spool files take turns, so that a batch is
moved while the training thread appends to the other file; each is emptied (zeroed) once
its rows are committed. The files are allocated on disk before they are mapped and never
shrink while open, so a full disk is an ``OSError`` when a file grows, never a ``SIGBUS``
in the middle of a copy. Opening a journal (resume, ``ember sync``) and a reader meeting a
killed run's spool move the spooled rows in first (``INSERT OR IGNORE``: moving one twice
is harmless); a spool file read that way is emptied when a writer next opens it.
"""

from __future__ import annotations

import array
import contextlib
import errno
import functools
import json
import math
import mmap
import os
import shutil
import sqlite3
import struct
import sys
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

from ember.hub.tracking.logger import MetricRecord, PackedStep

JOURNAL_FILE = "journal.db"
#: space set aside next to the journal while it is open, given back when a write fails
#: so that the run can still record that it failed and close its journal cleanly
RESERVE_FILE = "journal.reserve"
RESERVE_BYTES = 256 * 1024
#: 2: packed metric rows (kind ``metrics``) and the ``metric_names`` table
FORMAT_VERSION = 2
#: the spool files the training thread appends packed rows to (see the module docstring)
SPOOL_FILES = ("journal.spool-a", "journal.spool-b")
#: how often the background thread moves spooled rows into the database
INGEST_INTERVAL_S = 0.25
#: how often the background thread folds the WAL back into the database file
CHECKPOINT_INTERVAL_S = 2.0
#: the write-ahead log is kept near this size: past half of it the background thread
#: checkpoints at once instead of on its timer, and past all of it the checkpoint also
#: restarts the log (waiting briefly for readers) and truncates the file back to it
WAL_LIMIT_BYTES = 8 * 1024 * 1024
#: the page size of a new journal (SQLite's default is 4096)
PAGE_SIZE = 1024
#: writes between two looks at the size of the write-ahead log (a ``stat`` per flush
#: would cost the training thread more than the flush's own statement)
WAL_CHECK_EVERY = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    from_step INTEGER,
    pid INTEGER,
    host TEXT
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    segment INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER,
    value REAL,
    wall_time REAL NOT NULL,
    data TEXT
);
CREATE TABLE IF NOT EXISTS metric_names (id INTEGER PRIMARY KEY, names TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    segment INTEGER,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    data TEXT
);
CREATE TABLE IF NOT EXISTS cursors (
    logger TEXT PRIMARY KEY,
    provider TEXT,
    options TEXT,
    kinds TEXT,
    seq INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    state TEXT,
    error TEXT,
    tracker_ref TEXT,
    finalized TEXT,
    updated_at REAL
);
CREATE VIEW IF NOT EXISTS live_records AS
SELECT r.* FROM records AS r
WHERE NOT EXISTS (
    SELECT 1 FROM segments AS g
    WHERE g.id > r.segment AND g.from_step IS NOT NULL AND r.step > g.from_step
);
"""

#: record kinds, in the order a report lists them
KINDS: tuple[str, ...] = ("hparams", "metric", "text", "image", "artifact")
#: the stored kind of a packed row: the metrics of one flush (see the module docstring)
PACKED = "metrics"
#: the Capabilities field that governs each record kind
CAPABILITY_OF_KIND = {
    "hparams": "hyperparams",
    "metric": "metrics",
    "text": "text",
    "image": "images",
    "artifact": "artifacts",
}


class JournalError(RuntimeError):
    """The journal is missing, foreign or unreadable."""


class JournalDamagedError(JournalError):
    """A page of the journal is damaged, so the run cannot be read."""


class JournalWriteError(JournalError):
    """The journal could not be written (a full disk, an I/O error): the run must stop.
    What was journaled before stays intact; the failed transaction was rolled back."""


class Row(NamedTuple):
    """One record read back from the journal."""

    seq: int
    segment: int
    kind: str
    name: str
    step: int | None
    value: float | None
    wall_time: float
    data: Any


def journal_path(run_dir: str | Path) -> Path:
    """The journal file of ``run_dir``."""
    return Path(run_dir) / JOURNAL_FILE


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


_BIG_ENDIAN = sys.byteorder == "big"
#: moves spooled packed rows in; a row moved already (same ``seq``) is left as it is
_INGEST_SQL = (
    "INSERT OR IGNORE INTO records (seq, segment, kind, name, step, value, wall_time, data) "
    f"VALUES (?, ?, '{PACKED}', ?, ?, NULL, ?, ?)"
)
#: the size a spool file is allocated with when its writer opens it (doubled when full)
SPOOL_BYTES = 64 * 1024
_SPOOL_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
#: a spool frame's head: the length of its body and the body's CRC-32
_FRAME = struct.Struct("<II")
#: a spooled row's body: seq, segment, names id, step, wall time; the packed values follow
_SPOOLED = struct.Struct("<qqqqd")
#: the journals open for writing in this process, by real path: a reader here drains one
#: before it queries, so that it sees every row logged before the query
_LIVE: weakref.WeakValueDictionary[str, Journal] = weakref.WeakValueDictionary()


def unpack_values(data: bytes) -> array.array[float]:
    """The values of a packed row."""
    values = array.array("d")
    values.frombytes(data)
    if _BIG_ENDIAN:
        values.byteswap()
    return values


#: how many records a stored row holds: a packed row, one per value
_COUNT = f"SUM(CASE WHEN kind = '{PACKED}' THEN length(data) / 8 ELSE 1 END)"


def _stored_kinds(kinds: Sequence[str]) -> list[str]:
    """The stored kinds that hold records of ``kinds`` (metrics are also packed)."""
    return [*kinds, PACKED] if "metric" in kinds else list(kinds)


def _row(raw: Sequence[Any]) -> Row:
    seq, segment, kind, name, step, value, wall_time, data = raw
    if kind == "metric":
        if data is None:  # a finite value: the columns are the row (the common case)
            return Row._make(raw)
        return Row(seq, segment, kind, name, step, float(data), wall_time, None)
    payload = json.loads(data) if data is not None else None
    return Row(seq, segment, kind, name, step, value, wall_time, payload)


class Journal:
    """The writing side of a run journal: one per run, held by global rank zero.

    Thread-safe: the training thread appends records, delivery workers update their
    cursors; a lock serialises them on one connection. Packed rows go through the spool
    (see the module docstring). A background thread moves spooled rows in and
    checkpoints the WAL, so that the training thread pays for neither.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: the connection (innermost of the three locks)
        self.lock = threading.Lock()
        #: the spool and the sequence counter (taken before ``lock``)
        self._spool_lock = threading.Lock()
        #: one drain at a time, so that the database always holds a prefix (outermost)
        self._drain_lock = threading.Lock()
        self._conn = _connect(path)
        self._spool_paths = [path.with_name(name) for name in SPOOL_FILES]
        try:
            # every flush commits the page it appends to, whole: small pages write (and
            # checkpoint) a quarter of the bytes, which measurably cuts the stalls of the
            # training thread's flushes; a no-op on an existing journal
            self._conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            self._conn.executescript(_SCHEMA)
            # rows a killed process left in the spool come first; the files are emptied
            # when this journal first spools (``ember sync`` spools nothing, so it leaves
            # the spool of a run still writing alone; moving a row twice is harmless)
            _move_spooled(self._conn, self._spool_paths)
            #: the id (as stored in a packed row's ``name``) of each set of names
            self._name_ids: dict[tuple[str, ...], int] = {
                tuple(json.loads(names)): int(i)
                for i, names in self._conn.execute("SELECT id, names FROM metric_names")
            }
            (last,) = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
        except BaseException:
            self._conn.close()
            raise
        #: the sequence number the next record takes
        self._next_seq = int(last) + 1
        #: the spool files, opened on the first row spooled (``ember sync`` spools none)
        self._spools = [_SpoolFile(p) for p in self._spool_paths]
        #: the file appends go to; the spooled rows not yet in the database are all in it
        self._spool_at = 0
        #: a batch could not be moved in: its spool file must outlive this object
        self._unmoved = False
        #: a process forked from this one (a data loader worker) inherits this object, and
        #: must not move rows in or empty the spool of the process that wrote them
        self._pid = os.getpid()
        self.segment = 0
        self._writes = 0
        self._closed = False
        self._failure: JournalWriteError | None = None
        self._reserve = path.with_name(RESERVE_FILE)
        self._set_aside()
        self._wal = path.with_name(path.name + "-wal")
        self._dirty = threading.Event()
        self._urgent = threading.Event()
        self._stop = threading.Event()
        _LIVE[os.path.realpath(path)] = self
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="ember-journal-checkpoint", daemon=True
        )
        self._checkpointer.start()

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, run_dir: str | Path, run_id: str, name: str, created_at: float) -> Journal:
        """Create the journal of a new run in ``run_dir``."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = journal_path(run_dir)
        if path.exists():
            raise JournalError(
                f"{path} already exists: a run directory holds one run. Resume it with "
                "resume=..., or choose another run id"
            )
        for stale in SPOOL_FILES:  # left by a journal deleted by hand: not this run's
            with contextlib.suppress(FileNotFoundError):
                (run_dir / stale).unlink()
        try:
            journal = cls(path)
        except sqlite3.Error as exc:
            raise JournalWriteError(_write_failure_message(path, exc)) from None
        with journal.lock:
            try:
                journal._conn.executemany(
                    "INSERT INTO run (key, value) VALUES (?, ?)",
                    [
                        ("id", run_id),
                        ("name", name),
                        ("created_at", repr(created_at)),
                        ("format", str(FORMAT_VERSION)),
                    ],
                )
            except sqlite3.Error as exc:
                journal._failed(exc)
        if journal.failure is not None:
            journal.close()
            raise journal.failure
        return journal

    @classmethod
    def open(cls, run_dir: str | Path) -> Journal:
        """Open an existing run's journal for writing (resume, ``ember sync``); rows a
        killed process left in the spool are moved in first."""
        path = journal_path(run_dir)
        _check_journal(path)
        try:
            return cls(path)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path} is not a readable ember run journal: {exc}") from exc

    # ------------------------------------------------------------------ writing
    def begin_segment(self, from_step: int | None, pid: int, host: str) -> int:
        """Start a segment (a start or a resume); records of earlier segments past
        ``from_step`` become superseded."""
        with self.lock:
            cur = self._conn.execute(
                "INSERT INTO segments (started_at, from_step, pid, host) VALUES (?, ?, ?, ?)",
                (time.time(), from_step, pid, host),
            )
            self.segment = int(cur.lastrowid or 0)
        self._written()
        return self.segment

    def append_metrics(self, rows: Iterable[tuple[str, float, int, float]]) -> None:
        """Append ``(name, value, step, wall_time)`` rows in one transaction."""
        seg = self.segment
        finite = math.isfinite
        params = [
            (seg, name, step, value, wall, None)
            if finite(value)
            else (seg, name, step, None, wall, repr(value))  # SQLite stores NaN as NULL
            for name, value, step, wall in rows
        ]

        def insert(first: int) -> int:
            self._conn.executemany(
                "INSERT INTO records (seq, segment, kind, name, step, value, wall_time, data) "
                "VALUES (?, ?, 'metric', ?, ?, ?, ?, ?)",
                [(first + i, *row) for i, row in enumerate(params)],
            )
            return first + len(params)

        self._direct(insert)

    def append_step(
        self, names: Sequence[str], values: Iterable[float], step: int, wall_time: float
    ) -> None:
        """Append the values of ``names`` (numbers, non-finite ones included) logged at
        ``step``: one packed row, spooled (see the module docstring); a ``TypeError``
        when ``values`` are not as many numbers as there are names.

        The hot path of a run that logs metrics every step: the names are stored once per
        distinct set, and the row is packed straight from ``values`` and copied into the
        spool's memory map. The drain reads the rows back from the spool, so the training
        thread keeps no copy of them.
        """
        if not names:
            return
        key = tuple(names)
        body = _packed_row(len(key))
        with self._spool_lock:
            if self._closed or self._failure is not None:
                self._check_open()
            names_id = self._name_ids.get(key)
            if names_id is None:
                names_id = self._add_names(key)
            seq = self._next_seq + len(key) - 1
            try:
                row = body.pack(seq, self.segment, names_id, step, wall_time, *values)
            except (struct.error, OverflowError) as exc:
                raise TypeError(
                    f"append_step: {len(key)} names {key!r} need as many numbers and an int "
                    f"step ({exc})"
                ) from None
            try:
                self._spools[self._spool_at].append(row)
            except OSError as exc:
                raise self._failed(exc) from None
            self._next_seq = seq + 1

    def append(self, kind: str, name: str, step: int | None, wall_time: float, data: Any) -> None:
        """Append one non-metric record (hyperparameters, text, artifact reference)."""
        payload = json.dumps(data, default=str)

        def insert(seq: int) -> int:
            self._conn.execute(
                "INSERT INTO records (seq, segment, kind, name, step, value, wall_time, data) "
                "VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
                (seq, self.segment, kind, name, step, wall_time, payload),
            )
            return seq + 1

        self._direct(insert)

    def last_seq(self) -> int:
        """The sequence number of the newest record (0 when empty)."""
        with self._spool_lock:
            self._check_open()
            return self._next_seq - 1

    def drain(self) -> bool:
        """Move the spooled rows into the database, in one transaction; False when that
        failed (the failure is the journal's: the training thread meets it at its next
        write, and the rows stay in the spool for the next open). Never raises."""
        with self._drain_lock:
            with self._spool_lock:
                spool = self._spools[self._spool_at]
                if not spool.end or self._closed or self._pid != os.getpid():
                    return True
                self._spool_at ^= 1  # appends go on in the other (empty) file meanwhile
            with self.lock:
                try:
                    self._ingest(spool.rows())
                except (JournalWriteError, OSError) as exc:
                    if isinstance(exc, OSError):  # the spool could not be read back
                        self._failed(exc)
                    self._unmoved = True
                    return False
            spool.empty()
        self._written()
        return True

    def event(self, type_: str, data: Any) -> None:
        """Append an event (``config``, ``plugins``, ``status``, ``warning``, ...), after
        the spooled rows.

        After a failed write only a ``status`` event is still accepted: the space set
        aside when the journal was opened is given back for it, so that a run stopped by
        a full disk is still recorded as failed.
        """
        payload = json.dumps(data, default=str)
        sql = "INSERT INTO events (segment, time, type, data) VALUES (?, ?, ?, ?)"
        self.drain()
        with self.lock:
            try:
                self._check_open()
                self._write(sql, (self.segment, time.time(), type_, payload))
            except JournalWriteError:
                if type_ != "status":
                    raise
                # the final status must not fail the caller: write it into the reserve
                self._give_back_reserve()
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute(sql, (self.segment, time.time(), type_, payload))
                return
        self._written()

    def save_cursor(self, logger: str, **fields: Any) -> bool:
        """Create or update a logger's delivery cursor; False once the journal is closed
        (a worker abandoned at the deadline may return from its call after that)."""
        columns = {"updated_at": time.time(), **fields}
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        with self.lock:
            if self._closed or self._failure is not None:
                return False
            try:
                self._write(
                    f"INSERT INTO cursors (logger, {names}) VALUES (?, {marks}) "
                    f"ON CONFLICT (logger) DO UPDATE SET {updates}",
                    (logger, *columns.values()),
                )
            except JournalWriteError:
                # the training thread meets the same failure at its next write and stops
                return False
        self._written()
        return True

    @property
    def failure(self) -> JournalWriteError | None:
        """The write failure that stopped this journal, if one did."""
        return self._failure

    def _direct(self, insert: Callable[[int], int]) -> None:
        """Run ``insert(first seq)`` (it returns the next free seq) after the spooled rows,
        in one transaction with them, with the spool held still."""
        with self._drain_lock, self._spool_lock:
            self._check_open()
            spool = self._spools[self._spool_at]
            with self.lock:
                try:
                    with _transaction(self._conn) as conn:
                        if spool.end:
                            conn.executemany(_INGEST_SQL, spool.rows())
                        next_seq = insert(self._next_seq)
                except (sqlite3.Error, OSError) as exc:
                    self._unmoved = self._unmoved or bool(spool.end)  # they stay in the spool
                    raise self._failed(exc) from None
            self._next_seq = next_seq
            spool.empty()
        self._written()

    def _add_names(self, key: tuple[str, ...]) -> int:
        """Store a new set of metric names (committed before any row that refers to it)."""
        with self.lock:
            try:
                cur = self._conn.execute(
                    "INSERT INTO metric_names (names) VALUES (?)", (json.dumps(key),)
                )
            except sqlite3.Error as exc:
                raise self._failed(exc) from None
        names_id = self._name_ids[key] = int(cur.lastrowid)  # type: ignore[arg-type]
        return names_id

    def _ingest(self, rows: list[tuple[int, int, str, int, float, bytes]]) -> None:
        """Commit spooled ``rows`` (the caller holds ``lock``). A full disk gets the reserve
        back once: these rows were promised to the caller when they were spooled."""
        for attempt in range(2):
            try:
                with _transaction(self._conn) as conn:
                    conn.executemany(_INGEST_SQL, rows)
                return
            except sqlite3.Error as exc:
                if attempt or not self._reserve.exists():
                    raise self._failed(exc) from None
                self._give_back_reserve()

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"the journal {self.path} is closed; the run has finished")
        if self._failure is not None:
            raise self._failure

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        """One autocommitted statement (the caller holds the lock)."""
        try:
            self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: sqlite3.Error | OSError) -> JournalWriteError:
        """Remember a failed write (SQLite rolled it back) as the journal's failure."""
        if self._failure is None:
            self._failure = JournalWriteError(_write_failure_message(self.path, exc))
        return self._failure

    # ------------------------------------------------------------------ reserve space
    def _set_aside(self) -> None:
        """Write the reserve file; on a disk already too full for it, go without."""
        try:
            with open(self._reserve, "wb") as f:
                f.write(bytes(RESERVE_BYTES))
        except OSError:
            with contextlib.suppress(OSError):
                self._reserve.unlink()

    def _give_back_reserve(self) -> None:
        with contextlib.suppress(OSError):
            self._reserve.unlink()

    # ------------------------------------------------------------------ WAL upkeep
    def wal_size(self) -> int:
        """The size of the write-ahead log file in bytes (0 when there is none)."""
        try:
            return os.stat(self._wal).st_size
        except OSError:
            return 0

    def _written(self) -> None:
        """After a write: let the checkpointer know, at once when the log is getting big
        (looked at every :data:`WAL_CHECK_EVERY` writes: a write adds a few pages)."""
        if not self._dirty.is_set():
            self._dirty.set()
        self._writes += 1
        if self._writes % WAL_CHECK_EVERY == 0 and self.wal_size() > WAL_LIMIT_BYTES // 2:
            self._urgent.set()

    def _checkpoint_loop(self) -> None:
        conn = _connect(self.path)
        # a restart waits for readers with this timeout, so the writer waits at most that
        conn.execute("PRAGMA busy_timeout = 250")
        next_checkpoint = time.monotonic() + CHECKPOINT_INTERVAL_S
        try:
            while not self._stop.is_set():
                urgent = self._urgent.wait(INGEST_INTERVAL_S)
                if self._stop.is_set():
                    break
                self.drain()  # for a run no delivery worker reads
                if not urgent and time.monotonic() < next_checkpoint:
                    continue
                self._urgent.clear()
                next_checkpoint = time.monotonic() + CHECKPOINT_INTERVAL_S
                if not self._dirty.is_set():
                    continue
                self._dirty.clear()
                # PASSIVE never blocks the writer: the fsync happens here, not in training.
                # Readers that keep reading (delivery workers) can keep a PASSIVE checkpoint
                # from ever letting the log start over; past the limit, TRUNCATE makes it.
                mode = "TRUNCATE" if self.wal_size() > WAL_LIMIT_BYTES else "PASSIVE"
                with contextlib.suppress(sqlite3.Error):
                    conn.execute(f"PRAGMA wal_checkpoint({mode})")
        finally:
            conn.close()

    def close(self) -> None:
        """Move the spooled rows in, checkpoint and close; the WAL file is folded back and
        removed, and so are the spool files (kept when rows could not be moved in)."""
        if self._closed:
            return
        self._stop.set()
        self._urgent.set()
        self._checkpointer.join()
        self.drain()
        with self._drain_lock, self._spool_lock, self.lock:
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._give_back_reserve()
            opened = [spool for spool in self._spools if spool.opened]
            spooled = any(spool.end for spool in opened)  # a forked process left them
            for spool in opened:
                spool.close()
            if opened and not (self._unmoved or spooled):
                for spool in self._spool_paths:
                    with contextlib.suppress(OSError):
                        spool.unlink()
        _LIVE.pop(os.path.realpath(self.path), None)


class _SpoolFile:
    """One spool file, written through a shared memory map of it (see the module
    docstring): appending a frame is a copy, no system call. On a file system that
    cannot map files (some network and FUSE mounts) it is written with ``pwrite``
    instead. Used under the journal's spool lock, or by a drain on the file the training
    thread is not appending to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        #: the bytes allocated to the file
        self._size = 0
        #: where the next frame goes; the bytes before it are this file's frames
        self.end = 0

    @property
    def opened(self) -> bool:
        """Whether this file was opened for writing."""
        return self._fd is not None

    def append(self, body: bytes) -> None:
        """Frame ``body`` and copy it after the last frame; an ``OSError`` when the file
        cannot grow. The head goes first: a process killed before the body is whole
        leaves a frame whose CRC does not match, which ends the file for a reader."""
        at = self.end
        end = at + _FRAME.size + len(body)
        if end > self._size:
            self._grow(end)
        if self._map is not None:
            _FRAME.pack_into(self._map, at, len(body), zlib.crc32(body))
            self._map[at + _FRAME.size : end] = body
        else:
            _write_at(self._fd, _FRAME.pack(len(body), zlib.crc32(body)) + body, at)  # type: ignore[arg-type]
        self.end = end

    def rows(self) -> list[tuple[int, int, str, int, float, bytes]]:
        """The rows of the frames appended since the file was last emptied."""
        if self._map is not None:
            return _frames(self._map[: self.end])
        return _frames(self.path.read_bytes()[: self.end])

    def _grow(self, needed: int) -> None:
        """Open (the first time) or enlarge the file (and its map) to hold ``needed``
        bytes. A file left by a killed process was moved in when the journal opened: its
        old frames are zeroed, so that a torn one cannot hide the frames written after it."""
        size = max(SPOOL_BYTES, 2 * self._size)
        if self._fd is None:
            fd = os.open(self.path, _SPOOL_FLAGS, 0o644)
            try:
                stale = os.fstat(fd).st_size
                size = max(size, stale)
                while size < needed:
                    size *= 2
                _allocate(fd, size)
                self._map = _map_file(fd, size)
            except BaseException:
                os.close(fd)
                raise
            self._fd, self._size = fd, size
            if stale:
                self._zero(stale)
            return
        while size < needed:
            size *= 2
        _allocate(self._fd, size)
        if self._map is not None:
            # a new map rather than ``resize``, which needs ``mremap`` (not on macOS); the
            # frames are in the file, so the new map holds them
            bigger = mmap.mmap(self._fd, size)
            self._map.close()
            self._map = bigger
        self._size = size

    def _zero(self, n: int) -> None:
        if self._map is not None:
            self._map[:n] = bytes(n)
        else:
            _write_at(self._fd, bytes(n), 0)  # type: ignore[arg-type]

    def empty(self) -> None:
        """Zero the frames, once their rows are committed (a reader stops at a zero head;
        a failure leaves them in, and moving a row twice is harmless)."""
        if self.end:
            with contextlib.suppress(OSError):
                self._zero(self.end)
        self.end = 0

    def close(self) -> None:
        """Unmap and close the file (its content stays on disk)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _map_file(fd: int, size: int) -> mmap.mmap | None:
    """A shared map of the first ``size`` bytes of ``fd``; None where the file system
    cannot map files."""
    try:
        return mmap.mmap(fd, size)
    except (OSError, ValueError):
        return None


def _allocate(fd: int, size: int) -> None:
    """Make the file ``fd`` at least ``size`` bytes long with its disk blocks allocated,
    so that a store through its memory map never meets a full disk (that would be a
    ``SIGBUS``, not an error): a full disk raises ``OSError`` here instead."""
    fallocate = getattr(os, "posix_fallocate", None)  # not on macOS and Windows
    if fallocate is not None:
        try:
            fallocate(fd, 0, size)
            return
        except OSError as exc:  # a file system without it: write the zeros instead
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    have = os.fstat(fd).st_size
    if have < size:
        _write_at(fd, bytes(size - have), have)


def _write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (a regular file writes less only when full)."""
    view = memoryview(data)
    if not hasattr(os, "pwrite"):  # Windows
        os.lseek(fd, offset, os.SEEK_SET)
        while view:
            view = view[os.write(fd, view) :]
        return
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


@functools.cache
def _packed_row(count: int) -> struct.Struct:
    """The body of a spooled row of ``count`` values: :data:`_SPOOLED`, then the values
    as little-endian float64 (the ``data`` of a packed row)."""
    return struct.Struct(_SPOOLED.format + "d" * count)


def _frames(buf: bytes) -> list[tuple[int, int, str, int, float, bytes]]:
    """The rows of the whole frames at the start of ``buf``, as the database takes them
    (a zero head, or a torn frame left by a process killed in the middle of a copy,
    ends them)."""
    rows = []
    at = 0
    while at + _FRAME.size <= len(buf):
        length, crc = _FRAME.unpack_from(buf, at)
        body = buf[at + _FRAME.size : at + _FRAME.size + length]
        if length < _SPOOLED.size or len(body) != length or zlib.crc32(body) != crc:
            break
        seq, segment, names_id, step, wall_time = _SPOOLED.unpack_from(body)
        rows.append((seq, segment, str(names_id), step, wall_time, body[_SPOOLED.size :]))
        at += _FRAME.size + length
    return rows


def _spooled(paths: Sequence[Path]) -> list[tuple[int, int, str, int, float, bytes]]:
    """The whole rows in the spool files, in sequence order."""
    rows = []
    for path in paths:
        try:
            rows += _frames(path.read_bytes())
        except FileNotFoundError:
            continue
    rows.sort()
    return rows


def _move_spooled(conn: sqlite3.Connection, paths: Sequence[Path]) -> None:
    """Commit the rows of the spool files ``paths`` (those already in are left alone)."""
    rows = _spooled(paths)
    if rows:
        with _transaction(conn):
            conn.executemany(_INGEST_SQL, rows)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One transaction on ``conn`` (an autocommit connection): committed when the block
    ends, rolled back when it raises."""
    conn.execute("BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _write_failure_message(path: Path, exc: sqlite3.Error | OSError) -> str:
    """One paragraph: what failed, what is safe, what to do."""
    detail = str(exc)
    source = "SQLite" if isinstance(exc, sqlite3.Error) else "the spool file"
    # SQLite reports some ENOSPC failures (a WAL frame, the shared memory) as I/O errors
    full = "full" in detail.lower() or getattr(exc, "errno", None) == errno.ENOSPC
    if not full:
        with contextlib.suppress(OSError):
            full = shutil.disk_usage(path.parent).free < 1024 * 1024
    cause = "the disk is full" if full else "the disk refused the write"
    fix = "Free some space on that disk" if full else "Check that the disk is healthy and writable"
    return (
        f"ember could not write to the run journal {path}: {cause} ({source}: {detail}). "
        "Training stopped here and the run is marked failed; everything journaled before "
        f"this point is intact (see `ember runs show {path.parent}`). {fix}, then resume "
        'from the last checkpoint (ckpt_path="last").'
    )


def _holds_frames(spool: Path) -> bool:
    """Whether the spool file ``spool`` begins with a frame (an empty one is all zeros)."""
    try:
        with open(spool, "rb") as f:
            return any(f.read(_FRAME.size))
    except OSError:
        return False


def _move_foreign_spool(path: Path) -> None:
    """Move in the rows another process spooled (a killed one, or one still writing:
    moving a row twice is harmless), so that a reader sees every row that was logged;
    best effort (a read-only copy of a run is read as it is)."""
    spools = [path.with_name(name) for name in SPOOL_FILES]
    if not any(map(_holds_frames, spools)):
        return
    with contextlib.suppress(sqlite3.Error, OSError):
        conn = _connect(path)
        try:
            _move_spooled(conn, spools)
        finally:
            conn.close()


def _check_journal(path: Path) -> None:
    # Only stat the file: opening and closing it with a second descriptor would drop
    # the POSIX locks SQLite holds on it in this process (see SQLite's "How To Corrupt").
    # SQLite itself reports a foreign file when the journal is first queried.
    if not path.is_file():
        hint = "" if path.parent.is_dir() else f" (no directory {path.parent})"
        raise JournalError(f"no run journal at {path}{hint}; pass a run directory")


class JournalReader:
    """The reading side: ``ember runs``, ``ember sync`` and the delivery workers.

    Works while the run is being written (WAL readers never block the writer) and after
    the writing process was killed.
    """

    def __init__(self, run_dir_or_path: str | Path) -> None:
        path = Path(run_dir_or_path)
        if path.is_dir():
            path = journal_path(path)
        _check_journal(path)
        self.path = path
        self.run_dir = path.parent
        self._conn = _connect(path)
        try:
            self._conn.execute("PRAGMA query_only = 1")
            keys = dict(self._conn.execute("SELECT key, value FROM run").fetchall())
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise JournalError(f"{path} is not a readable ember run journal: {exc}") from exc
        if "id" not in keys:
            self._conn.close()
            raise JournalError(f"{path} is not an ember run journal (no run identity)")
        self.id: str = keys["id"]
        self.name: str = keys.get("name", keys["id"])
        self.created_at = float(keys.get("created_at", "0"))
        self._sets: dict[str, tuple[str, ...]] = {}
        self._key = os.path.realpath(path)
        if self._key not in _LIVE:
            _move_foreign_spool(path)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        writer = _LIVE.get(self._key)
        if writer is not None:
            # rows logged here may still be spooled, or in a drain that has taken them
            # and not committed them yet: draining waits for that one
            writer.drain()
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: sqlite3.DatabaseError) -> JournalDamagedError:
        return JournalDamagedError(
            f"the run journal {self.path} is damaged ({exc}): it cannot be read. Keep a "
            f"copy; `sqlite3 {self.path} .recover` may rescue what is left"
        )

    def _live(self) -> tuple[str, list[Any]]:
        """The SQL condition (and its parameters) that keeps superseded records out."""
        rewinds = self._all("SELECT id, from_step FROM segments WHERE from_step IS NOT NULL")
        if not rewinds:
            return "1", []
        sql = " AND ".join("(segment >= ? OR step IS NULL OR step <= ?)" for _ in rewinds)
        return sql, [v for pair in rewinds for v in pair]

    def _rows(self, where: str, params: Sequence[Any], tail: str = "") -> list[Row]:
        live, live_params = self._live()
        raw = self._all(
            "SELECT seq, segment, kind, name, step, value, wall_time, data FROM records "
            f"WHERE {live} AND {where} {tail}",
            [*live_params, *params],
        )
        return [_row(r) for r in raw]

    # ------------------------------------------------------------------ packed rows
    def _names(self, names_id: str) -> tuple[str, ...]:
        """The metric names of a packed row (the table is read again on a new id)."""
        names = self._sets.get(names_id)
        if names is None:
            rows = self._all("SELECT id, names FROM metric_names")
            self._sets = {str(i): tuple(json.loads(n)) for i, n in rows}
            names = self._sets[names_id]
        return names

    def _metrics(
        self, names: Sequence[str] | None = None, *, live: bool = True
    ) -> Iterator[tuple[int, int, str, int, float, float]]:
        """``(seq, segment, name, step, value, wall_time)`` of every metric (or of those
        called ``names``), packed rows unpacked, in order; superseded ones left out unless
        ``live`` is false."""
        where, params = self._live() if live else ("1", [])
        if names is None:
            which = f"kind IN ('metric', '{PACKED}')"
            wanted = None
        else:
            wanted = set(names)
            sets = {
                str(i): tuple(json.loads(n))
                for i, n in self._all("SELECT id, names FROM metric_names")
            }
            self._sets = sets
            ids = [i for i, ns in sets.items() if wanted.intersection(ns)]
            marks = ", ".join("?" for _ in wanted)
            id_marks = ", ".join("?" for _ in ids)
            which = f"((kind = 'metric' AND name IN ({marks}))"
            which += f" OR (kind = '{PACKED}' AND name IN ({id_marks})))" if ids else ")"
            params = [*params, *wanted, *ids]
        raw = self._all(
            "SELECT seq, segment, kind, name, step, value, wall_time, data FROM records "
            f"WHERE {where} AND {which} ORDER BY seq",
            params,
        )
        for seq, segment, kind, name, step, value, wall, data in raw:
            if kind == PACKED:
                row_names = self._names(name)
                first = seq - len(row_names) + 1
                for i, (n, v) in enumerate(zip(row_names, unpack_values(data), strict=True)):
                    if wanted is None or n in wanted:
                        yield first + i, segment, n, step, v, wall
            else:
                yield seq, segment, name, step, value if data is None else float(data), wall

    # ------------------------------------------------------------------ delivery
    def fetch_batch(
        self, after_seq: int, kinds: Sequence[str], limit: int, *, packed: bool = False
    ) -> tuple[list[MetricRecord | PackedStep | Row], bool]:
        """Live records of ``kinds`` after ``after_seq``, in order, at most ``limit`` of
        them (whole packed rows: only a first row of more than ``limit`` metrics comes
        alone beyond it): a delivery worker's next batch. Metrics come as the
        :class:`MetricRecord` a logger receives, other records as :class:`Row`: a run that
        logs every step hands its workers millions of metrics, and building one object per
        record instead of two halves what reading them costs. ``packed``: a flush stored
        packed comes as one :class:`PackedStep` (for a :class:`MetricBatch`) instead.
        Also returns whether the limit ended the batch (more records may follow) rather
        than the journal's end."""
        live, live_params = self._live()
        stored = _stored_kinds(kinds)
        marks = ", ".join("?" for _ in stored)
        # the five fields of a MetricRecord, a flag for the rare other rows (texts,
        # artifacts, non-finite metrics), which are read again in full, and a packed
        # row's values
        try:
            cursor = self._conn.execute(
                "SELECT name, value, step, wall_time, seq, kind != 'metric' OR value IS NULL, "
                f"kind = '{PACKED}', data FROM records WHERE {live} AND seq > ? "
                f"AND kind IN ({marks}) ORDER BY seq LIMIT {int(limit)}",
                [*live_params, after_seq, *stored],
            )
            make = MetricRecord._make
            # tuple.__new__ bound to the class: builds a record without a Python-level call
            new = partial(tuple.__new__, MetricRecord)
            out: list[MetricRecord | PackedStep | Row] = []
            total = 0  # records in out
            full = False
            for r in cursor:
                if r[6]:
                    names = self._names(r[0])
                    n = len(names)
                    if total and total + n > limit:
                        full = True
                        break
                    seq = r[4]
                    if packed:
                        out.append(PackedStep(names, unpack_values(r[7]), r[2], r[3], seq))
                    else:
                        out += map(
                            new,
                            zip(
                                names,
                                unpack_values(r[7]),
                                repeat(r[2], n),
                                repeat(r[3], n),
                                range(seq - n + 1, seq + 1),
                                strict=True,
                            ),
                        )
                    total += n
                else:
                    out.append(self._full_row(r[4]) if r[5] else make(r[:5]))
                    total += 1
                if total >= limit:
                    full = True
                    break
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None
        return out, full

    def _full_row(self, seq: int) -> MetricRecord | Row:
        (raw,) = self._all(
            "SELECT seq, segment, kind, name, step, value, wall_time, data FROM records "
            "WHERE seq = ?",
            (seq,),
        )
        row = _row(raw)
        if row.kind == "metric":
            return MetricRecord(row.name, row.value, row.step, row.wall_time, row.seq)
        return row

    def count(
        self,
        kinds: Sequence[str],
        after_seq: int | None = None,
        upto_seq: int | None = None,
        *,
        live: bool = True,
    ) -> int:
        """How many records of ``kinds`` lie in ``(after_seq, upto_seq]`` (live ones, or
        superseded ones too when ``live`` is false)."""
        where, params = self._live() if live else ("1", [])
        stored = _stored_kinds(kinds)
        marks = ", ".join("?" for _ in stored)
        sql = f"SELECT {_COUNT} FROM records WHERE {where} AND kind IN ({marks})"
        params += stored
        if after_seq is not None:
            sql += " AND seq > ?"
            params.append(after_seq)
        if upto_seq is not None:
            sql += " AND seq <= ?"
            params.append(upto_seq)
        return int(self._all(sql, params)[0][0] or 0)

    def counts_by_kind(self) -> dict[str, int]:
        """Live records per kind (a packed row counts its metrics)."""
        live, params = self._live()
        rows = self._all(f"SELECT kind, {_COUNT} FROM records WHERE {live} GROUP BY kind", params)
        out: dict[str, int] = {}
        for kind, n in rows:
            kind = "metric" if kind == PACKED else kind
            out[kind] = out.get(kind, 0) + int(n)
        return out

    def cursors(self) -> dict[str, dict[str, Any]]:
        """Every logger's delivery cursor, by logger key."""
        try:
            cur = self._conn.execute("SELECT * FROM cursors ORDER BY logger")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None
        out = {}
        for raw in rows:
            entry = dict(zip(names, raw, strict=False))
            entry["options"] = json.loads(entry["options"]) if entry["options"] else {}
            out[entry["logger"]] = entry
        return out

    # ------------------------------------------------------------------ run facts
    def segments(self) -> list[dict[str, Any]]:
        """Starts and resumes, oldest first."""
        rows = self._all("SELECT id, started_at, from_step, pid, host FROM segments ORDER BY id")
        keys = ("id", "started_at", "from_step", "pid", "host")
        return [dict(zip(keys, r, strict=False)) for r in rows]

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Events (all, or those of one type), oldest first."""
        sql = "SELECT segment, time, type, data FROM events"
        params: tuple[Any, ...] = ()
        if type_ is not None:
            sql += " WHERE type = ?"
            params = (type_,)
        rows = self._all(sql + " ORDER BY seq", params)
        return [
            {"segment": s, "time": t, "type": ty, "data": json.loads(d) if d else None}
            for s, t, ty, d in rows
        ]

    def last_event(self, type_: str) -> dict[str, Any] | None:
        """The newest event of ``type_``."""
        rows = self._all(
            "SELECT segment, time, data FROM events WHERE type = ? ORDER BY seq DESC LIMIT 1",
            (type_,),
        )
        if not rows:
            return None
        segment, when, data = rows[0]
        return {"segment": segment, "time": when, "data": json.loads(data) if data else None}

    def status(self) -> tuple[str, float | None]:
        """The run's last recorded status and when it was recorded."""
        event = self.last_event("status")
        if event is None:
            return "running", None
        return str(event["data"]["status"]), float(event["time"])

    def last_activity(self) -> float | None:
        """Wall time of the newest record or event."""
        rows = self._all(
            "SELECT MAX(t) FROM (SELECT MAX(wall_time) AS t FROM records "
            "UNION ALL SELECT MAX(time) FROM events UNION ALL SELECT MAX(started_at) FROM segments)"
        )
        return rows[0][0]

    def hyperparams(self) -> dict[str, Any]:
        """Every logged hyperparameter dict merged, later calls winning."""
        merged: dict[str, Any] = {}
        for row in self._rows("kind = 'hparams'", (), "ORDER BY seq"):
            _deep_merge(merged, row.data)
        return merged

    def metric_names(self) -> list[str]:
        """Names of the logged metrics, in order of first appearance."""
        first: dict[str, int] = {}
        for name, seq in self._all(
            "SELECT name, MIN(seq) FROM records WHERE kind = 'metric' GROUP BY name"
        ):
            first[name] = seq
        for names_id, seq in self._all(
            f"SELECT name, MIN(seq) FROM records WHERE kind = '{PACKED}' GROUP BY name"
        ):
            names = self._names(names_id)
            for i, name in enumerate(names, seq - len(names) + 1):
                if i < first.get(name, i + 1):
                    first[name] = i
        return sorted(first, key=first.__getitem__)

    def metric_series(self, name: str, *, live: bool = True) -> list[tuple[int, float, float]]:
        """``(step, value, wall_time)`` of one metric by step; superseded records excluded
        unless ``live`` is false."""
        rows = sorted(
            (
                (step or 0, seq, value, wall)
                for seq, _, _, step, value, wall in self._metrics([name], live=live)
            ),
        )
        return [(step, math.nan if v is None else v, wall) for step, _, v, wall in rows]

    def last_metrics(self) -> dict[str, tuple[int, float]]:
        """Per metric, the ``(step, value)`` of its newest live record."""
        last: dict[str, tuple[int, int, float]] = {}
        for seq, _, name, step, value, _ in self._metrics():
            last[name] = (seq, step or 0, value)
        ordered = sorted(last.items(), key=lambda item: item[1][0])
        return {name: (step, value) for name, (_, step, value) in ordered}

    def metric_summary(self) -> dict[str, dict[str, Any]]:
        """Per metric: last value and its step, count, finite min and max."""
        out: dict[str, dict[str, Any]] = {}
        finite = math.isfinite
        for _, _, name, step, value, _ in self._metrics():
            entry = out.get(name)
            if entry is None:
                entry = out[name] = {
                    "last": value,
                    "step": 0,
                    "count": 0,
                    "min": math.nan,
                    "max": math.nan,
                }
            entry["last"], entry["step"] = value, step or 0
            entry["count"] += 1
            if value is not None and finite(value):
                if not value >= entry["min"]:  # nan at first
                    entry["min"] = value
                if not value <= entry["max"]:
                    entry["max"] = value
        return out

    def records(self, kind: str) -> list[Row]:
        """Live records of one kind, in order (a packed row gives one per metric)."""
        if kind == "metric":
            return [
                Row(seq, segment, "metric", name, step, value, wall, None)
                for seq, segment, name, step, value, wall in self._metrics()
            ]
        return self._rows("kind = ?", (kind,), "ORDER BY seq")

    def max_seq(self) -> int:
        """The sequence number of the newest record (0 when empty)."""
        return int(self._all("SELECT COALESCE(MAX(seq), 0) FROM records")[0][0])

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check."""
        return self._all("PRAGMA integrity_check")[0][0] == "ok"


def _deep_merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value
