"""Fixtures of the trainer tests."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from ember.hub import PluginManager
from ember.trainer import Trainer

# test modules import the shared models and data from trainer_helpers
# (--import-mode=importlib puts no test folder on sys.path)
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def make_trainer(tmp_path: Path) -> Any:
    """``make_trainer(**flags)``: a quiet Trainer writing under ``tmp_path``."""

    def build(**flags: Any) -> Trainer:
        flags.setdefault("enable_progress_bar", False)
        flags.setdefault("enable_model_summary", False)
        flags.setdefault("enable_checkpointing", False)
        flags.setdefault("default_root_dir", str(tmp_path))
        return Trainer(**flags)

    return build


@pytest.fixture(scope="session")
def torch_plugins(
    tmp_path_factory: pytest.TempPathFactory, pip_install_target: Any
) -> PluginManager:
    """A plugin manager that found the third-party fixture distribution
    (``fixtures/torchplugins``: a strategy, a precision mode and an accelerator) through
    its real entry point after a real pip install. The folder is on ``sys.path`` only
    while the manager discovers, so the process-global manager never sees the fixture."""
    source = Path(__file__).parent / "fixtures" / "torchplugins"
    site = pip_install_target(source, tmp_path_factory.mktemp("torchplugins") / "site")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        manager = PluginManager(autoload=True, block=())
        manager.load_entrypoints()
    finally:
        sys.path.remove(str(site))
        importlib.invalidate_caches()
    active = {p.name for p in manager.plugins() if p.status == "active"}
    assert "torchplugins" in active, manager.plugins()
    return manager
