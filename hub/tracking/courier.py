"""Delivery from a helper process: ``DeliveryPolicy(process=True)``, which is
``Trainer(logger_delivery="process")``.

The delivery workers of :mod:`ember.hub.tracking.fanout` then run in a process of their
own, the *courier*, instead of in threads of the training process. The training process
goes on appending to the journal and moving its spool in; it runs no logger code at all.
On a short step that matters: a logger's Python on a thread of the training process takes
the interpreter lock from the training thread whenever it runs (benchmarks/README.md,
"The GIL"), while the courier only competes for a core.

The courier reads the records from the journal, as a worker thread does, and the journal
keeps one writer: the courier sends each cursor update to the training process, which
saves it. Flushes, escape-hatch calls (``fn`` pickled) and the stop go the other way.
Messages are pickled and framed with their length, on the courier's standard input and
on a copy of its standard output (its own ``print``s go to standard error). When the
training process dies, the courier reads the end of its input and exits without
finalizing, like a worker thread killed with its process: a resumed run re-attaches,
and ``ember sync`` delivers the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ember.hub.errors import OptionsError
from ember.hub.tracking.fanout import (
    DeliveryPolicy,
    LoggerEntry,
    Worker,
    finish_workers,
    worker_report,
)
from ember.hub.tracking.journal import Journal, JournalError, JournalReader
from ember.hub.tracking.logger import RunInfo
from ember.hub.tracking.report import LoggerReport
from ember.hub.tracking.secrets import Redactor

#: how long the training process waits for the courier to start and rebuild its loggers
START_TIMEOUT_S = 120.0
#: what the courier is given less than a flush's or a stop's timeout, to answer in time
REPLY_MARGIN_S = 0.5
_LENGTH = struct.Struct("<Q")
#: the training process's import path, for the courier (see :data:`_BOOT`)
_PATH_VARIABLE = "EMBER_COURIER_PATH"
#: how the courier starts. It unpickles the loggers, so it imports from the training
#: process's ``sys.path``, set once the interpreter is up, as the training process got
#: its script's folder: given as ``PYTHONPATH`` it would come first while Python starts,
#: and a module of the user's named like one Python loads then (a ``types.py`` beside the
#: script) would be taken for the standard one and stop the courier
_BOOT = (
    "import json, os, sys; "
    f"sys.path[:] = json.loads(os.environ.pop({_PATH_VARIABLE!r})); "
    "from ember.hub.tracking.courier import main; sys.exit(main())"
)


def _send(stream: IO[bytes], message: Any) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(body)) + body)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream (the other process is gone)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    if len(body) < length:
        return None
    return pickle.loads(body)


@dataclass
class WorkerSpec:
    """What a delivery worker is made from, wherever it runs."""

    entry: LoggerEntry
    run_info: RunInfo
    start_seq: int
    skipped: int
    sync_hint: str


class RemoteWorker:
    """A worker that runs in the courier, as the training process sees it: the figures it
    last reported, for the run's report and for :meth:`LoggerHandle.call`."""

    def __init__(self, courier: Courier, spec: WorkerSpec) -> None:
        self._courier = courier
        self.entry = spec.entry
        self.kinds = spec.entry.supported_kinds()
        self.sync_hint = spec.sync_hint
        self.cursor = spec.start_seq
        self.skipped = spec.skipped
        self.failed = 0
        self.state = "starting"
        self.error: str | None = None
        self.tracker_ref: str | None = spec.run_info.resume_ref
        self.finalized: str | None = None

    def update(self, figures: dict[str, Any]) -> None:
        """Take the figures the courier reported (a cursor saved, a flush or stop answered)."""
        self.cursor = figures.get("seq", self.cursor)
        self.skipped = figures.get("skipped", self.skipped)
        self.failed = figures.get("failed", self.failed)
        self.state = figures.get("state", self.state)
        self.error = figures.get("error", self.error)
        self.tracker_ref = figures.get("tracker_ref", self.tracker_ref)
        self.finalized = figures.get("finalized", self.finalized)

    def is_alive(self) -> bool:
        """Whether the worker still delivers (its courier runs and it stopped for nothing)."""
        return self._courier.alive and self.state.startswith(("starting", "running"))

    def submit(
        self, after_seq: int, fn: Callable[[Any], Any], *, on_logger: bool = False
    ) -> Future[Any]:
        """Run ``fn(logger.experiment)`` (``fn(logger)`` with ``on_logger``) in the courier
        once every record up to ``after_seq`` was delivered, before any later one."""
        return self._courier.call(self.entry.key, after_seq, fn, on_logger)

    def report(self, reader: JournalReader, unsupported: Sequence[str] = ()) -> LoggerReport:
        """Delivered / pending / failed, counted from the journal."""
        return worker_report(self, reader, unsupported, self.state)


