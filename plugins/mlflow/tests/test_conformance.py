"""ember-mlflow against the logger contract: on a SQLite store and on a real server.

MLflow cannot delete metric steps, so the logger declares ``rewind=False`` and the kit
skips its rewind test; what a user sees instead is tested in test_faults.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from ember.hub.testing import LoggerConformance, ReadBack
from ember.hub.tracking import Logger, RunInfo
from ember_mlflow.logger import MLflowLogger
from mlflow_helpers import read_mlflow


class MlflowConformance(LoggerConformance):
    """The kit's tests, read back with ``MlflowClient``."""

    provider_name = "mlflow"
    sdk_modules = ("mlflow",)

    def read_back(self, logger: Logger, run: RunInfo) -> ReadBack:
        assert isinstance(logger, MLflowLogger) and logger.run_id
        return read_mlflow(logger.resolved_uri, logger.run_id)[0]


class TestSQLiteStore(MlflowConformance):
    """A local SQLite store: no server, offline."""

    @pytest.fixture
    def make_logger(self, tmp_path: Path) -> Callable[[], Logger]:
        uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
        return lambda: MLflowLogger(tracking_uri=uri, log_checkpoints="all")


class TestServer(MlflowConformance):
    """A real ``mlflow server`` on 127.0.0.1, artifacts proxied through it."""

    @pytest.fixture
    def make_logger(self, mlflow_server) -> Callable[[], Logger]:
        return lambda: MLflowLogger(tracking_uri=mlflow_server.uri, log_checkpoints="all")
