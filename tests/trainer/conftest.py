"""Fixtures of the trainer tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
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
