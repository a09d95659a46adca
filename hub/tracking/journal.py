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
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ember.hub.tracking.logger import MetricRecord

JOURNAL_FILE = "journal.db"
FORMAT_VERSION = 1
#: how often the background thread folds the WAL back into the database file
CHECKPOINT_INTERVAL_S = 2.0

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


#: rows per statement of :meth:`Journal.append_step` (3 bound values each)
STEP_CHUNK = 250


@functools.lru_cache(maxsize=64)
def _step_sql(n: int) -> str:
    """The statement appending ``n`` metric rows of one step (segment, step and wall time
    bound once, as ?1, ?2, ?3)."""
    rows = ",".join(["(?, ?, ?)"] * n)
    return (
        "INSERT INTO records (segment, kind, name, step, value, wall_time, data) "
        f"SELECT ?1, 'metric', column1, ?2, column2, ?3, column3 FROM (VALUES {rows})"
    )


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
    cursors; a lock serialises them on one connection. A background thread checkpoints
    the WAL so that the training thread never pays for it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._conn = _connect(path)
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn.executescript(_SCHEMA)
        except BaseException:
            self._conn.close()
            raise
        self.segment = 0
        self._closed = False
        self._dirty = threading.Event()
        self._stop = threading.Event()
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
        journal = cls(path)
        with journal.lock:
            journal._conn.executemany(
                "INSERT INTO run (key, value) VALUES (?, ?)",
                [
                    ("id", run_id),
                    ("name", name),
                    ("created_at", repr(created_at)),
                    ("format", str(FORMAT_VERSION)),
                ],
            )
        return journal

    @classmethod
    def open(cls, run_dir: str | Path) -> Journal:
        """Open an existing run's journal for writing (resume, ``ember sync``)."""
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
        self._dirty.set()
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
        with self.lock:
            self._check_open()
            conn = self._conn
            conn.execute("BEGIN")
            try:
                conn.executemany(
                    "INSERT INTO records (segment, kind, name, step, value, wall_time, data) "
                    "VALUES (?, 'metric', ?, ?, ?, ?, ?)",
                    params,
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self._dirty.set()

    def append_step(self, values: Sequence[tuple[str, float]], step: int, wall_time: float) -> None:
        """Append ``(name, value)`` rows that share ``step`` and ``wall_time`` (a flush),
        in one transaction.

        The hot path of a run that logs many metrics every step, so it is one statement
        per :data:`STEP_CHUNK` rows binding three values per row (``INSERT ... SELECT
        FROM (VALUES ...)``, rows in order): measured 3 to 10 times cheaper than
        ``executemany`` for 50 rows.
        """
        finite = math.isfinite
        params: list[Any] = []
        for name, value in values:
            if finite(value):
                params += (name, value, None)
            else:  # SQLite stores NaN as NULL: non-finite values travel as text
                params += (name, None, repr(value))
        chunks = [params[i : i + 3 * STEP_CHUNK] for i in range(0, len(params), 3 * STEP_CHUNK)]
        with self.lock:
            self._check_open()
            conn = self._conn
            head = (self.segment, step, wall_time)
            if len(chunks) == 1:
                conn.execute(_step_sql(len(chunks[0]) // 3), (*head, *chunks[0]))
            elif chunks:
                conn.execute("BEGIN")
                try:
                    for chunk in chunks:
                        conn.execute(_step_sql(len(chunk) // 3), (*head, *chunk))
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        self._dirty.set()

    def append(self, kind: str, name: str, step: int | None, wall_time: float, data: Any) -> None:
        """Append one non-metric record (hyperparameters, text, artifact reference)."""
        payload = json.dumps(data, default=str)
        with self.lock:
            self._check_open()
            self._conn.execute(
                "INSERT INTO records (segment, kind, name, step, value, wall_time, data) "
                "VALUES (?, ?, ?, ?, NULL, ?, ?)",
                (self.segment, kind, name, step, wall_time, payload),
            )
        self._dirty.set()

    def last_seq(self) -> int:
        """The sequence number of the newest record (0 when empty)."""
        with self.lock:
            self._check_open()
            row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
        return int(row[0])

    def event(self, type_: str, data: Any) -> None:
        """Append an event (``config``, ``plugins``, ``status``, ``warning``, ...)."""
        payload = json.dumps(data, default=str)
        with self.lock:
            self._check_open()
            self._conn.execute(
                "INSERT INTO events (segment, time, type, data) VALUES (?, ?, ?, ?)",
                (self.segment, time.time(), type_, payload),
            )
        self._dirty.set()

    def save_cursor(self, logger: str, **fields: Any) -> bool:
        """Create or update a logger's delivery cursor; False once the journal is closed
        (a worker abandoned at the deadline may return from its call after that)."""
        columns = {"updated_at": time.time(), **fields}
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        with self.lock:
            if self._closed:
                return False
            self._conn.execute(
                f"INSERT INTO cursors (logger, {names}) VALUES (?, {marks}) "
                f"ON CONFLICT (logger) DO UPDATE SET {updates}",
                (logger, *columns.values()),
            )
        self._dirty.set()
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"the journal {self.path} is closed; the run has finished")

    # ------------------------------------------------------------------ WAL upkeep
    def _checkpoint_loop(self) -> None:
        conn = _connect(self.path)
        try:
            while not self._stop.wait(CHECKPOINT_INTERVAL_S):
                if self._dirty.is_set():
                    self._dirty.clear()
                    # PASSIVE never blocks the writer: the fsync happens here, not in training
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def close(self) -> None:
        """Checkpoint and close; the WAL file is folded back and removed."""
        if self._closed:
            return
        self._stop.set()
        self._checkpointer.join()
        with self.lock:
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()


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

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

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

    # ------------------------------------------------------------------ delivery
    def fetch(self, after_seq: int, kinds: Sequence[str], limit: int) -> list[MetricRecord | Row]:
        """Live records of ``kinds`` after ``after_seq``, in order: a delivery worker's
        next batch. Metrics come as the :class:`MetricRecord` a logger receives, other
        records as :class:`Row`: a run that logs every step hands its workers millions of
        metrics, and building one object per record instead of two halves what reading
        them costs."""
        live, live_params = self._live()
        marks = ", ".join("?" for _ in kinds)
        # the five fields of a MetricRecord, and a flag for the rare other rows (texts,
        # artifacts, non-finite metrics), which are read again in full
        raw = self._all(
            "SELECT name, value, step, wall_time, seq, kind != 'metric' OR value IS NULL "
            f"FROM records WHERE {live} AND seq > ? AND kind IN ({marks}) "
            f"ORDER BY seq LIMIT {int(limit)}",
            [*live_params, after_seq, *kinds],
        )
        make = MetricRecord._make
        return [self._full_row(r[4]) if r[5] else make(r[:5]) for r in raw]

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
        self, kinds: Sequence[str], after_seq: int | None = None, upto_seq: int | None = None
    ) -> int:
        """How many live records of ``kinds`` lie in ``(after_seq, upto_seq]``."""
        live, params = self._live()
        marks = ", ".join("?" for _ in kinds)
        sql = f"SELECT COUNT(*) FROM records WHERE {live} AND kind IN ({marks})"
        params += list(kinds)
        if after_seq is not None:
            sql += " AND seq > ?"
            params.append(after_seq)
        if upto_seq is not None:
            sql += " AND seq <= ?"
            params.append(upto_seq)
        return int(self._all(sql, params)[0][0])

    def counts_by_kind(self) -> dict[str, int]:
        """Live records per kind."""
        live, params = self._live()
        rows = self._all(f"SELECT kind, COUNT(*) FROM records WHERE {live} GROUP BY kind", params)
        return {k: int(n) for k, n in rows}

    def cursors(self) -> dict[str, dict[str, Any]]:
        """Every logger's delivery cursor, by logger key."""
        cur = self._conn.execute("SELECT * FROM cursors ORDER BY logger")
        names = [d[0] for d in cur.description]
        out = {}
        for raw in cur.fetchall():
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
        rows = self._all(
            "SELECT name FROM records WHERE kind = 'metric' GROUP BY name ORDER BY MIN(seq)"
        )
        return [r[0] for r in rows]

    def metric_series(self, name: str) -> list[tuple[int, float, float]]:
        """``(step, value, wall_time)`` of one metric by step, superseded records excluded."""
        rows = self._rows("kind = 'metric' AND name = ?", (name,), "ORDER BY step, seq")
        return [
            (r.step or 0, r.value if r.value is not None else math.nan, r.wall_time) for r in rows
        ]

    def last_metrics(self) -> dict[str, tuple[int, float]]:
        """Per metric, the ``(step, value)`` of its newest live record."""
        live, params = self._live()
        raw = self._all(
            "SELECT seq, segment, kind, name, step, value, wall_time, data FROM records "
            f"WHERE seq IN (SELECT MAX(seq) FROM records WHERE {live} AND kind = 'metric' "
            "GROUP BY name) ORDER BY seq",
            params,
        )
        return {r.name: (r.step or 0, r.value) for r in map(_row, raw)}

    def metric_summary(self) -> dict[str, dict[str, Any]]:
        """Per metric: last value and its step, count, finite min and max."""
        live, params = self._live()
        stats = self._all(
            "SELECT name, COUNT(*), MIN(value), MAX(value) FROM records "
            f"WHERE {live} AND kind = 'metric' GROUP BY name ORDER BY MIN(seq)",
            params,
        )
        last = self.last_metrics()
        out: dict[str, dict[str, Any]] = {}
        for name, count, lo, hi in stats:
            step, value = last[name]
            out[name] = {
                "last": value,
                "step": step,
                "count": count,
                "min": math.nan if lo is None else lo,
                "max": math.nan if hi is None else hi,
            }
        return out

    def records(self, kind: str) -> list[Row]:
        """Live records of one kind, in order."""
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
