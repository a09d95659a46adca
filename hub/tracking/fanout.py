"""The fan-out: one worker thread per logger, fed from the run journal.

The training thread appends to the journal and wakes the workers; it never calls a
logger and never waits for one. Each worker reads its next batch from the journal (so
memory stays bounded however far a logger falls behind), hands it to its logger in as
few calls as possible, retries a failed call with exponential backoff, quarantines the
logger after repeated failures, and records its cursor (the last record delivered) in
the journal after every successful call, so that ``ember sync`` can complete the job.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ember.hub.tracking.journal import (
    CAPABILITY_OF_KIND,
    KINDS,
    Journal,
    JournalReader,
    Row,
)
from ember.hub.tracking.logger import Logger, MetricBatch, MetricRecord, PackedStep, RunInfo
from ember.hub.tracking.report import LoggerReport
from ember.hub.tracking.secrets import Redactor

log = logging.getLogger("ember.tracking")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How workers deliver: batch size, retries, backoff, quarantine, the final deadline.

    A call is retried after ``backoff``, ``2*backoff``, ``4*backoff`` ... seconds (at most
    ``max_backoff``); after ``max_attempts`` consecutive failures the logger is
    quarantined for the rest of the run. ``finalize_timeout`` bounds how long
    :meth:`Run.finish` waits for all loggers together. ``linger``: a worker woken by new
    records, or one that has just delivered less than a full batch, waits this long
    before reading more, so that a run flushing every step is delivered in a few large
    batches instead of one small one per step (each batch costs a query, a logger call
    and a cursor update, all competing with training for the interpreter; and a tracker
    that answers fast would otherwise get one small batch after another); a flush, a stop
    or an escape-hatch call cuts the wait short. ``process``: the workers run in a helper
    process of their own instead of threads of the training process
    (:mod:`ember.hub.tracking.courier`), so that no logger code competes with training for
    the interpreter lock.
    """

    batch_size: int = 1000
    max_attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    finalize_timeout: float = 30.0
    linger: float = 0.25
    process: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_attempts < 1:
            raise ValueError("DeliveryPolicy: batch_size and max_attempts must be at least 1")
        delays = (self.backoff, self.max_backoff, self.finalize_timeout, self.linger)
        if any(math.isnan(d) or d < 0 for d in delays):
            raise ValueError("DeliveryPolicy: delays and timeouts must be numbers, at least 0")


@dataclass
class LoggerEntry:
    """A resolved logger: the object plus how it was asked for.

    ``key`` names its cursor in the journal: the provider name, plus a short hash of its
    non-secret options when it has any, so ``ember sync --to NAME`` with the same
    options continues where the run stopped. ``options`` are already redacted.
    """

    key: str
    label: str
    logger: Logger
    provider: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    distribution: str | None = None
    version: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def supported_kinds(self) -> tuple[str, ...]:
        """The record kinds this logger takes."""
        caps = self.logger.capabilities
        return tuple(k for k in KINDS if getattr(caps, CAPABILITY_OF_KIND[k]))


class _Quarantined(Exception):
    """A call failed ``max_attempts`` times in a row, or the worker was abandoned."""


