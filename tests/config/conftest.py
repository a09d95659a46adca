"""Fixtures of the run-file tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ember.hub.cli import main
from ember.hub.manager import FIRST_PARTY, reset_plugin_manager

# test modules import config_helpers and bad_cases from this folder
# (--import-mode=importlib puts no test folder on sys.path)
sys.path.insert(0, str(Path(__file__).parent))

from config_helpers import REPO_ROOT


@pytest.fixture(autouse=True)
def uninstalled_tracker(monkeypatch: pytest.MonkeyPatch) -> str:
    """A first-party tracker name that is not installed: every real one is installed in
    the test environment, so the "known but not installed" cases use this one."""
    monkeypatch.setitem(FIRST_PARTY, ("logger", "neptune"), "ember-neptune")
    return "neptune"


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, where ``examples.digits`` imports."""
    monkeypatch.chdir(REPO_ROOT)
    return REPO_ROOT


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """A plugin manager of the test's own (plugins registered in code stay in the test)."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def ember_main(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``ember_main(*args)``: run the ``ember`` command in this process; return
    ``(exit code, stdout, stderr)``."""

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call