class Courier:
    """The training process's side of the courier: starts it, relays flushes, calls and
    the stop, and saves the cursors it reports in the journal."""

    def __init__(
        self,
        journal: Journal,
        specs: Sequence[WorkerSpec],
        policy: DeliveryPolicy,
    ) -> None:
        self._journal = journal
        self.workers = [RemoteWorker(self, spec) for spec in specs]
        self._by_key = {w.entry.key: w for w in self.workers}
        payload = []
        for spec in specs:
            try:
                blob = pickle.dumps(spec.entry, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise _cannot_move(spec.entry.label, exc) from None
            payload.append(
                (spec.entry.key, blob, spec.run_info, spec.start_seq, spec.skipped, spec.sync_hint)
            )
        self._pid = os.getpid()
        self._send_lock = threading.Lock()
        self._requests = itertools.count(1)
        self._answers: dict[int, Any] = {}
        self._waiting: dict[int, threading.Event] = {}
        self._futures: dict[int, Future[Any]] = {}
        #: the courier answered the stop, or is being ended on purpose
        self._stopped = threading.Event()
        self._gone = threading.Event()
        self.alive = False
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, _PATH_VARIABLE: json.dumps(_import_path(sys.path))},
        )
        self.pid = self._proc.pid
        try:
            self._start(payload, policy)
        except BaseException:
            self.kill()
            raise

    def _start(self, payload: list[Any], policy: DeliveryPolicy) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        hello = {
            "journal": str(self._journal.path),
            "policy": policy,
            "loggers": payload,
        }
        with contextlib.suppress(OSError):  # it exited at once: said below
            _send(self._proc.stdin, ("start", hello))
        answer: list[Any] = []
        reading = threading.Thread(
            target=lambda: answer.append(_receive(self._proc.stdout)),  # type: ignore[arg-type]
            name="ember-courier-start",
            daemon=True,
        )
        reading.start()
        reading.join(START_TIMEOUT_S)
        if not answer or answer[0] is None:
            status = self._proc.poll()
            raise RuntimeError(
                "ember could not start its delivery process (logger_delivery='process'): "
                + (
                    f"it exited with status {status}; its error is printed above"
                    if status is not None
                    else f"it did not answer within {START_TIMEOUT_S:.0f} s"
                )
                + ". Deliver from threads instead with logger_delivery='thread'"
            )
        _, errors = answer[0]
        if errors:
            key, error = next(iter(errors.items()))
            raise _cannot_move(self._by_key[key].entry.label, error)
        self.alive = True
        threading.Thread(target=self._receive_loop, name="ember-courier", daemon=True).start()

    # ------------------------------------------------------------------ requests
    def _post(self, message: tuple[Any, ...]) -> bool:
        """Send ``message``; False when the courier is gone (or this is a forked child,
        which must not write into its parent's pipe)."""
        if not self.alive or os.getpid() != self._pid:
            return False
        try:
            with self._send_lock:
                _send(self._proc.stdin, message)  # type: ignore[arg-type]
        except (OSError, ValueError):
            return False
        return True

    def _ask(self, op: str, timeout: float, *args: Any) -> Any:
        """Send a request and wait for its answer at most ``timeout`` s; None without one."""
        request = next(self._requests)
        done = self._waiting[request] = threading.Event()
        try:
            if self._post((op, request, max(0.0, timeout - REPLY_MARGIN_S), *args)):
                done.wait(timeout)
            return self._answers.pop(request, None)
        finally:
            self._waiting.pop(request, None)

    def flush(self, timeout: float) -> bool:
        """Wait until the loggers hold everything logged so far; False if ``timeout``
        seconds passed first or the courier is gone."""
        # the courier reads the database: the spooled rows go in first
        self._journal.drain()
        states = self._ask("flush", timeout)
        if states is None:
            return False
        self._update(states)
        return all(s == "flushed" for s in states.get("flushed", {}).values())

    def call(
        self, key: str, after_seq: int, fn: Callable[[Any], Any], on_logger: bool = False
    ) -> Future[Any]:
        """Run ``fn`` on the experiment (or the logger) of logger ``key`` in the courier,
        in order."""
        label = self._by_key[key].entry.label
        try:
            blob = pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"logger {label!r} delivers from ember's delivery process "
                "(logger_delivery='process'), so call() sends the function there, and this "
                f"one cannot be sent ({type(exc).__name__}: {exc}). Pass a function defined "
                "at the top level of a module, or functools.partial of one, with arguments "
                "that pickle; or deliver from threads (logger_delivery='thread')"
            ) from None
        self._journal.drain()  # the records logged before the call are readable there
        request = next(self._requests)
        future: Future[Any] = Future()
        self._futures[request] = future
        if not self._post(("call", request, key, after_seq, blob, on_logger)):
            self._futures.pop(request, None)
            future.set_exception(RuntimeError(f"logger {label!r} is not running (courier gone)"))
        return future

    def finish(self, status: str, timeout: float) -> None:
        """Let the courier deliver what is left and finalize every logger with ``status``
        within ``timeout`` seconds, then end it (killed if it does not answer)."""
        if os.getpid() != self._pid:
            return
        states = self._ask("stop", timeout, status)
        if states is not None:
            self._update(states)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(REPLY_MARGIN_S * 4)
        # ended on purpose: a logger still delivering now timed out, it did not crash
        self._stopped.set()
        self.kill()
        self._gone.wait(REPLY_MARGIN_S * 4)
        for worker in self.workers:
            if worker.state.startswith(("starting", "running")):
                worker.state = "timed out"
                self._save(worker)

    def kill(self) -> None:
        """End the courier now: no more deliveries, nothing finalized."""
        self.alive = False
        if self._proc.poll() is None:
            self._proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(10)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    # ------------------------------------------------------------------ answers
    def _receive_loop(self) -> None:
        stream = self._proc.stdout
        try:
            while True:
                try:
                    message = _receive(stream)  # type: ignore[arg-type]
                except (OSError, ValueError, EOFError, pickle.UnpicklingError):
                    message = None
                if message is None:
                    break
                self._handle(message)
        finally:
            self._lost()

    def _handle(self, message: tuple[Any, ...]) -> None:
        op = message[0]
        if op == "cursor":
            _, key, fields = message
            worker = self._by_key.get(key)
            if worker is not None:
                worker.update(fields)
                with contextlib.suppress(JournalError):
                    self._journal.save_cursor(key, **fields)
        elif op == "result":
            _, request, ok, value = message
            future = self._futures.pop(request, None)
            if future is not None and future.set_running_or_notify_cancel():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        elif op in ("flushed", "stopped"):
            _, request, states = message
            if op == "stopped":
                self._stopped.set()
            done = self._waiting.get(request)
            if done is not None:  # else the request timed out: nobody reads the answer
                self._answers[request] = states
                done.set()

    def _lost(self) -> None:
        """The courier's output ended: it exited (stopped, or died)."""
        self.alive = False
        status = self._proc.poll()
        if status is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                status = self._proc.wait(REPLY_MARGIN_S * 4)
        if not self._stopped.is_set():
            for worker in self.workers:
                if worker.state.startswith(("starting", "running")):
                    worker.state = f"stopped: ember's delivery process exited (status {status})"
                    self._save(worker)
        for request, future in list(self._futures.items()):
            self._futures.pop(request, None)
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError("not run: ember's delivery process exited"))
        for done in list(self._waiting.values()):
            done.set()
        self._gone.set()

    def _update(self, states: dict[str, Any]) -> None:
        for key, figures in states.get("workers", {}).items():
            worker = self._by_key.get(key)
            if worker is not None:
                worker.update(figures)

    def _save(self, worker: RemoteWorker) -> None:
        with contextlib.suppress(JournalError):
            self._journal.save_cursor(worker.entry.key, state=worker.state)