class Worker(threading.Thread):
    """Delivers the journal to one logger, from its own thread."""

    def __init__(
        self,
        entry: LoggerEntry,
        journal: Journal,
        run: RunInfo,
        policy: DeliveryPolicy,
        redactor: Redactor,
        *,
        start_seq: int = 0,
        skipped: int = 0,
        sync_hint: str = "",
    ) -> None:
        super().__init__(name=f"ember-logger-{entry.key}", daemon=True)
        self.entry = entry
        self.journal = journal
        self.run_info = run
        self.policy = policy
        self.redactor = redactor
        self.sync_hint = sync_hint
        self.kinds = entry.supported_kinds()
        #: records per delivery: the policy's batch, or the logger's smaller max_batch
        self.batch_size = min(policy.batch_size, entry.logger.max_batch or policy.batch_size)
        self.cursor = start_seq
        self.skipped = skipped
        self.failed = 0
        self.state = "starting"
        self.error: str | None = None
        self.tracker_ref: str | None = run.resume_ref
        self.finalized: str | None = None
        self.calls = 0
        #: (method, monotonic start) while a logger call is in progress
        self.in_call: tuple[str, float] | None = None
        self._status: str | None = None
        #: escape-hatch calls waiting for the cursor: (run after this seq, fn, future)
        self._calls: deque[tuple[int, Callable[[Any], Any], Future[Any]]] = deque()
        self._calls_lock = threading.Lock()
        self._calls_closed = False
        #: flush requests asked for / answered (see :meth:`flush`)
        self._flush_asked = 0
        self._flush_done = 0
        self._flushed = threading.Condition()
        self._wake = threading.Event()
        #: set by what must not wait for the linger: a flush, a stop, a call, the deadline
        self._urgent = threading.Event()
        self._stopping = threading.Event()
        self._abandoned = threading.Event()

    # ------------------------------------------------------------------ control
    def wake(self) -> None:
        """New records are in the journal (cheap when the worker was woken already: the
        training thread calls this at every flush)."""
        if not self._wake.is_set():
            self._wake.set()

    def submit(
        self, after_seq: int, fn: Callable[[Any], Any], *, on_logger: bool = False
    ) -> Future[Any]:
        """Run ``fn(logger.experiment)`` (``fn(logger)`` with ``on_logger``) on this thread
        once every record up to ``after_seq`` was delivered, before any later one; the
        future holds its result."""
        future: Future[Any] = Future()
        if not on_logger:
            fn = partial(_on_experiment, fn)
        with self._calls_lock:
            if self._calls_closed or self._stopping.is_set():
                future.set_exception(
                    RuntimeError(f"logger {self.entry.label!r} is not running ({self.state})")
                )
                return future
            self._calls.append((after_seq, fn, future))
        self._urgent.set()
        self._wake.set()
        return future

    def flush(self, timeout: float) -> bool:
        """Wait until everything in the journal now has been delivered (or the logger
        stopped); False if ``timeout`` seconds passed first."""
        with self._flushed:
            self._flush_asked += 1
            wanted = self._flush_asked
        self._urgent.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._flushed:
            while self._flush_done < wanted and self.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._flushed.wait(min(left, 0.5))
        return True

    def request_stop(self, status: str) -> None:
        """Deliver what is left, finalize the tracker run with ``status``, then exit."""
        self._status = status
        self._stopping.set()
        self._urgent.set()
        self._wake.set()

    def abandon(self) -> None:
        """Give up at the deadline: make no further logger calls."""
        self._abandoned.set()
        self._urgent.set()
        self._wake.set()
        if self.is_alive() and self.state not in ("quarantined", "ok"):
            if self.in_call is not None:
                method, since = self.in_call
                self.state = f"hung in {method} ({time.monotonic() - since:.1f} s)"
            else:
                self.state = "timed out"
            self._save()

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        reader = None
        try:
            reader = JournalReader(self.journal.path)
            self._deliver_all(reader)
        except _Quarantined:
            pass
        except BaseException as exc:
            # a bug here must not take training down either, and a logger that raises
            # SystemExit or KeyboardInterrupt in this thread must not end it silently:
            # either way the state says so, and no raw traceback prints a secret
            self.state = "error"
            self.error = self.redactor.text(f"{type(exc).__name__}: {exc}")
            # no traceback text: it would repeat the unredacted message
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "ember: delivery to logger %r stopped (%s at %s:%s); its records stay in the "
                "journal. Deliver them later with: %s",
                self.entry.label,
                self.error,
                where.filename,
                where.lineno,
                self.sync_hint,
            )
        finally:
            self._cancel_calls(f"logger {self.entry.label!r} stopped ({self.state})")
            self._save()
            if reader is not None:
                reader.close()

    def _deliver_all(self, reader: JournalReader) -> None:
        info = self.run_info
        ref = self._call("open", lambda: self.entry.logger.open(info), 0)
        if ref is not None:
            self.tracker_ref = self.redactor.text(str(ref))
        self.state = "running"
        self._save()
        while True:
            # read before fetching: whatever was logged before a stop or flush request
            # is then visible to this fetch, so nothing is left behind
            stopping = self._stopping.is_set()
            with self._flushed:
                asked = self._flush_asked
            queued = len(self._calls)
            rows, full = reader.fetch_batch(self.cursor, self.kinds, self.batch_size, packed=True)
            if rows:
                self._deliver(rows)
                if not (full or stopping or self._waited_for(asked)):
                    # caught up, with the records logged during this call still to come:
                    # let more arrive, or a tracker that answers fast is sent one small
                    # batch after another, each paying the whole cost of a call
                    self._linger()
                continue
            # everything up to the journal's end is delivered: the calls queued before the
            # fetch have had every record logged before them
            self._run_calls(queued)
            with self._flushed:
                self._flush_done = max(self._flush_done, asked)
                self._flushed.notify_all()
            if stopping:
                break
            self._wake.wait()
            self._linger()
            self._urgent.clear()
            self._wake.clear()
        self._cancel_calls("the run finished")
        status = self._status or "success"
        self._call("finalize", lambda: self.entry.logger.finalize(status), 0)
        self.finalized = status
        self.state = "ok"

    def _waited_for(self, asked: int) -> bool:
        """Whether something waits for the journal's end: a flush (up to ``asked``, those
        asked for before the fetch; a later one sets ``_urgent``), a call, a stop."""
        return self._urgent.is_set() or bool(self._calls) or asked > self._flush_done

    def _linger(self) -> None:
        """Wait ``policy.linger`` for more records; a flush, a stop, a call or the
        deadline cuts it short."""
        if self.policy.linger and not self._urgent.is_set():
            self._urgent.wait(self.policy.linger)
        if self._abandoned.is_set():
            raise _Quarantined

    def _run_due(self, delivered_upto: int) -> None:
        """Run the escape-hatch calls made when the journal ended at or before
        ``delivered_upto`` (every record up to it was delivered)."""
        n = 0
        while n < len(self._calls) and self._calls[n][0] <= delivered_upto:
            n += 1
        self._run_calls(n)

    def _run_calls(self, n: int) -> None:
        """Run the first ``n`` queued escape-hatch calls, in order."""
        for _ in range(n):
            _, fn, future = self._calls.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(self.entry.logger)
            except Exception as exc:  # the user's code: reported, never retried
                log.warning(
                    "ember: a call on logger %r raised %s: %s",
                    self.entry.label,
                    type(exc).__name__,
                    self.redactor.text(str(exc)),
                )
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _cancel_calls(self, why: str) -> None:
        with self._calls_lock:
            self._calls_closed = True
            left = list(self._calls)
            self._calls.clear()
        for _, _, future in left:
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError(f"not run: {why}"))

    def _deliver(self, rows: Sequence[MetricRecord | PackedStep | Row]) -> None:
        """Hand ``rows`` over: consecutive metrics in one call (a :class:`MetricBatch`),
        other records one by one; escape-hatch calls run between the records they were
        made between (a call is made between flushes, so a packed flush is never split)."""
        i = 0
        while i < len(rows):
            if self._calls:
                self._run_due(_first_seq(rows[i]) - 1)
            if isinstance(rows[i], (MetricRecord, PackedStep)):
                j = i
                # a pending call splits the batch at the point where it was made
                limit = self._calls[0][0] if self._calls else None
                while (
                    j < len(rows)
                    and isinstance(rows[j], (MetricRecord, PackedStep))
                    and (limit is None or rows[j].seq <= limit)
                ):
                    j += 1
                records = MetricBatch(rows[i:j])  # type: ignore[arg-type]
                self._call(
                    "log_metrics", partial(self.entry.logger.log_metrics, records), len(records)
                )
            else:
                j = i + 1
                self._deliver_one(rows[i])  # type: ignore[arg-type]
            self.cursor = rows[j - 1].seq
            self._save()
            i = j

    def _deliver_one(self, row: Row) -> None:
        logger = self.entry.logger
        data = row.data
        if row.kind == "hparams":
            self._call("log_hyperparams", lambda: logger.log_hyperparams(data), 1)
        elif row.kind == "text":
            self._call(
                "log_text", lambda: logger.log_text(row.name, data["text"], step=row.step), 1
            )
        elif row.kind == "image":
            if not self._exists(data["path"], "image"):
                return
            self._call(
                "log_image",
                lambda: logger.log_image(
                    row.name, data["path"], step=row.step, metadata=data.get("metadata") or {}
                ),
                1,
            )
        elif row.kind == "artifact":
            if not self._exists(data["path"], "artifact"):
                return
            self._call(
                "log_artifact",
                lambda: logger.log_artifact(
                    data["path"],
                    data["kind"],
                    name=row.name,
                    step=row.step,
                    metadata=data.get("metadata") or {},
                ),
                1,
            )

    def _exists(self, path: str, what: str) -> bool:
        if os.path.exists(path):
            return True
        # a file deleted since it was logged (a rotated checkpoint) would fail forever:
        # count it as removed, which the report shows, and go on
        self.skipped += 1
        log.info(
            "ember: %s %s was removed after it was logged; not delivered to %r",
            what,
            path,
            self.entry.label,
        )
        return False

    def _call(self, method: str, fn: Callable[[], Any], n_records: int) -> Any:
        """Call the logger, retrying with backoff; quarantine after repeated failures."""
        attempt = 0
        while True:
            if self._abandoned.is_set():
                raise _Quarantined
            self.in_call = (method, time.monotonic())
            try:
                result = fn()
            except Exception as exc:
                # waiting out the backoff is retrying, not hanging in the call
                self.in_call = None
                attempt += 1
                self.error = self.redactor.text(f"{method}: {type(exc).__name__}: {exc}")
                if attempt >= self.policy.max_attempts:
                    self.state = "quarantined"
                    self.failed = n_records
                    log.warning(
                        "ember: logger %r quarantined after %d failed attempts (%s); its "
                        "records stay in the journal. Deliver them later with: %s",
                        self.entry.label,
                        attempt,
                        self.error,
                        self.sync_hint,
                    )
                    raise _Quarantined from None
                delay = min(self.policy.backoff * 2 ** (attempt - 1), self.policy.max_backoff)
                if attempt == 1:
                    log.warning(
                        "ember: logger %r failed (%s); retrying in %.2g s",
                        self.entry.label,
                        self.error,
                        delay,
                    )
                self._abandoned.wait(delay)
            else:
                self.calls += 1
                if attempt:
                    self.error = None
                return result
            finally:
                self.in_call = None

    def _save(self) -> None:
        self.journal.save_cursor(
            self.entry.key,
            provider=self.entry.provider or self.entry.label,
            options=_json(self.entry.options),
            kinds=",".join(self.kinds),
            seq=self.cursor,
            skipped=self.skipped,
            failed=self.failed,
            state=self.state,
            error=self.error,
            tracker_ref=self.tracker_ref,
            finalized=self.finalized,
        )

    # ------------------------------------------------------------------ reporting
    def _live_state(self) -> str:
        """The state, with what a running worker is doing when a stage ends."""
        if self.state != "running":
            return self.state
        call = self.in_call
        if call is not None:
            return f"running, in {call[0]} for {time.monotonic() - call[1]:.1f} s"
        return "running, retrying" if self.error else "running"

    def report(self, reader: JournalReader, unsupported: Sequence[str] = ()) -> LoggerReport:
        """Delivered / pending / failed, counted from the journal."""
        return worker_report(self, reader, unsupported, self._live_state())


