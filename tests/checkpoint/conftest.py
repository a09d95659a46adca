"""Fixtures of the checkpoint tests."""

from __future__ import annotations

import sys
from pathlib import Path

# test modules import ckpt_helpers (--import-mode=importlib puts no test folder on sys.path)
sys.path.insert(0, str(Path(__file__).parent))
