"""A real fit with the Comet logger offline: what is left running, and where files go."""

from __future__ import annotations

from pathlib import Path

import pytest
from comet_helpers import files_under, run_training
from ember_comet.archive import read_archives
from ember_comet.logger import STATUS_KEY


def _archive(folder: Path):
    zips = sorted(folder.glob("*.zip"))
    assert len(zips) == 1, zips
    return read_archives(folder, zips[0].name[:32])


def _status(archive) -> str | None:
    found = [
        m.payload["value"]
        for m in archive.messages
        if m.type == "log_other" and m.payload["key"] == STATUS_KEY
    ]
    return found[-1] if found else None


def _steps(archive, name: str) -> list[int]:
    return [
        m.payload["metric"]["step"]
        for m in archive.messages
        if m.type == "metric_msg" and m.payload["metric"]["metricName"] == name
    ]


@pytest.mark.slow
def test_fit_leaves_no_thread_and_writes_only_the_archive(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a fit: no Comet thread left (error tracking is off), nothing in HOME or the
    working folder, one valid archive with every step and the hyperparameters."""
    # comet_ml imports matplotlib when it is installed, which caches its font list in HOME
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    archives = tmp_path / "archives"
    root = tmp_path / "root"
    report = run_training(
        root, {"name": "comet", "online": False, "offline_directory": str(archives)}
    )
    assert report["outcome"] == "success"
    assert report["threads"] == [], "threads left behind after the run"
    assert report["children"] == []
    assert files_under(isolated_home) == []
    assert not (root / ".cometml-runs").exists()
    archive = _archive(archives)
    assert _status(archive) == "success"
    assert len(_steps(archive, "train_loss")) == 16
    params = {
        m.payload["param"]["paramName"]: m.payload["param"]["paramValue"]
        for m in archive.messages
        if m.type == "parameter_msg"
    }
    assert params["model|hidden"] == 4 and params["lr"] == 0.1
    shown = [
        m.payload["additional_params"]["figName"]
        for m in archive.messages
        if m.type == "file_upload" and m.payload["upload_type"] == "visualization"
    ]
    assert shown == ["samples/grad", "samples/grad"]


@pytest.mark.slow
def test_crash_in_training_ends_the_experiment_as_failed(tmp_path: Path) -> None:
    """An exception in training_step still writes the archive, with status failed."""
    archives = tmp_path / "archives"
    report = run_training(
        tmp_path / "root",
        {"name": "comet", "online": False, "offline_directory": str(archives)},
        "crash",
    )
    assert report["outcome"].startswith("failed: deliberate crash")
    archive = _archive(archives)
    assert _status(archive) == "failed"
    assert len(_steps(archive, "train_loss")) == 3


@pytest.mark.slow
def test_experiment_left_open_is_ended_at_exit(tmp_path: Path) -> None:
    """A script that ends after fit without finishing the run: at exit the experiment is
    ended, and its archive holds every step and the status."""
    archives = tmp_path / "archives"
    logger = {"name": "comet", "online": False, "offline_directory": str(archives)}
    report = run_training(tmp_path / "root", logger, "fit", "--at-exit")
    assert report["outcome"] == "success"
    archive = _archive(archives)
    assert _status(archive) == "success"
    assert len(_steps(archive, "train_loss")) == 16
