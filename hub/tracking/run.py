"""The run: what the trainer talks to.

``Run.start`` opens (or resumes) the journal, resolves the ``logger=`` argument into
loggers and starts one delivery worker per logger. ``log_*`` append to the journal and
return at once; ``finish`` waits for the loggers at most a deadline and returns a report.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import math
import os
import secrets as _random
import socket
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from ember.hub.errors import OptionsError, PluginLoadError
from ember.hub.tracking.courier import Courier, RemoteWorker, WorkerSpec
from ember.hub.tracking.fanout import (
    DeliveryPolicy,
    LoggerEntry,
    Worker,
    finish_workers,
    logger_report,
)
from ember.hub.tracking.journal import (
    CAPABILITY_OF_KIND,
    Journal,
    JournalError,
    JournalReader,
    journal_path,
)
from ember.hub.tracking.logger import (
    STATUSES,
    Capabilities,
    Logger,
    MetricRecord,
    RunInfo,
    check_logger,
)
from ember.hub.tracking.report import LoggerReport, Report, sync_command
from ember.hub.tracking.secrets import REDACTED, Redactor, redact_options

#: run directories live in ``<default_root_dir>/ember_runs/<run id>``
RUNS_DIR = "ember_runs"
#: what ``logger=None`` (the default) means: the journal plus the CSV logger
DEFAULT_LOGGERS: tuple[str, ...] = ("csv",)

LoggerArg = str | Mapping[str, Any] | Logger | Sequence[Any] | bool | None


class TrackingWarning(UserWarning):
    """A logger cannot take some records; they stay in the journal (one warning each)."""


# --------------------------------------------------------------------------- resolving


def resolve_loggers(logger: LoggerArg, *, plugin_manager: Any = None) -> list[LoggerEntry] | None:
    """Resolve the Trainer's ``logger=`` argument.

    ``None`` or ``True``: the default (CSV); ``False``: no tracking at all (returns
    ``None``); a provider name; a mapping ``{"name": ..., **options}``; a
    :class:`Logger` object; or a list of these (an empty list: the journal only). The
    entries this returns may be passed back (``Run.start(loggers=entries)``): they are
    used as they are, so a caller can resolve early and start the run later.
    Options are validated against the provider's schema before anything is built.
    """
    if logger is False:
        return None
    if logger is None or logger is True:
        logger = list(DEFAULT_LOGGERS)
    items = list(logger) if isinstance(logger, (list, tuple)) else [logger]
    if plugin_manager is None and any(isinstance(i, (str, Mapping)) for i in items):
        from ember.hub.manager import get_plugin_manager

        plugin_manager = get_plugin_manager()
    entries: list[LoggerEntry] = []
    for position, item in enumerate(items):
        entries.append(_resolve_one(item, position, plugin_manager))
    _check_apart(entries)
    seen: dict[str, int] = {}
    for entry in entries:
        n = seen[entry.key] = seen.get(entry.key, 0) + 1
        if n > 1:
            entry.key = f"{entry.key}#{n}"
            entry.label = f"{entry.label}#{n}"
    return entries


def _resolve_one(item: Any, position: int, pm: Any) -> LoggerEntry:
    if isinstance(item, LoggerEntry):  # resolved earlier (the Trainer checks at construction)
        return item
    if isinstance(item, Logger) or hasattr(item, "log_metrics"):
        check_logger(item, f"logger[{position}]")
        label = item.name or type(item).__name__.lower()
        module = type(item).__module__.split(".")[0]
        return LoggerEntry(key=label, label=label, logger=item, distribution=module)
    if isinstance(item, str):
        name, options = item, {}
    elif isinstance(item, Mapping):
        if "name" not in item:
            raise OptionsError(
                f"logger[{position}]: a logger given as a mapping needs a 'name' key "
                f"(e.g. {{'name': 'csv'}}); got keys {sorted(item)}"
            )
        name = item["name"]
        options = {k: v for k, v in item.items() if k != "name"}
    else:
        raise TypeError(
            f"logger[{position}]: expected a provider name, a mapping with 'name', an "
            f"ember.hub.Logger object, a list of these, or False; got {type(item).__name__}"
        )
    spec = pm.get("logger", name)
    validated = spec.validate_options(options)
    secret_keys = spec.secret_options()
    try:
        obj = spec.load()(**validated)
    except Exception as exc:
        # the constructor's message may quote a secret option it was given
        redactor = Redactor(v for k, v in validated.items() if k in secret_keys and v)
        raise PluginLoadError(
            f"logger {spec.name!r} (from {spec.distribution or 'code'}) could not be built: "
            + redactor.text(f"{type(exc).__name__}: {exc}")
        ) from None
    check_logger(obj, f"logger {spec.name!r} (from {spec.distribution or 'code'})")
    shown = redact_options(options, secret_keys)
    return LoggerEntry(
        key=logger_key(spec.name, shown),
        label=spec.name,
        logger=obj,
        provider=spec.name,
        options=shown,
        distribution=spec.distribution,
        version=spec.version,
        secrets=tuple(str(v) for k, v in validated.items() if k in secret_keys and v),
    )


def _check_apart(entries: Sequence[LoggerEntry]) -> None:
    """Refuse two loggers that would write to one place: the same object twice, the same
    provider with the same options, or two loggers with the same
    :meth:`Logger.destination` (``logger=["csv", "csv"]`` would write one metrics.csv
    twice over, with duplicate columns and rows)."""
    for i, entry in enumerate(entries):
        for j, earlier in enumerate(entries[:i]):
            first, second = f"logger[{j}] ({earlier.label})", f"logger[{i}] ({entry.label})"
            if entry.logger is earlier.logger:
                raise OptionsError(
                    f"{first} and {second} are the same logger object: one logger object "
                    "serves one tracker run; list it once"
                )
            place = entry.logger.destination()
            if place is not None and place == earlier.logger.destination():
                reason = f"would both write to {place}"
            elif (
                entry.provider
                and (entry.provider, entry.options) == (earlier.provider, earlier.options)
                and REDACTED not in map(str, entry.options.values())
            ):
                reason = "are the same provider with the same options"
            else:
                continue
            raise OptionsError(
                f"{first} and {second} {reason}: two loggers of one run must not share a "
                "destination, since each would write over the other's records. List it "
                "once, or give each its own destination through its options (for csv "
                "and tensorboard a distinct save_dir, e.g. "
                f"{{'name': {entry.label!r}, 'save_dir': 'logs/second'}}; for a tracker, "
                "a distinct run or experiment)"
            )


def logger_key(provider: str, options: Mapping[str, Any]) -> str:
    """The cursor key of ``provider`` with (redacted) ``options``: the name alone when
    there are no non-secret options, else the name and a short hash of them."""
    visible = {k: v for k, v in options.items() if v != REDACTED}
    if not visible:
        return provider
    digest = hashlib.sha1(json.dumps(visible, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{provider}:{digest}"


def global_rank_from_env() -> int:
    """The global rank as launchers announce it (torchrun's RANK, SLURM), else 0."""
    for var in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(var)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def new_run_id(now: float | None = None) -> str:
    """A sortable, unique run id: ``YYYYmmdd-HHMMSS-xxxx``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}-{_random.token_hex(2)}"


# --------------------------------------------------------------------------- the run

_live_runs: set[Run] = set()
_atexit_lock = threading.Lock()
_atexit_registered = False


def finish_open_runs() -> None:
    """Finish every run still open in this process, all at once (each within its own
    deadline): a Trainer's, with its last stage's outcome, or one the program forgot to
    finish, or could not after an uncaught error, as ``failed``. Runs at exit."""
    threads = [
        threading.Thread(target=finish_quietly, args=(run,), name="ember-finish-run")
        for run in list(_live_runs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def finish_when_collected(owner: object, run: Run) -> None:
    """Finish ``run`` (in a thread of its own) once ``owner``, a Trainer, is garbage
    collected: its last stage is then certainly its last. Until then, or until exit,
    the tracker runs stay open for further stages."""

    def collected(run: Run = run) -> None:
        if run.report is None:
            threading.Thread(
                target=finish_quietly, args=(run,), name="ember-finish-run", daemon=True
            ).start()

    weakref.finalize(owner, collected).atexit = False  # exit has finish_open_runs


def finish_quietly(run: Run) -> None:
    """Finish ``run`` with its :attr:`Run.exit_status`; print the report to stderr unless
    the run is quiet and delivery complete. Never raises (it runs at exit and from a
    garbage-collected Trainer)."""
    with contextlib.suppress(Exception):
        report = run.finish(run.exit_status)
        if not (run.quiet_exit and report.complete):
            print(report, file=sys.stderr)


class Run:
    """One training run as the tracking pipeline sees it. Create with :meth:`Run.start`.

    Not thread-safe for concurrent ``log_*`` calls from several threads beyond what the
    journal's lock provides: records from two threads interleave in arrival order.
    """

    enabled = True

    def __init__(
        self,
        *,
        journal: Journal,
        info: RunInfo,
        entries: Sequence[LoggerEntry],
        workers: Sequence[Worker | RemoteWorker],
        deferred: Mapping[str, str],
        unsupported: Mapping[str, tuple[str, ...]],
        policy: DeliveryPolicy,
        redactor: Redactor,
        courier: Courier | None = None,
    ) -> None:
        self._journal = journal
        self.info = info
        self._entries = list(entries)
        self._workers = list(workers)
        #: the delivery process, when the loggers deliver from one (``DeliveryPolicy.process``)
        self._courier = courier
        #: the worker threads of this process, woken at every record
        self._wakers = [w for w in self._workers if isinstance(w, Worker)]
        self._deferred = dict(deferred)
        self._unsupported = dict(unsupported)
        self._policy = policy
        self._redactor = redactor
        self.report: Report | None = None
        #: the status :func:`atexit` finishes the run with if it is still open then; the
        #: Trainer sets it to the outcome of each stage (:meth:`end_stage`)
        self.exit_status = "failed"
        #: at exit, print the report only when delivery is incomplete
        self.quiet_exit = False
        self._kinds_seen: set[str] = {"metric"}
        self._finishing = threading.Lock()
        #: the redacted names of each set of metric names logged (see :meth:`log_metrics`)
        self._clean_names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._clean_generation = redactor.generation

    # ------------------------------------------------------------------ starting
    @staticmethod
    def new_id() -> str:
        """A fresh run id, for a caller that chooses it ahead (``Run.start(run_id=...)``)."""
        return new_run_id()

    @classmethod
    def start(
        cls,
        root_dir: str | os.PathLike[str],
        loggers: LoggerArg = None,
        *,
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
        resume: Mapping[str, Any] | None = None,
        resume_step: int | None = None,
        rank: int | None = None,
        policy: DeliveryPolicy | None = None,
        offline: bool | None = None,
        plugin_manager: Any = None,
        run_id: str | None = None,
    ) -> Run:
        """Open a new run under ``root_dir/ember_runs/``, or resume one.

        :param loggers: the Trainer's ``logger=`` argument (see :func:`resolve_loggers`).
            ``False`` returns a :class:`DisabledRun`: no journal, no loggers.
        :param config: the resolved configuration, recorded with secrets redacted.
        :param resume: ``run.state_dict()`` as stored in a checkpoint: continue that
            run's journal, re-attach each logger to its tracker run.
        :param resume_step: the checkpoint's step; records logged after it are superseded.
        :param rank: the global rank; only rank zero holds the journal and loggers, every
            other rank gets a :class:`DisabledRun` (default: from RANK / SLURM_PROCID).
        :param offline: keep loggers that need a network idle; their records wait in the
            journal for ``ember sync`` (default: ``EMBER_OFFLINE=1``).
        :param run_id: the id of a new run, chosen ahead (the Trainer does, so that its
            checkpoint folder is known before the run opens); default: a fresh one.
        """
        rank = global_rank_from_env() if rank is None else rank
        if rank != 0:
            return DisabledRun()
        entries = resolve_loggers(loggers, plugin_manager=plugin_manager)
        if entries is None:
            return DisabledRun()
        policy = policy or DeliveryPolicy()
        if offline is None:
            from ember.hub.manager import env_flag  # EMBER_OFFLINE=maybe is an error

            offline = env_flag("EMBER_OFFLINE")
        redactor = Redactor(s for e in entries for s in e.secrets)
        now = time.time()

        if resume:
            for live in list(_live_runs):
                # the run is still open in this process (a fit that returned, then a resume
                # from one of its checkpoints): finish it first, one writer per run
                if live.info.id == resume.get("id"):
                    live.finish(live.exit_status)
            journal, info = _reopen(Path(root_dir), resume, now)
        else:
            run_id = run_id or new_run_id(now)
            run_dir = Path(root_dir) / RUNS_DIR / run_id
            run_name = redactor.text(name) if name else run_id
            journal = Journal.create(run_dir, run_id, run_name, now)
            info = RunInfo(id=run_id, name=run_name, dir=str(run_dir), started_at=now)

        try:
            return cls._begin(
                journal,
                info,
                entries,
                config,
                resume,
                resume_step,
                policy,
                offline,
                redactor,
                plugin_manager,
            )
        except BaseException:
            journal.close()
            raise

    @classmethod
    def _begin(
        cls,
        journal: Journal,
        info: RunInfo,
        entries: list[LoggerEntry],
        config: Mapping[str, Any] | None,
        resume: Mapping[str, Any] | None,
        resume_step: int | None,
        policy: DeliveryPolicy,
        offline: bool,
        redactor: Redactor,
        plugin_manager: Any,
    ) -> Run:
        from ember.hub import __version__
        from ember.hub.manager import get_plugin_manager

        for entry in entries:
            entry.options = redactor.data(entry.options)
        from_step = resume_step if resume else None
        journal.begin_segment(from_step, os.getpid(), socket.gethostname())
        journal.event(
            "start",
            {
                "resumed": bool(resume),
                "from_step": from_step,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "python": sys.version.split()[0],
                "ember": __version__,
            },
        )
        if config is not None:
            journal.event("config", redactor.data(_plain(config)))
        plugins = [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "status": p.status,
            }
            for p in (plugin_manager or get_plugin_manager()).plugins()
        ]
        journal.event("plugins", plugins)
        journal.event(
            "loggers",
            [
                {
                    "key": e.key,
                    "provider": e.provider or e.label,
                    "options": redactor.data(e.options),
                    "distribution": e.distribution,
                    "version": e.version,
                }
                for e in entries
            ],
        )
        journal.event("status", {"status": "running"})

        with JournalReader(journal.path) as reader:
            cursors = reader.cursors()
        specs: list[WorkerSpec] = []
        deferred: dict[str, str] = {}
        unsupported: dict[str, tuple[str, ...]] = {}
        cannot_rewind: list[str] = []
        for entry in entries:
            caps = entry.logger.capabilities
            unsupported[entry.key] = tuple(
                cap for cap in CAPABILITY_OF_KIND.values() if not getattr(caps, cap)
            )
            hint = sync_command(info.dir, entry.provider or entry.label, entry.options)
            cursor = cursors.get(entry.key)
            logger_info, start_seq, skipped = info, 0, 0
            if cursor is not None and caps.reattach:
                logger_info = replace(
                    info, resumed=True, resume_ref=cursor["tracker_ref"], resume_step=from_step
                )
                start_seq, skipped = cursor["seq"], cursor["skipped"]
                if from_step is not None and not caps.rewind and start_seq:
                    cannot_rewind.append(entry.label)
            elif cursor is not None:
                warnings.warn(
                    f"logger {entry.label!r} cannot re-attach to its tracker run; it opens "
                    "a new one and receives the whole journal again",
                    TrackingWarning,
                    stacklevel=3,
                )
            if offline and not caps.offline:
                deferred[entry.key] = "deferred (offline)"
                journal.save_cursor(
                    entry.key,
                    provider=entry.provider or entry.label,
                    options=json.dumps(entry.options, sort_keys=True, default=str),
                    kinds=",".join(entry.supported_kinds()),
                    seq=start_seq,
                    skipped=skipped,
                    state="deferred (offline)",
                )
                warnings.warn(
                    f"logger {entry.label!r} needs a network and ember runs offline; its "
                    f"records wait in the journal. Deliver them later with: {hint}",
                    TrackingWarning,
                    stacklevel=3,
                )
                continue
            specs.append(WorkerSpec(entry, logger_info, start_seq, skipped, hint))
        if cannot_rewind:
            warnings.warn(
                f"logger(s) {', '.join(map(repr, cannot_rewind))} cannot delete the steps "
                f"after {from_step} that they received before this resume: there, those "
                "steps appear twice (the values before and after the resume); the journal, "
                "`ember runs` and the loggers that can rewind show only the resumed ones",
                TrackingWarning,
                stacklevel=3,
            )
            journal.event("warning", {"cannot_rewind": cannot_rewind, "step": from_step})
        courier = None
        workers: list[Worker | RemoteWorker]
        if policy.process and specs:
            courier = Courier(journal, specs, policy)
            try:
                journal.event("courier", {"pid": courier.pid})
            except BaseException:
                courier.kill()
                raise
            workers = list(courier.workers)
        else:
            workers = [
                Worker(
                    s.entry,
                    journal,
                    s.run_info,
                    policy,
                    redactor,
                    start_seq=s.start_seq,
                    skipped=s.skipped,
                    sync_hint=s.sync_hint,
                )
                for s in specs
            ]
        run = cls(
            journal=journal,
            info=info,
            entries=entries,
            workers=workers,
            deferred=deferred,
            unsupported=unsupported,
            policy=policy,
            redactor=redactor,
            courier=courier,
        )
        for w in run._wakers:
            w.start()
        _track(run)
        return run

    # ------------------------------------------------------------------ identity
    @property
    def id(self) -> str:
        """The run id (stable across resumes)."""
        return self.info.id

    @property
    def name(self) -> str:
        """The run's display name."""
        return self.info.name

    @property
    def dir(self) -> Path:
        """The run directory (journal, CSV files, anything else of this run)."""
        return Path(self.info.dir)

    @property
    def journal_path(self) -> Path:
        """The journal file."""
        return journal_path(self.info.dir)

    def state_dict(self) -> dict[str, Any]:
        """The run's identity, for checkpoints; pass it back as ``Run.start(resume=...)``."""
        return {"id": self.info.id, "name": self.info.name, "dir": self.info.dir}

    # ------------------------------------------------------------------ logging
    def log_metrics(
        self, metrics: Mapping[str, float], step: int, *, wall_time: float | None = None
    ) -> None:
        """Record scalars at ``step``: one journal statement, no waiting on any logger."""
        wall = time.time() if wall_time is None else wall_time
        keys = tuple(metrics)
        # a run flushes the same names again and again: redact each set of names once
        # (again once a secret was learnt since)
        if self._clean_generation != self._redactor.generation:
            self._clean_names.clear()
            self._clean_generation = self._redactor.generation
        names = self._clean_names.get(keys)
        if names is None:
            clean = self._redactor.name
            names = self._clean_names[keys] = tuple(clean(str(k)) for k in keys)
        try:
            self._journal.append_step(names, metrics.values(), int(step), wall)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"log_metrics needs a mapping of metric name to number and an int step; {exc}"
            ) from None
        for w in self._wakers:
            w.wake()

    def log_records(self, records: Iterable[MetricRecord]) -> None:
        """Record scalars of several steps (a flush that spans steps) in one transaction."""
        clean = self._redactor.name
        rows = [(clean(r.name), float(r.value), int(r.step), r.wall_time) for r in records]
        self._journal.append_metrics(rows)
        for w in self._wakers:
            w.wake()

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (nested dicts allowed; secrets redacted)."""
        if not isinstance(params, Mapping):
            raise TypeError(f"log_hyperparams needs a mapping, got {type(params).__name__}")
        self._append("hparams", "", None, self._redactor.data(_plain(params)))

    def log_text(self, key: str, text: str, *, step: int | None = None) -> None:
        """Record a piece of text under ``key``."""
        self._append(
            "text", self._redactor.text(str(key)), step, {"text": self._redactor.text(str(text))}
        )

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` (nested plain data) with this run's secrets redacted, for
        what the caller writes itself (the hyperparameters stored in a checkpoint)."""
        return self._redactor.data(value)

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        kind: str = "file",
        *,
        name: str | None = None,
        step: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a reference to a file or directory (``kind``: ``checkpoint``, ``model``...).

        The journal holds the path, not a copy: the file must still be there when a
        logger (or a later ``ember sync``) delivers it.
        """
        full = os.path.abspath(os.fspath(path))
        data = {
            "path": self._redactor.text(full),
            "kind": self._redactor.text(str(kind)),
            "metadata": self._redactor.data(_plain(metadata or {})),
        }
        label = self._redactor.text(name or os.path.basename(full))
        self._append("artifact", label, step, data)

    def log_image(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        step: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the PNG file at ``path`` under ``key`` (by reference, like an artifact:
        keep it where it is; ``trainer.log_image`` stores it in the run directory)."""
        data = {
            "path": self._redactor.text(os.path.abspath(os.fspath(path))),
            "metadata": self._redactor.data(_plain(metadata or {})),
        }
        self._append("image", self._redactor.text(str(key)), step, data)

    @property
    def loggers(self) -> LoggerHandles:
        """A handle on each logger of the run, by position or by label
        (``run.loggers["tensorboard"].call(fn)``)."""
        workers = {w.entry.key: w for w in self._workers}
        return LoggerHandles(
            LoggerHandle(e, workers.get(e.key), self._journal) for e in self._entries
        )

    def _append(self, kind: str, name: str, step: int | None, data: Any) -> None:
        if kind not in self._kinds_seen:
            self._kinds_seen.add(kind)
            self._warn_unsupported(kind)
        self._journal.append(kind, name, step, time.time(), data)
        for w in self._wakers:
            w.wake()

    def _warn_unsupported(self, kind: str) -> None:
        """Once per kind, when the run first logs it: name the loggers that cannot take it."""
        capability = CAPABILITY_OF_KIND[kind]
        for entry in self._entries:
            if capability in self._unsupported.get(entry.key, ()):
                warnings.warn(
                    f"logger {entry.label!r} does not support {capability}; those records "
                    "are kept in the run journal only (see `ember runs show`)",
                    TrackingWarning,
                    stacklevel=4,
                )

    def rewind(self, step: int) -> None:
        """Supersede every record logged after ``step`` (resume from a checkpoint there).

        ``Run.start(resume=..., resume_step=...)`` does this before the loggers open, so
        they are told; on a live run, trackers that already received those records keep
        them.
        """
        self._journal.begin_segment(int(step), os.getpid(), socket.gethostname())
        self._journal.event("rewind", {"step": int(step)})

    # ------------------------------------------------------------------ stages
    def flush(self, timeout: float | None = None) -> Report:
        """Wait (at most ``timeout`` s in all, default the policy's ``finalize_timeout``)
        until every logger holds what was logged so far; return where they stand. The
        tracker runs stay open."""
        if self.report is not None:
            return self.report
        timeout = self._policy.finalize_timeout if timeout is None else timeout
        if self._courier is not None:
            self._courier.flush(timeout)
        else:
            deadline = time.monotonic() + timeout
            for w in self._wakers:
                w.flush(max(0.0, deadline - time.monotonic()))
        with JournalReader(self._journal.path) as reader:
            return self._build_report(reader, "running")

    def begin_stage(self, stage: str) -> None:
        """A Trainer stage (``fit``, ``validate``, ``test``) starts in this run."""
        self._journal.event("stage", {"stage": stage})
        self._journal.event("status", {"status": "running"})

    def end_stage(self, stage: str, outcome: str, *, timeout: float | None = None) -> Report:
        """A stage ended with ``outcome``: recorded, and delivered within ``timeout``.

        The tracker runs stay open for the next stage; they are finalized once, by
        :meth:`finish`, or at exit with the last stage's outcome (:attr:`exit_status`).
        """
        if outcome not in STATUSES:
            raise ValueError(f"outcome must be one of {', '.join(STATUSES)}; got {outcome!r}")
        self._journal.event("stage_end", {"stage": stage, "outcome": outcome})
        self._journal.event("status", {"status": outcome})
        self.exit_status = outcome
        return self.flush(timeout)

    # ------------------------------------------------------------------ finishing
    def finish(self, status: str = "success", *, timeout: float | None = None) -> Report:
        """Record the final status, let each logger deliver and finalize within
        ``timeout`` seconds (default: the policy's ``finalize_timeout``), close the
        journal and return the report. Calling it again returns the same report."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        with self._finishing:  # at exit, a collected Trainer's thread and the main one
            if self.report is None:
                self.report = self._finish(status, timeout)
        return self.report

    def _finish(self, status: str, timeout: float | None) -> Report:
        timeout = self._policy.finalize_timeout if timeout is None else timeout
        if math.isnan(timeout) or timeout < 0:
            raise ValueError(f"finish(timeout=...) takes seconds, at least 0; got {timeout!r}")
        self._journal.event("status", {"status": status})
        if self._courier is not None:
            self._courier.finish(status, timeout)
        else:
            finish_workers(self._wakers, status, timeout)
        with JournalReader(self._journal.path) as reader:
            report = self._build_report(reader, status)
        self._journal.close()
        _live_runs.discard(self)
        return report

    def _build_report(self, reader: JournalReader, status: str) -> Report:
        loggers: list[LoggerReport] = []
        workers = {w.entry.key: w for w in self._workers}
        cursors = reader.cursors()
        counts = reader.counts_by_kind()
        logged = {cap for kind, cap in CAPABILITY_OF_KIND.items() if counts.get(kind)}
        for entry in self._entries:
            # only mention what this run actually logged and the logger could not take
            unsupported = tuple(
                cap for cap in self._unsupported.get(entry.key, ()) if cap in logged
            )
            worker = workers.get(entry.key)
            if worker is not None:
                loggers.append(worker.report(reader, unsupported))
                continue
            cursor = cursors.get(entry.key, {})
            loggers.append(
                logger_report(
                    reader,
                    key=entry.key,
                    label=entry.label,
                    kinds=entry.supported_kinds(),
                    cursor=cursor.get("seq", 0),
                    skipped=cursor.get("skipped", 0),
                    failed_batch=0,
                    state=self._deferred.get(entry.key, "idle"),
                    error=None,
                    unsupported=unsupported,
                    sync_command=sync_command(
                        self.info.dir, entry.provider or entry.label, entry.options
                    ),
                )
            )
        return Report(
            run_id=self.info.id,
            run_name=self.info.name,
            run_dir=self.info.dir,
            status=status,
            records=counts,
            loggers=tuple(loggers),
        )

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.finish("success")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed")


class DisabledRun(Run):
    """The run of a process that tracks nothing: ``logger=False``, or a rank other than
    zero. Every method is accepted and does nothing, so callers need no branches."""

    enabled = False

    def __init__(self) -> None:
        self.info = RunInfo(id="", name="", dir="", started_at=time.time())
        self.report = None
        self.exit_status = "failed"
        self.quiet_exit = True

    @property
    def id(self) -> str:
        """Empty: a disabled run has no identity."""
        return ""

    @property
    def dir(self) -> Path:
        """Raises: a disabled run has no directory."""
        raise JournalError("tracking is disabled in this process (logger=False or rank != 0)")

    def state_dict(self) -> dict[str, Any]:
        """Empty: nothing to resume."""
        return {}

    def log_metrics(
        self, metrics: Mapping[str, float], step: int, *, wall_time: float | None = None
    ) -> None:
        """Nothing is recorded."""

    def log_records(self, records: Iterable[MetricRecord]) -> None:
        """Nothing is recorded."""

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Nothing is recorded."""

    def log_text(self, key: str, text: str, *, step: int | None = None) -> None:
        """Nothing is recorded."""

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        kind: str = "file",
        *,
        name: str | None = None,
        step: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Nothing is recorded."""

    def log_image(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        step: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Nothing is recorded."""

    @property
    def loggers(self) -> LoggerHandles:
        """None: a disabled run has no loggers."""
        return LoggerHandles(())

    def rewind(self, step: int) -> None:
        """Nothing to rewind."""

    def redact(self, value: Any) -> Any:
        """``value`` with environment secrets and secret-named entries redacted."""
        return Redactor().data(value)

    def flush(self, timeout: float | None = None) -> Report:
        """An empty report."""
        return Report(run_id=None, run_name=None, run_dir=None, status="running")

    def begin_stage(self, stage: str) -> None:
        """Nothing is recorded."""

    def end_stage(self, stage: str, outcome: str, *, timeout: float | None = None) -> Report:
        """An empty report."""
        return self.flush(timeout)

    def finish(self, status: str = "success", *, timeout: float | None = None) -> Report:
        """An empty report."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        self.report = Report(run_id=None, run_name=None, run_dir=None, status=status)
        return self.report


class LoggerHandle:
    """The user's handle on one logger of a live run: its label, its capabilities, and
    :meth:`call`, the escape hatch to the tracker's own object."""

    def __init__(
        self, entry: LoggerEntry, worker: Worker | RemoteWorker | None, journal: Journal
    ) -> None:
        self._entry = entry
        self._worker = worker
        self._journal = journal

    @property
    def name(self) -> str:
        """The logger's label (its provider name, ``#2`` for a second one of a kind)."""
        return self._entry.label

    @property
    def capabilities(self) -> Capabilities:
        """What the logger declared."""
        return self._entry.logger.capabilities

    @property
    def logger(self) -> Logger:
        """The logger object, for its own plugin's hooks (which logger options were given);
        its tracker methods run on the worker thread only: use :meth:`call`."""
        return self._entry.logger

    def call(self, fn: Callable[[Any], Any]) -> Future[Any]:
        """Run ``fn(experiment)`` against the tracker's own object on the logger's worker
        thread, after every record logged before this call and before any logged after.

        Returns a future with ``fn``'s result (or its exception; a call is never retried).
        The call is not journaled, since a callable cannot be replayed: ``ember sync`` and a
        logger that fell behind and was quarantined never run it. Copy tensors you pass in
        (``t.detach().cpu().clone()``): ``fn`` runs later, on another thread. When the
        loggers deliver from ember's delivery process (``DeliveryPolicy(process=True)``),
        ``fn`` and its result are pickled: a function defined at the top level of a
        module (or ``functools.partial`` of one), not a lambda or a closure.
        """
        caps = self.capabilities
        if not caps.experiment:
            raise TypeError(
                f"logger {self.name!r} ({type(self._entry.logger).__name__}) has no experiment "
                "object to call (it does not declare Capabilities(experiment=True))"
            )
        return self._submit(fn, on_logger=False)

    def call_logger(self, fn: Callable[[Any], Any]) -> Future[Any]:
        """Run ``fn(logger)`` on the logger object that delivers, like :meth:`call`: on
        its worker thread, or in ember's delivery process (where :attr:`logger` is not
        that object), in order with the records. For a logger plugin's own hooks, which
        hand their logger something from the training process (ember-tensorboard's
        graph); ``fn`` must then pickle, as for :meth:`call`."""
        return self._submit(fn, on_logger=True)

    def _submit(self, fn: Callable[[Any], Any], *, on_logger: bool) -> Future[Any]:
        worker = self._worker
        if worker is None:
            raise RuntimeError(
                f"logger {self.name!r} is not delivering in this process (offline or "
                "idle): its experiment object does not exist"
            )
        if not worker.is_alive():
            raise RuntimeError(f"logger {self.name!r} is not running ({worker.state})")
        try:
            after = self._journal.last_seq()
        except JournalError:
            raise RuntimeError(f"logger {self.name!r} is not running (the run finished)") from None
        return worker.submit(after, fn, on_logger=on_logger)

    def __repr__(self) -> str:
        return f"<LoggerHandle {self.name!r}>"