def worker_report(
    worker: Any, reader: JournalReader, unsupported: Sequence[str], state: str
) -> LoggerReport:
    """The report of ``worker`` (a :class:`Worker`, or its stand-in for one in ember's
    delivery process) in ``state``, from its cursor and the journal."""
    return logger_report(
        reader,
        key=worker.entry.key,
        label=worker.entry.label,
        kinds=worker.kinds,
        cursor=worker.cursor,
        skipped=worker.skipped,
        failed_batch=worker.failed,
        state=state,
        error=worker.error,
        unsupported=tuple(unsupported),
        sync_command=worker.sync_hint,
    )


def logger_report(
    reader: JournalReader,
    *,
    key: str,
    label: str,
    kinds: Sequence[str],
    cursor: int,
    skipped: int,
    failed_batch: int,
    state: str,
    error: str | None,
    unsupported: tuple[str, ...] = (),
    sync_command: str | None = None,
) -> LoggerReport:
    """A logger's figures: records up to its cursor were delivered (less the artifacts
    skipped because their file was removed), the batch it failed on is failed, the rest is
    pending."""
    passed = reader.count(kinds, upto_seq=cursor)
    ahead = reader.count(kinds, after_seq=cursor)
    return LoggerReport(
        key=key,
        label=label,
        state=state,
        delivered=passed - skipped,
        pending=ahead - failed_batch,
        failed=failed_batch,
        removed=skipped,
        error=error,
        unsupported=unsupported,
        sync_command=sync_command,
    )


def finish_workers(workers: Sequence[Worker], status: str, timeout: float) -> None:
    """Ask every worker to drain and finalize; wait at most ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    for w in workers:
        w.request_stop(status)
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.is_alive():
            w.abandon()


def _on_experiment(fn: Callable[[Any], Any], logger: Logger) -> Any:
    return fn(logger.experiment)


def _first_seq(row: MetricRecord | PackedStep | Row) -> int:
    """The sequence number of the first record in ``row``."""
    return row.seq - len(row.names) + 1 if isinstance(row, PackedStep) else row.seq


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)
