"""Fixtures of the checkpoint tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# test modules import ckpt_helpers and harness (--import-mode=importlib puts no test folder
# on sys.path)
sys.path.insert(0, str(Path(__file__).parent))

from harness import Launcher, Reference, run_reference


@pytest.fixture(scope="session")
def launcher() -> Iterator[Launcher]:
    """Forks training processes from one pre-imported interpreter (see harness.py)."""
    started = Launcher()
    yield started
    started.close()


@pytest.fixture(scope="session")
def reference(launcher: Launcher, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The uninterrupted run every resumed run of train_resumable.py is compared with."""
    return run_reference(launcher, tmp_path_factory.mktemp("reference"))
