"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def _pip_install_target(src: Path, target: Path) -> Path:
    """Build ``src`` (a folder with a pyproject.toml) and install it with pip into
    ``target``, as a user would install a plugin; put ``target`` on a subprocess's
    PYTHONPATH to make its entry points visible. The source is copied first so that the
    build leaves nothing in the checkout."""
    build = target.parent / f"build-{target.name}"
    shutil.copytree(src, build / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(build / "src"),
        ],
        check=True,
        cwd=build,
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_CONSTRAINT": ""},
    )
    return target


@pytest.fixture(scope="session")
def pip_install_target() -> Callable[[Path, Path], Path]:
    """``pip_install_target(src, target)``: really install a fixture distribution."""
    return _pip_install_target


@pytest.fixture(autouse=True)
def _finish_open_tracking_runs():
    """A Trainer's run stays open after a stage (fit then test share it) until the
    process exits; finish each test's runs when the test ends, while its files exist."""
    yield
    run_module = sys.modules.get("ember.hub.tracking.run")
    if run_module is not None:
        run_module.finish_open_runs()
