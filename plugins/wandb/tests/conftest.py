"""Every test runs with a fresh, empty HOME and no W&B settings from the outside."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

#: the testing kit's fixtures (``ember_venv``)
pytest_plugins = ["ember.hub.testing"]

# --import-mode=importlib puts no test folder on sys.path; the tests share wandb_helpers
sys.path.insert(0, str(Path(__file__).parent))

_OUTSIDE = ("WANDB_MODE", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_API_KEY")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path) -> Iterator[Path]:
    """A temporary HOME; the process environment is restored afterwards (the logger sets
    W&B's cache and data folders in it)."""
    saved = dict(os.environ)
    home = tmp_path / "home"
    home.mkdir()
    for var in _OUTSIDE:
        os.environ.pop(var, None)
    os.environ.update(HOME=str(home), WANDB_SILENT="true")
    try:
        yield home
    finally:
        os.environ.clear()
        os.environ.update(saved)
