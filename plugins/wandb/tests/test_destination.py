"""Two W&B loggers of one run never write into one W&B run: the same ``id`` twice is
refused before anything is written; loggers that each create a run are accepted."""

from __future__ import annotations

import pytest
from ember.hub import OptionsError
from ember.hub.tracking import resolve_loggers


def test_one_wandb_run_twice_is_refused() -> None:
    first = {"name": "wandb", "project": "p", "id": "run1", "mode": "offline"}
    second = {**first, "run_name": "another name"}
    with pytest.raises(OptionsError, match=r"would both write to wandb run <entity>/p/run1"):
        resolve_loggers([first, second])


def test_loggers_that_each_create_a_run_are_accepted() -> None:
    entries = resolve_loggers(
        [
            {"name": "wandb", "project": "p", "mode": "offline", "run_name": "a"},
            {"name": "wandb", "project": "p", "mode": "offline", "run_name": "b"},
        ]
    )
    assert [e.logger.destination() for e in entries] == [None, None]