def _cannot_move(label: str, error: Any) -> OptionsError:
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}"
    return OptionsError(
        f"logger {label!r} cannot be delivered from ember's delivery process "
        f"(logger_delivery='process'): it could not be copied there ({error}). A logger "
        "built by name always can; a logger object must pickle, and its class must be "
        "importable by its module (not defined in the script run as __main__). Deliver "
        "from threads instead with logger_delivery='thread'"
    )


# --------------------------------------------------------------------------- the courier


class _CursorLink:
    """What a worker in the courier takes for its journal: the file it reads, and cursor
    saves sent to the training process, which holds the journal's only writer."""

    def __init__(self, path: str, send: Callable[[Any], None]) -> None:
        self.path = Path(path)
        self._send = send

    def save_cursor(self, logger: str, **fields: Any) -> bool:
        self._send(("cursor", logger, fields))
        return True


def _figures(workers: Sequence[Worker]) -> dict[str, dict[str, Any]]:
    return {
        w.entry.key: {
            "seq": w.cursor,
            "skipped": w.skipped,
            "failed": w.failed,
            "state": w._live_state(),
            "error": w.error,
            "tracker_ref": w.tracker_ref,
            "finalized": w.finalized,
        }
        for w in workers
    }


def _wake_every(workers: Sequence[Worker], interval: float, stop: threading.Event) -> None:
    """New records reach the database when the training process moves its spool in (every
    :data:`~ember.hub.tracking.journal.INGEST_INTERVAL_S`): look as often."""
    while not stop.wait(interval):
        for w in workers:
            w.wake()


