"""The digits example's run files: they differ only in their [[loggers]] section; each one
validates and runs a short fit with whichever trackers are installed, and names the
package to install for each one that is not."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from config_helpers import DIGITS, run_ember
from ember.hub.config import read_run_file
from ember.hub.manager import FIRST_PARTY, get_plugin_manager

RUN_FILES = sorted(DIGITS.glob("run*.toml"))


def _loggers(path: Path) -> list[str]:
    return [e["name"] for e in read_run_file(path).get("loggers", [])]


def test_there_is_a_run_file_per_tracker() -> None:
    names = {p.name for p in RUN_FILES}
    assert {f"run-{t}.toml" for t in ("tensorboard", "mlflow", "wandb", "comet", "all")} <= names
    assert "run.toml" in names
    assert set(_loggers(DIGITS / "run-all.toml")) == {
        "csv",
        "tensorboard",
        "mlflow",
        "wandb",
        "comet",
    }


@pytest.mark.parametrize("path", RUN_FILES, ids=[p.name for p in RUN_FILES])
def test_run_files_differ_only_in_loggers(path: Path) -> None:
    base = read_run_file(DIGITS / "run.toml")
    other = read_run_file(path)
    base.pop("loggers")
    other.pop("loggers")
    assert other == base


@pytest.mark.parametrize("path", RUN_FILES, ids=[p.name for p in RUN_FILES])
def test_example_run_file_validates_and_fits(path: Path, tmp_path: Path) -> None:
    installed = set(get_plugin_manager().providers("logger"))
    missing = [n for n in _loggers(path) if n not in installed]
    root = tmp_path / "runs"
    proc = run_ember(
        "fit",
        "--config",
        str(path.relative_to(DIGITS.parents[1])),
        "--set",
        "trainer.fast_dev_run=true",
        "--set",
        f"trainer.default_root_dir={root}",
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    if missing:
        assert proc.returncode == 3, output
        for name in missing:
            package = FIRST_PARTY[("logger", name)]
            assert f"no logger named '{name}' is installed" in output
            assert f"pip install {package}" in output
        return
    assert proc.returncode == 0, output


def test_digits_run_file_end_to_end(tmp_path: Path) -> None:
    """`ember fit --config examples/digits/run.toml --set trainer.max_epochs=1`, from the
    repository root as the README says: a real run with its journal, CSV and checkpoint."""
    root = tmp_path / "runs"
    proc = run_ember(
        "fit",
        "--config",
        "examples/digits/run.toml",
        "--set",
        "trainer.max_epochs=1",
        "--set",
        f"trainer.default_root_dir={root}",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    runs = list((root / "ember_runs").iterdir())
    assert len(runs) == 1, output
    with (runs[0] / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    accuracies = [float(r["val_acc"]) for r in rows if r.get("val_acc")]
    assert accuracies and accuracies[-1] > 0.5, rows
    assert (runs[0] / "checkpoints" / "last.ckpt").is_file()  # the run's own folder


def test_readme_shows_the_swap() -> None:
    readme = (DIGITS.parents[1] / "README.md").read_text()
    assert "ember fit --config examples/digits/run.toml" in readme
    assert "ember fit --config examples/digits/run-mlflow.toml" in readme
