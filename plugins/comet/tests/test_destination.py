"""Two Comet loggers of one run never write into one experiment: the same
``experiment_key`` twice is refused before anything is written; loggers that each create
an experiment are accepted."""

from __future__ import annotations

import pytest
from ember.hub import OptionsError
from ember.hub.tracking import resolve_loggers

KEY = "0" * 32


def test_one_comet_experiment_twice_is_refused() -> None:
    first = {"name": "comet", "online": False, "experiment_key": KEY}
    second = {**first, "experiment_name": "another name"}
    with pytest.raises(OptionsError, match=f"would both write to comet experiment {KEY}"):
        resolve_loggers([first, second])


def test_loggers_that_each_create_an_experiment_are_accepted() -> None:
    entries = resolve_loggers(
        [
            {"name": "comet", "online": False, "experiment_name": "a"},
            {"name": "comet", "online": False, "experiment_name": "b"},
        ]
    )
    assert [e.logger.destination() for e in entries] == [None, None]
