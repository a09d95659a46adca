"""Shared fixtures of the tracking tests: the fixture tracker distribution (installed
with pip for subprocesses, importable in-process), and a runner for the real ``ember``
console script."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ember.hub.manager import PluginManager

FIXTURE_SRC = Path(__file__).parent / "fixtures" / "trackers"
# in-process tests build the fixture loggers as objects (discovery still only sees
# installed distributions, so this registers nothing) and share tracking_helpers
# (--import-mode=importlib puts no test folder on sys.path)
sys.path[:0] = [str(FIXTURE_SRC), str(Path(__file__).parent)]


@pytest.fixture(scope="session")
def trackers_dist(tmp_path_factory: pytest.TempPathFactory, pip_install_target) -> Path:
    """The fixture distribution installed with pip into a folder (for PYTHONPATH)."""
    return pip_install_target(FIXTURE_SRC, tmp_path_factory.mktemp("trackers") / "site")


@pytest.fixture
def plugin_manager() -> PluginManager:
    """A plugin manager with ember's built-ins and the fixture trackers registered."""
    import ember_fixture_trackers

    pm = PluginManager(autoload=False)
    pm.load_entrypoints()
    pm.register(
        ember_fixture_trackers,
        "fixture_trackers",
        distribution="ember-fixture-trackers",
        version="0.3.0",
    )
    return pm
