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
    MetricBatch,
    MetricRecord,
    RunInfo,
    flatten_params,
)

if TYPE_CHECKING:
    from ember.hub.tracking.fanout import DeliveryPolicy, LoggerEntry
    from ember.hub.tracking.images import IMAGE_TYPES, Pixels, save_png
    from ember.hub.tracking.journal import (
        JournalDamagedError,
        JournalError,
        JournalReader,
        JournalWriteError,
    )
    from ember.hub.tracking.report import LoggerReport, Report
    from ember.hub.tracking.run import (
        DEFAULT_LOGGERS,
        RUNS_DIR,
        DisabledRun,
        LoggerArg,
        LoggerHandle,
        LoggerHandles,
        Run,
        TrackingWarning,
        finish_when_collected,
        resolve_loggers,
    )
    from ember.hub.tracking.secrets import Redactor, redact_config

_LAZY = {
    "DeliveryPolicy": "fanout",
    "LoggerEntry": "fanout",
    "JournalDamagedError": "journal",
    "JournalError": "journal",
    "JournalReader": "journal",
    "JournalWriteError": "journal",
    "IMAGE_TYPES": "images",
    "Pixels": "images",
    "save_png": "images",
    "LoggerReport": "report",
    "Report": "report",
    "DEFAULT_LOGGERS": "run",
    "RUNS_DIR": "run",
    "DisabledRun": "run",
    "LoggerArg": "run",
    "LoggerHandle": "run",
    "LoggerHandles": "run",
    "Run": "run",
    "TrackingWarning": "run",
    "finish_when_collected": "run",
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
    "IMAGE_TYPES",
    "RUNS_DIR",
    "STATUSES",
    "Capabilities",
    "DeliveryPolicy",
    "DisabledRun",
    "JournalDamagedError",
    "JournalError",
    "JournalReader",
    "JournalWriteError",
    "Logger",
    "LoggerArg",
    "LoggerEntry",
    "LoggerHandle",
    "LoggerHandles",
    "LoggerReport",
    "MetricBatch",
    "MetricRecord",
    "Pixels",
    "Redactor",
    "Report",
    "Run",
    "RunInfo",
    "TrackingWarning",
    "finish_when_collected",
    "flatten_params",
    "redact_config",
    "resolve_loggers",
    "save_png",
]
