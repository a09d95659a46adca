"""The logger contract: everything an experiment-tracker plugin implements.

A logger sees plain data only (``str``, ``int``, ``float``, nested ``dict`` of those, file
paths), never tensors, so a tracker plugin needs no torch. ember calls a logger from one
dedicated worker thread, never from the training thread, and never from two threads at
once; a logger therefore needs no locking of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: the statuses a run finishes with
STATUSES: tuple[str, ...] = ("success", "failed", "interrupted")


@dataclass(frozen=True)
class Capabilities:
    """What a logger supports, so the core warns once instead of dropping data silently.

    ``resume``: :meth:`Logger.open` re-attaches to the tracker run named by
    ``RunInfo.resume_ref``. ``offline``: the logger works without a network (a local file,
    an offline mode), so it stays active when ember runs offline (``EMBER_OFFLINE=1``).
    """

    hyperparams: bool = False
    metrics: bool = True
    text: bool = False
    artifacts: bool = False
    resume: bool = False
    offline: bool = False

    def missing(self) -> list[str]:
        """Names of the record kinds this logger cannot take."""
        kinds = ("hyperparams", "metrics", "text", "artifacts")
        return [k for k in kinds if not getattr(self, k)]


@dataclass(frozen=True)
class RunInfo:
    """The identity of the run a logger opens.

    ``id`` is ember's run id, stable across resumes; ``dir`` is the run directory (a
    logger that writes local files may write there). When ``resumed`` is true,
    ``resume_ref`` is what this logger's :meth:`Logger.open` returned the first time (the
    tracker's own run id), and records with a step greater than ``resume_step`` that the
    tracker already holds are superseded: a logger that can drop them should, so that no
    step is counted twice.
    """

    id: str
    name: str
    dir: str
    started_at: float
    resumed: bool = False
    resume_ref: str | None = None
    resume_step: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricRecord:
    """One scalar: ``name`` took ``value`` at training ``step``, at ``wall_time`` (epoch s)."""

    name: str
    value: float
    step: int
    wall_time: float


class Logger:
    """Base class of every experiment tracker.

    Subclasses set :attr:`capabilities` and implement :meth:`log_metrics` plus the method
    of every other capability they declare. A call that raises is retried with backoff and,
    after repeated failures, the logger is quarantined for the rest of the run; the records
    stay in the run journal and ``ember sync`` delivers them later. Delivery is
    at-least-once: after a crash, the batch that was in flight may be delivered again.
    """

    #: what this logger supports
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: short name used in reports and cursors when the logger is given as an object, not
    #: by provider name (a class or an instance attribute)
    name: str = ""

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

    def finalize(self, status: str) -> None:
        """Close the tracker run with ``status``: ``success``, ``failed`` or ``interrupted``."""


_METHODS = {
    "hyperparams": "log_hyperparams",
    "metrics": "log_metrics",
    "text": "log_text",
    "artifacts": "log_artifact",
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
    caps = type(logger).capabilities
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
                f"override {method}()"
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
