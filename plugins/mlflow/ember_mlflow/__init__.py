"""ember-mlflow: the ``mlflow`` logger provider for ember.

This module is what the ``ember`` entry point names. It only registers the provider:
MLflow itself is imported when a logger is built and opened, never by plugin discovery.
"""

from __future__ import annotations

from collections.abc import Iterator

from ember.hub import LoggerSpec, Option, hookimpl

__version__ = "0.1.0"

#: the values of the ``log_checkpoints`` option
CHECKPOINT_POLICIES = ("none", "best", "all")


@hookimpl
def ember_loggers() -> Iterator[LoggerSpec]:
    """Register ``logger="mlflow"``."""
    yield LoggerSpec(
        name="mlflow",
        factory="ember_mlflow.logger:MLflowLogger",
        description="MLflow tracking: a local SQLite store by default, or any MLflow server.",
        options={
            "tracking_uri": Option(
                "str",
                None,
                "where runs go: http://host:port, sqlite:///path.db, databricks...; default "
                "sqlite:///<default_root_dir>/ember_runs/mlflow.db (no server needed)",
            ),
            "experiment_name": Option(
                "str", "ember", "the MLflow experiment (created when missing)"
            ),
            "run_name": Option("str", None, "the MLflow run name (default: ember's run name)"),
            "run_id": Option(
                "str", None, "log into this existing MLflow run instead of creating one"
            ),
            "tags": Option("dict", None, "extra tags set on the MLflow run"),
            "artifact_location": Option(
                "str",
                None,
                "artifact root of a newly created experiment (default: next to the SQLite "
                "store for the default store, the server's choice otherwise)",
            ),
            "log_checkpoints": Option(
                "str",
                "best",
                "which checkpoints to upload as artifacts: 'none', 'best' (each new best of "
                "a ModelCheckpoint) or 'all'",
                choices=CHECKPOINT_POLICIES,
            ),
            "prefix": Option("str", "", "prepended to every metric name, e.g. 'fold1/'"),
        },
    )
