"""Two MLflow loggers of one run never write into one MLflow run: the same ``run_id``
twice, or the same logger listed twice, is refused before anything is written. Loggers
that each create their own run are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from ember.hub import OptionsError
from ember.hub.tracking import resolve_loggers


def test_one_mlflow_run_twice_is_refused(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = {"name": "mlflow", "tracking_uri": uri, "run_id": "0123abcd"}
    second = {**first, "prefix": "again/"}
    with pytest.raises(OptionsError, match=r"would both write to mlflow run 0123abcd at sqlite"):
        resolve_loggers([first, second])


def test_the_same_logger_twice_is_refused(tmp_path: Path) -> None:
    same = {"name": "mlflow", "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}
    with pytest.raises(OptionsError, match="are the same provider with the same options"):
        resolve_loggers([same, dict(same)])


def test_loggers_that_each_create_a_run_are_accepted(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    entries = resolve_loggers(
        [
            {"name": "mlflow", "tracking_uri": uri, "run_name": "a"},
            {"name": "mlflow", "tracking_uri": uri, "run_name": "b"},
        ]
    )
    assert [e.logger.destination() for e in entries] == [None, None]
