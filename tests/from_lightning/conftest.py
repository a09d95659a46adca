"""Fixtures of the tests written as a Lightning user writes code: each program below is
Lightning code with only its imports changed, run on ember."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from ember.trainer.utilities import SEED_ENV, SEED_WORKERS_ENV


@pytest.fixture(autouse=True)
def _no_seed_leak() -> Iterator[None]:
    """``seed_everything`` writes the environment; give every test the environment it had."""
    saved = {k: os.environ.get(k) for k in (SEED_ENV, SEED_WORKERS_ENV)}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
