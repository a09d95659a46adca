"""Every built-in callback provider passes :class:`ember.trainer.testing.CallbackConformance`,
selected by name with the options a run file would give it."""

from __future__ import annotations

from ember.hub import get_plugin_manager
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
