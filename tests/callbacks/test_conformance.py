"""Every built-in callback provider passes :class:`ember.trainer.testing.CallbackConformance`,
selected by name with the options a run file would give it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ember.hub import get_plugin_manager
from ember.trainer import Callback
from ember.trainer.testing import CallbackConformance

#: provider name -> the options a run needs (required ones at least)
BUILTIN_CALLBACKS: dict[str, dict] = {
    "early_stopping": {"monitor": "val_loss", "patience": 5},
    "learning_rate_monitor": {"logging_interval": "step"},
    "progress_bar": {},
    "model_summary": {},
    "gradient_norm_monitor": {"every_n_steps": 1},
    "timer": {"duration": {"hours": 1}},
    "gradient_accumulation_scheduler": {"scheduling": {"0": 2, "1": 1}},
    "model_checkpoint": {"monitor": "val_loss", "save_top_k": 2},
    "on_exception_checkpoint": {},
}


def test_every_builtin_callback_provider_is_covered() -> None:
    """A new built-in callback provider gets a conformance class here."""
    builtin = {
        name
        for name, spec in get_plugin_manager().providers("callback").items()
        if spec.distribution == "ember"
    }
    assert builtin == set(BUILTIN_CALLBACKS)


#: restore only part of their state on purpose: the Timer the training time (as
#: Lightning's), ModelCheckpoint its bookkeeping once it knows its folder (at setup)
PARTIAL_RESTORE = {"timer", "model_checkpoint"}


def _suite(name: str) -> type[CallbackConformance]:
    attrs = {
        "callback": name,
        "callback_options": BUILTIN_CALLBACKS[name],
        "state_round_trips_exactly": name not in PARTIAL_RESTORE,
    }
    title = "".join(part.title() for part in name.split("_"))
    return type(f"Test{title}", (CallbackConformance,), attrs)


for _name in BUILTIN_CALLBACKS:
    _cls = _suite(_name)
    globals()[_cls.__name__] = _cls
del _name, _cls


class Misspelled(Callback):
    def on_train_epoch_ends(self, trainer: Any) -> None:
        """A typo of on_train_epoch_end: never called, so the suite must catch it."""


class HoldsALambda(Callback):
    def __init__(self) -> None:
        self.transform = lambda x: x

    def on_train_start(self, trainer: Any) -> None:
        """Does nothing."""


class Opaque:
    """Not plain data: ``torch.load(weights_only=True)`` refuses it."""


class OpaqueState(Callback):
    def on_train_start(self, trainer: Any) -> None:
        """Does nothing."""

    def state_dict(self) -> dict[str, Any]:
        return {"thing": Opaque()}


def test_the_suite_catches_a_misspelled_hook() -> None:
    with pytest.raises(pytest.fail.Exception, match="Did you mean 'on_train_epoch_end'"):
        CallbackConformance().test_hook_names_are_hooks(Misspelled)


def test_the_suite_catches_a_callback_that_cannot_be_pickled() -> None:
    with pytest.raises(pytest.fail.Exception, match="HoldsALambda cannot be pickled"):
        CallbackConformance().test_picklable_for_spawned_processes(HoldsALambda)


def test_the_suite_catches_state_a_checkpoint_cannot_hold(tmp_path: Path) -> None:
    suite = CallbackConformance()
    with pytest.raises(Exception, match=r"Opaque.*weights_only=True"):
        suite.test_state_round_trips_through_a_checkpoint(
            get_plugin_manager(), OpaqueState, tmp_path
        )
