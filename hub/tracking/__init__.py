"""ember.hub.tracking: the tracking pipeline, torch-free.

The logger contract (:class:`Logger`, :class:`Capabilities`, :class:`RunInfo`,
:class:`MetricRecord`), the run journal, the per-logger delivery workers, and
:class:`Run`, the object the trainer talks to. See docs/tracking.md.

The contract is imported eagerly (``ember.hub`` re-exports ``Logger``); the pipeline
(SQLite, threads, logging) only when first used, so ``import ember.hub`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ember.hub.tracking.logger import (
    STATUSES,
    Capabilities,
    Logger,
    MetricRecord,
    RunInfo,
    flatten_params,
)

if TYPE_CHECKING:
    from ember.hub.tracking.fanout import DeliveryPolicy, LoggerEntry
    from ember.hub.tracking.journal import JournalError, JournalReader
    from ember.hub.tracking.report import LoggerReport, Report
    from ember.hub.tracking.run import (
        DEFAULT_LOGGERS,
        RUNS_DIR,
        DisabledRun,
        LoggerArg,
        Run,
        TrackingWarning,
        resolve_loggers,
    )
    from ember.hub.tracking.secrets import Redactor, redact_config

_LAZY = {
    "DeliveryPolicy": "fanout",
    "LoggerEntry": "fanout",
    "JournalError": "journal",
    "JournalReader": "journal",
    "LoggerReport": "report",
    "Report": "report",
    "DEFAULT_LOGGERS": "run",
    "RUNS_DIR": "run",
    "DisabledRun": "run",
    "LoggerArg": "run",
    "Run": "run",
    "TrackingWarning": "run",
    "resolve_loggers": "run",
    "Redactor": "secrets",
    "redact_config": "secrets",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ember.hub.tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ember.hub.tracking.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_LOGGERS",
    "RUNS_DIR",
    "STATUSES",
    "Capabilities",
    "DeliveryPolicy",
    "DisabledRun",
    "JournalError",
    "JournalReader",
    "Logger",
    "LoggerArg",
    "LoggerEntry",
    "LoggerReport",
    "MetricRecord",
    "Redactor",
    "Report",
    "Run",
    "RunInfo",
    "TrackingWarning",
    "flatten_params",
    "redact_config",
    "resolve_loggers",
]
