"""The CSV logger: the conformance kit, plus the file layout it promises."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from ember.hub.testing import LoggerConformance, ReadBack, make_run_info
from ember.hub.tracking import Logger, MetricRecord, RunInfo, flatten_params
from ember.hub.tracking.csv_logger import CSVLogger


def read_csv_logger(directory: Path) -> ReadBack:
    """Everything a CSV logger wrote, read with the csv module."""
    back = ReadBack()
    with (directory / "metrics.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(row.pop("step"))
            back.metrics += [(n, step, float(v)) for n, v in row.items() if v != ""]
    hparams = directory / "hparams.json"
    if hparams.exists():
        back.hyperparams = flatten_params(json.loads(hparams.read_text()))
    texts = directory / "texts.csv"
    if texts.exists():
        with texts.open(newline="") as f:
            back.texts = [
                (r["key"], int(r["step"]) if r["step"] else None, r["text"])
                for r in csv.DictReader(f)
            ]
    images = directory / "images.csv"
    if images.exists():
        with images.open(newline="") as f:
            back.images = [
                (r["key"], int(r["step"]) if r["step"] else None, Path(r["path"]).read_bytes())
                for r in csv.DictReader(f)
            ]
    artifacts = directory / "artifacts.csv"
    if artifacts.exists():
        with artifacts.open(newline="") as f:
            back.artifacts = [
                (r["kind"], r["name"], Path(r["path"]).read_bytes()) for r in csv.DictReader(f)
            ]
    status = directory / "status.json"
    if status.exists():
        back.status = json.loads(status.read_text())["status"]
    return back


class TestCSVConformance(LoggerConformance):
    provider_name = "csv"

    @pytest.fixture
    def make_logger(self, tmp_path: Path):
        return lambda: CSVLogger(save_dir=tmp_path / "csv")

    def read_back(self, logger: Logger, run: RunInfo) -> ReadBack:
        assert isinstance(logger, CSVLogger) and logger.dir is not None
        return read_csv_logger(logger.dir)


class TestCSVConformanceInRunDir(TestCSVConformance):
    """The default: no save_dir, files go to the run directory."""

    @pytest.fixture
    def make_logger(self, tmp_path: Path):
        return CSVLogger


def _rec(name: str, value: float, step: int) -> MetricRecord:
    return MetricRecord(name, value, step, 0.0)


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_one_row_per_step_wide_layout(tmp_path: Path) -> None:
    """Validation metrics arriving after training metrics of the same step extend that
    row; a new metric adds a column; an older step lands in its place."""
    logger = CSVLogger()
    run = make_run_info(tmp_path)
    logger.open(run)
    logger.log_metrics([_rec("loss", 1.0, 0), _rec("loss", 0.5, 1)])
    logger.log_metrics([_rec("loss", 0.25, 2)])
    logger.log_metrics([_rec("val_loss", 0.7, 2)])  # same step as the last row, new column
    logger.log_metrics([_rec("loss", 0.2, 3), _rec("val_loss", 0.6, 3)])
    logger.log_metrics([_rec("acc", 0.9, 3)])  # new column for the last step
    logger.log_metrics([_rec("lr", 0.01, 1)])  # an older step
    logger.finalize("success")
    rows = _rows(Path(run.dir) / "metrics.csv")
    assert rows == [
        ["step", "loss", "val_loss", "acc", "lr"],
        ["0", "1.0", "", "", ""],
        ["1", "0.5", "", "", "0.01"],
        ["2", "0.25", "0.7", "", ""],
        ["3", "0.2", "0.6", "0.9", ""],
    ]


def test_last_row_is_rewritten_in_place(tmp_path: Path) -> None:
    logger = CSVLogger()
    run = make_run_info(tmp_path)
    logger.open(run)
    logger.log_metrics([_rec("a", 1.0, 0), _rec("b", 2.0, 0), _rec("a", 3.0, 1)])
    logger.log_metrics([_rec("b", 4.0, 1)])
    logger.log_metrics([_rec("a", 5.0, 2)])
    assert _rows(Path(run.dir) / "metrics.csv") == [
        ["step", "a", "b"],
        ["0", "1.0", "2.0"],
        ["1", "3.0", "4.0"],
        ["2", "5.0", ""],
    ]


def test_non_finite_values_round_trip(tmp_path: Path) -> None:
    logger = CSVLogger()
    run = make_run_info(tmp_path)
    logger.open(run)
    logger.log_metrics([_rec("a", float("nan"), 0), _rec("a", float("inf"), 1)])
    back = read_csv_logger(Path(run.dir))
    assert str(back.metrics[0][2]) == "nan" and back.metrics[1][2] == float("inf")


def test_resume_trims_rows_past_the_checkpoint(tmp_path: Path) -> None:
    run = make_run_info(tmp_path)
    first = CSVLogger()
    ref = first.open(run)
    first.log_metrics([_rec("loss", float(s), s) for s in range(10)])
    first.log_text("note", "late", step=8)
    first.log_text("note", "early", step=2)
    first.finalize("interrupted")
    second = CSVLogger()
    second.open(RunInfo(**{**run.__dict__, "resumed": True, "resume_ref": ref, "resume_step": 4}))
    second.log_metrics([_rec("loss", 100.0 + s, s) for s in range(5, 7)])
    second.finalize("success")
    back = read_csv_logger(Path(ref))
    assert [(s, v) for _, s, v in back.metrics] == [
        (0, 0.0),
        (1, 1.0),
        (2, 2.0),
        (3, 3.0),
        (4, 4.0),
        (5, 105.0),
        (6, 106.0),
    ]
    assert back.texts == [("note", 2, "early")]


def test_registered_as_builtin_default() -> None:
    from ember.hub import get_plugin_manager

    spec = get_plugin_manager().get("logger", "csv")
    assert spec.distribution == "ember"
    assert spec.load() is CSVLogger
    assert set(spec.options) == {"save_dir"}