class LoggerHandles(tuple[LoggerHandle, ...]):
    """The run's logger handles: index by position, or by label (``handles["csv"]``)."""

    def __new__(cls, handles: Iterable[LoggerHandle]) -> LoggerHandles:
        return super().__new__(cls, handles)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for handle in self:
                if handle.name == key:
                    return handle
            names = ", ".join(h.name for h in self) or "none"
            raise KeyError(f"no logger {key!r} in this run (its loggers: {names})")
        return super().__getitem__(key)


def _reopen(root_dir: Path, resume: Mapping[str, Any], now: float) -> tuple[Journal, RunInfo]:
    run_id = resume.get("id")
    if not run_id:
        raise ValueError(
            "resume must be the run identity stored in a checkpoint (run.state_dict()), "
            f"with an 'id'; got {dict(resume)!r}"
        )
    candidates = [Path(p) for p in (resume.get("dir"),) if p] + [root_dir / RUNS_DIR / run_id]
    for run_dir in candidates:
        if journal_path(run_dir).is_file():
            journal = Journal.open(run_dir)
            with JournalReader(run_dir) as reader:
                if reader.id != run_id:
                    journal.close()
                    raise JournalError(
                        f"{run_dir} holds run {reader.id}, not {run_id}: the checkpoint "
                        "belongs to another run directory"
                    )
                info = RunInfo(
                    id=run_id, name=reader.name, dir=str(run_dir), started_at=reader.created_at
                )
            return journal, info
    run_dir = candidates[-1]
    warnings.warn(
        f"the journal of run {run_id} was not found (looked in "
        f"{', '.join(map(str, candidates))}); starting a new journal there under the same id",
        TrackingWarning,
        stacklevel=3,
    )
    name = str(resume.get("name") or run_id)
    journal = Journal.create(run_dir, run_id, name, now)
    return journal, RunInfo(id=run_id, name=name, dir=str(run_dir), started_at=now)


def _plain(value: Any) -> Any:
    """Nested data reduced to what JSON and every tracker understand."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)  # numpy scalars, 0-d arrays
    if callable(item):
        with contextlib.suppress(Exception):
            return _plain(item())
    return str(value)


def _track(run: Run) -> None:
    global _atexit_registered
    _live_runs.add(run)
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(finish_open_runs)
            _atexit_registered = True
