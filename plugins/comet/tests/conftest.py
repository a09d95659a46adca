"""Every test runs with a fresh, empty HOME, in an empty working folder, and with no Comet
settings from the outside."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

#: the testing kit's fixtures (``ember_venv``)
pytest_plugins = ["ember.hub.testing"]

# --import-mode=importlib puts no test folder on sys.path; the tests share comet_helpers
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary HOME and working folder; the process environment is restored afterwards
    (the logger turns Comet's network probes off in it)."""
    saved = dict(os.environ)
    home = tmp_path / "home"
    home.mkdir()
    for var in [v for v in os.environ if v.startswith("COMET_")]:
        del os.environ[var]
    os.environ["HOME"] = str(home)
    monkeypatch.chdir(tmp_path)
    try:
        yield home
    finally:
        os.environ.clear()
        os.environ.update(saved)
