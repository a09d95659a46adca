"""The logger contract: everything an experiment-tracker plugin implements.

A logger sees plain data only (``str``, ``int``, ``float``, nested ``dict`` of those, file
paths), never tensors, so a tracker plugin needs no torch. ember calls a logger from one
dedicated worker thread, never from the training thread, and never from two threads at
once; a logger therefore needs no locking of its own. With ``logger_delivery="process"``
that thread is in ember's delivery process, which receives the logger pickled, before
``open``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple, overload

#: the statuses a run finishes with
STATUSES: tuple[str, ...] = ("success", "failed", "interrupted")


@dataclass(frozen=True)
class Capabilities:
    """What a logger supports, so the core warns once instead of dropping data silently.

    Record kinds: ``hyperparams``, ``metrics``, ``text``, ``images``, ``artifacts`` (a
    logger takes a kind only when it declares it and overrides its ``log_*`` method).

    ``reattach``: after a resume (or in ``ember sync``), :meth:`Logger.open` re-opens the
    tracker run named by ``RunInfo.resume_ref`` instead of starting a new one.
    ``rewind``: on such a re-attach, the logger deletes what it holds past
    ``RunInfo.resume_step`` (MLflow and Comet cannot; their users see the superseded steps
    next to the resumed ones). ``offline``: works without a network (a local file, an
    offline mode), so it stays active under ``EMBER_OFFLINE=1``. ``experiment``: the logger
    exposes the tracker's own object as :attr:`Logger.experiment`, for
    ``trainer.loggers[name].call(fn)``.

    ember reads capabilities from the logger instance (``logger.capabilities``): the class
    attribute is the default, and ``__init__`` may replace it (MLflow on a local store is
    offline, the same class on a server is not).
    """

    hyperparams: bool = False
    metrics: bool = True
    text: bool = False
    images: bool = False
    artifacts: bool = False
    reattach: bool = False
    rewind: bool = False
    offline: bool = False
    experiment: bool = False

    def __post_init__(self) -> None:
        if self.rewind and not self.reattach:
            raise ValueError(
                "Capabilities(rewind=True) needs reattach=True: only a re-opened "
                "tracker run can have steps to delete"
            )

    def missing(self) -> list[str]:
        """Names of the record kinds this logger cannot take."""
        return [k for k in RECORD_CAPABILITIES if not getattr(self, k)]


#: the capabilities that name a kind of record
RECORD_CAPABILITIES: tuple[str, ...] = ("hyperparams", "metrics", "text", "images", "artifacts")


@dataclass(frozen=True)
class RunInfo:
    """The identity of the run a logger opens.

    ``id`` is ember's run id, stable across resumes; ``dir`` is the run directory (a
    logger that writes local files may write there). When ``resumed`` is true, the
    logger declared ``reattach`` and ``resume_ref`` is what its :meth:`Logger.open`
    returned the first time (the tracker's own run id): open that tracker run again.
    ``resume_step`` is set when the run resumed from a checkpoint taken at that step:
    records past it that the tracker already holds are superseded, and a logger that
    declares ``rewind`` deletes them, so that no step is counted twice.
    """

    id: str
    name: str
    dir: str
    started_at: float
    resumed: bool = False
    resume_ref: str | None = None
    resume_step: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class MetricRecord(NamedTuple):
    """One scalar: ``name`` took ``value`` at training ``step``, at ``wall_time`` (epoch s).

    ``seq`` is the record's position in the run journal: unique in the run, increasing in
    delivery order, and the same when the record is delivered again (a retry, a resume,
    ``ember sync``). 0 for a record that does not come from a journal. Immutable; a named
    tuple because a busy run hands loggers millions of them.
    """

    name: str
    value: float
    step: int
    wall_time: float
    seq: int = 0


class PackedStep(NamedTuple):
    """The metrics of one flush as the journal stores them: ``names`` took ``values`` at
    ``step``; their sequence numbers run up to ``seq``, one per name."""

    names: tuple[str, ...]
    values: Sequence[float]
    step: int
    wall_time: float
    seq: int


class MetricBatch(Sequence[MetricRecord]):
    """The records of one :meth:`Logger.log_metrics` call, as delivered from the journal.

    A sequence of :class:`MetricRecord` like any other (built one by one as they are read),
    plus :meth:`by_step`, which hands a flush over as one ``(step, names, values)`` group
    without building a record per metric: a logger that writes a row per step (the CSV
    logger) does a tenth of the Python work on a run that logs many metrics every step.
    ember builds it from what it reads in the journal; a logger only reads it.
    """

    __slots__ = ("_len", "_list", "_parts")

    def __init__(self, parts: Sequence[MetricRecord | PackedStep]) -> None:
        self._parts = parts
        self._len = sum(len(p.names) if isinstance(p, PackedStep) else 1 for p in parts)
        self._list: list[MetricRecord] | None = None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[MetricRecord]:
        if self._list is not None:
            yield from self._list
            return
        new = MetricRecord._make
        for part in self._parts:
            if isinstance(part, PackedStep):
                n = len(part.names)
                yield from map(
                    new,
                    zip(
                        part.names,
                        part.values,
                        repeat(part.step, n),
                        repeat(part.wall_time, n),
                        range(part.seq - n + 1, part.seq + 1),
                        strict=True,
                    ),
                )
            else:
                yield part

    @overload
    def __getitem__(self, index: int) -> MetricRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[MetricRecord]: ...
    def __getitem__(self, index: int | slice) -> MetricRecord | list[MetricRecord]:
        if self._list is None:
            self._list = list(self)
        return self._list[index]

    def __repr__(self) -> str:
        return f"MetricBatch({len(self)} records)"

    def by_step(self) -> Iterator[tuple[int, Sequence[str], Sequence[float]]]:
        """``(step, names, values)`` per flush, in order (a record not stored packed is a
        group of one); the same records as iterating, without a record object each."""
        for part in self._parts:
            if isinstance(part, PackedStep):
                yield part.step, part.names, part.values
            else:
                yield part.step, (part.name,), (part.value,)


class Logger:
    """Base class of every experiment tracker.

    Subclasses set :attr:`capabilities` and implement :meth:`log_metrics` plus the method
    of every other capability they declare. A call that raises is retried with backoff and,
    after repeated failures, the logger is quarantined for the rest of the run; the records
    stay in the run journal and ``ember sync`` delivers them later.

    **Lifecycle.** One logger object serves one tracker run: :meth:`open` once, then the
    ``log_*`` calls, then :meth:`finalize` once, at the end of the Trainer's last stage
    (``fit`` then ``test`` is one tracker run) or when the process exits.

    **Re-delivery.** Delivery is at-least-once. A call that raised is repeated with the
    same records; and when the process dies between a call and ember's note that it
    succeeded, that batch is delivered again later (after a resume or by ``ember sync``)
    to a logger that re-attached. A logger stores a record at most once: metrics are
    identified by :attr:`MetricRecord.seq` within one logger object, and by ``(name,
    step)`` across objects; texts and images by ``(key, step)``; artifacts by ``(name,
    step)``. Either the tracker overwrites by that identity, or the logger skips records it
    already holds (remembering the highest ``seq`` it wrote, and, after re-attaching,
    asking the tracker what it holds).
    """

    #: what this logger supports; set it on the class, or on the instance in ``__init__``
    #: when it depends on the options (read it as ``logger.capabilities``)
    capabilities: Capabilities = Capabilities()
    #: short name used in reports and cursors when the logger is given as an object, not
    #: by provider name (a class or an instance attribute)
    name: str = ""
    #: the most metric records one :meth:`log_metrics` call should hold, for a tracker
    #: whose requests have a size limit (``None``: ember's batch size, 1000); one flush is
    #: never split, so a flush of more metrics than this comes alone, in one call
    max_batch: int | None = None

    def open(self, run: RunInfo) -> str | None:
        """Open (or, when ``run.resumed``, re-attach to) the tracker run.

        Return the tracker's own reference for this run (a run id, a directory) if it has
        one: ember stores it in the journal and hands it back as ``run.resume_ref``.
        """
        return None

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (a nested dict of plain values; secrets already removed)."""
        raise NotImplementedError(_undeclared(self, "hyperparams", "log_hyperparams"))

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        """Record a batch of scalars, in the order they were logged."""
        raise NotImplementedError(_undeclared(self, "metrics", "log_metrics"))

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        """Record a piece of text under ``key``."""
        raise NotImplementedError(_undeclared(self, "text", "log_text"))

    def log_image(
        self, key: str, path: str, *, step: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """Record the PNG file at ``path`` (stored by ember in the run directory) under
        ``key``; ``metadata`` holds its ``width``, ``height`` and ``channels``."""
        raise NotImplementedError(_undeclared(self, "images", "log_image"))

    def log_artifact(
        self,
        path: str,
        kind: str,
        *,
        name: str,
        step: int | None,
        metadata: Mapping[str, Any],
    ) -> None:
        """Record the file or directory at ``path``; ``kind`` is e.g. ``checkpoint``."""
        raise NotImplementedError(_undeclared(self, "artifacts", "log_artifact"))

    def destination(self) -> str | None:
        """Where this logger's records go, when that is decided by its options: a folder
        or file (``"<run dir>/metrics.csv"``, an absolute path), or the tracker run it was
        told to use (``"mlflow run 1f2e... at sqlite:///..."``). ``None`` (the default):
        each :meth:`open` makes a place of its own, such as a new tracker run.

        Two loggers of one run with the same destination would write over each other, so
        ember refuses them before the run starts, quoting this text. Return the same
        string for the same place (resolve paths; ``<run dir>`` stands for the run
        directory)."""
        return None

    @property
    def experiment(self) -> Any:
        """The tracker's own object (a ``SummaryWriter``, an MLflow client and run id ...),
        valid between :meth:`open` and :meth:`finalize`. Users reach it with
        ``trainer.loggers[name].call(fn)``, which runs ``fn(experiment)`` on this logger's
        worker thread; a logger that overrides this declares ``experiment=True``."""
        raise NotImplementedError(_undeclared(self, "experiment", "experiment"))

    def finalize(self, status: str) -> None:
        """Close the tracker run with ``status``: ``success``, ``failed`` or ``interrupted``."""


_METHODS = {
    "hyperparams": "log_hyperparams",
    "metrics": "log_metrics",
    "text": "log_text",
    "images": "log_image",
    "artifacts": "log_artifact",
    "experiment": "experiment",
}


def _undeclared(logger: Logger, capability: str, method: str) -> str:
    return (
        f"{type(logger).__name__}.{method} is not implemented; a logger that declares "
        f"Capabilities({capability}=True) must override {method}"
    )


def check_logger(logger: object, label: str) -> Logger:
    """Check that ``logger`` honours the contract; return it, or raise a clear error."""
    if not isinstance(logger, Logger):
        raise TypeError(
            f"{label}: a logger must be an instance of ember.hub.Logger, got "
            f"{type(logger).__module__}.{type(logger).__qualname__}"
        )
    caps = logger.capabilities
    if not isinstance(caps, Capabilities):
        raise TypeError(
            f"{label}: {type(logger).__name__}.capabilities must be a "
            f"ember.hub.tracking.Capabilities, got {type(caps).__name__}"
        )
    for capability, method in _METHODS.items():
        overridden = getattr(type(logger), method) is not getattr(Logger, method)
        if getattr(caps, capability) and not overridden:
            raise TypeError(
                f"{label}: {type(logger).__name__} declares {capability}=True but does not "
                f"override {method}"
            )
    wanted = logger.max_batch
    if wanted is not None and (
        isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1
    ):
        raise ValueError(
            f"{label}: {type(logger).__name__}.max_batch must be a whole number of at least 1 "
            f"or None, not {wanted!r}; set it to the most metric records one log_metrics call "
            "may hold"
        )
    return logger


def flatten_params(params: Mapping[str, Any], sep: str = "/") -> dict[str, Any]:
    """Flatten nested hyperparameters into ``{"optimizer/lr": 0.1}`` for flat trackers."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}{sep}{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    for key, value in params.items():
        walk(str(key), value)
    return flat
