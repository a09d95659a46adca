"""Fixtures of ember-mlflow's tests: a real ``mlflow server`` on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path
sys.path.insert(0, str(Path(__file__).parent))

from ember_mlflow.testing import MlflowServer

#: the testing kit's fixtures (``ember_venv``)
pytest_plugins = ["ember.hub.testing"]

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One server for the whole session (starting one takes seconds)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    server.stop()


@pytest.fixture
def own_mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A server of this test alone, which the test may stop and restart."""
    server = MlflowServer(tmp_path / "server")
    yield server
    server.stop()
    assert not server.leftovers(), f"the server left {server.leftovers()}"