def serve(inp: IO[bytes], out: IO[bytes]) -> int:
    """The courier's loop: rebuild the loggers, deliver, answer until told to stop or
    until the training process is gone."""
    from ember.hub.tracking.journal import INGEST_INTERVAL_S

    lock = threading.Lock()

    def send(message: Any) -> None:
        with lock, contextlib.suppress(OSError, ValueError):
            _send(out, message)

    hello = _receive(inp)
    if hello is None:
        return 0
    setup = hello[1]
    policy: DeliveryPolicy = setup["policy"]
    link = _CursorLink(setup["journal"], send)
    entries: list[tuple[LoggerEntry, RunInfo, int, int, str]] = []
    errors: dict[str, str] = {}
    for key, blob, info, start_seq, skipped, hint in setup["loggers"]:
        try:
            entries.append((pickle.loads(blob), info, start_seq, skipped, hint))
        except Exception as exc:
            errors[key] = f"{type(exc).__name__}: {exc}"
    redactor = Redactor(s for entry, *_ in entries for s in entry.secrets)
    workers: list[Worker] = []
    for entry, info, start_seq, skipped, hint in entries:
        workers.append(
            Worker(
                entry,
                link,  # type: ignore[arg-type]
                info,
                policy,
                redactor,
                start_seq=start_seq,
                skipped=skipped,
                sync_hint=hint,
            )
        )
    send(("ready", errors))
    if errors:
        return 1
    for w in workers:
        w.start()
    stop = threading.Event()
    threading.Thread(
        target=_wake_every, args=(workers, INGEST_INTERVAL_S, stop), daemon=True
    ).start()
    by_key = {w.entry.key: w for w in workers}

    def flush(request: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        done = {w.entry.key: w.flush(max(0.0, deadline - time.monotonic())) for w in workers}
        flushed = {k: "flushed" if ok else "pending" for k, ok in done.items()}
        send(("flushed", request, {"flushed": flushed, "workers": _figures(workers)}))

    def answer(request: int, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            send(("result", request, False, _picklable(error)))
            return
        try:
            send(("result", request, True, future.result()))
        except Exception as exc:  # the result does not pickle: nothing was written
            send(("result", request, False, TypeError(f"the result cannot be sent back: {exc}")))

    while True:
        message = _receive(inp)
        if message is None:
            # the training process is gone: no further tracker calls, no finalize
            stop.set()
            for w in workers:
                w.abandon()
            return 0
        op = message[0]
        if op == "flush":
            _, request, timeout = message
            threading.Thread(target=flush, args=(request, timeout), daemon=True).start()
        elif op == "call":
            _, request, key, after_seq, blob, on_logger = message
            try:
                fn = pickle.loads(blob)
            except Exception as exc:
                send(("result", request, False, _picklable(exc)))
                continue
            future = by_key[key].submit(after_seq, fn, on_logger=on_logger)
            future.add_done_callback(lambda f, r=request: answer(r, f))
        elif op == "stop":
            _, request, timeout, status = message
            finish_workers(workers, status, timeout)
            stop.set()
            send(("stopped", request, {"workers": _figures(workers)}))
            return 0


def _picklable(exc: BaseException) -> BaseException:
    """``exc``, or a RuntimeError with its text when it cannot be sent back."""
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _import_path(path: Sequence[str]) -> list[str]:
    """``path`` with its relative folders made absolute, so that the courier finds what
    this process finds even after one of them changes folder. Entries that are not
    folders (the markers of editable installs' import hooks) stay as they are."""
    return [os.path.abspath(p or os.curdir) if not p or os.path.exists(p) else p for p in path]


def main() -> int:
    """The courier's entry point (started by :class:`Courier` through :data:`_BOOT`)."""
    # a Ctrl-C in the terminal, or a scheduler's SIGTERM to the whole job, reaches this
    # process too: it ends when the training process tells it to, or is gone
    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # what the loggers print goes to standard error, never into the messages
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return serve(inp, out)
