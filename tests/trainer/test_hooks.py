"""Hooks fire once each, in the documented order (docs/hook-order.md), for module and
callbacks alike; a misspelled hook is an error when the Trainer is built."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ember.hub import CALLBACK_HOOKS, UnknownHookError
from ember.trainer import Callback
from ember.trainer.checkpointing import callback_states, load_callback_states
from trainer_helpers import TinyModel, make_loader

MODULE_RECORDED = [
    "setup",
    "teardown",
    "configure_optimizers",
    "on_fit_start",
    "on_fit_end",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_validation_model_eval",
    "on_validation_model_train",
    "on_test_start",
    "on_test_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_test_model_eval",
    "on_test_model_train",
    "on_predict_start",
    "on_predict_end",
    "on_predict_epoch_start",
    "on_predict_epoch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "training_step",
    "validation_step",
    "test_step",
    "predict_step",
    "prepare_data",
]


def recording_module(calls: list[str]) -> TinyModel:
    """A TinyModel whose hooks append their names to ``calls`` (then do their job)."""
    namespace: dict[str, Any] = {}
    for name in MODULE_RECORDED:

        def hook(self: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return getattr(TinyModel, _name)(self, *args, **kwargs)

        namespace[name] = hook
    return type("Recorded", (TinyModel,), namespace)()


def recording_callback(calls: list[str]) -> Callback:
    """A callback implementing every hook; each appends ``Callback.<name>``."""
    namespace: dict[str, Any] = {}
    for name in CALLBACK_HOOKS:

        def hook(self: Any, *args: Any, _name: str = name) -> None:
            calls.append(f"Callback.{_name}")

        namespace[name] = hook
    return type("RecordingCallback", (Callback,), namespace)()


def both(name: str) -> list[str]:
    """A start hook: callbacks first, then the module."""
    return [f"Callback.{name}", name]


def ends(name: str) -> list[str]:
    """An end hook: the module first, then callbacks."""
    return [name, f"Callback.{name}"]


def val_batch() -> list[str]:
    return [
        *both("on_validation_batch_start"),
        "validation_step",
        *ends("on_validation_batch_end"),
    ]


def validation(batches: int) -> list[str]:
    return [
        "on_validation_model_eval",
        *both("on_validation_start"),
        *both("on_validation_epoch_start"),
        *[h for _ in range(batches) for h in val_batch()],
        *ends("on_validation_epoch_end"),
        *ends("on_validation_end"),
        "on_validation_model_train",
    ]


def train_batch() -> list[str]:
    return [
        *both("on_train_batch_start"),
        "training_step",
        *both("on_before_backward"),
        *ends("on_after_backward"),
        *both("on_before_optimizer_step"),
        *both("on_before_zero_grad"),
        *ends("on_train_batch_end"),
    ]


def test_fit_hook_order(make_trainer: Any) -> None:
    calls: list[str] = []
    model = recording_module(calls)
    trainer = make_trainer(
        max_epochs=1, num_sanity_val_steps=1, callbacks=[recording_callback(calls)]
    )
    trainer.fit(model, make_loader(32, 16), make_loader(16, 16))
    assert calls == [
        "prepare_data",
        "Callback.setup",
        "setup",
        "configure_optimizers",
        *both("on_fit_start"),
        "Callback.on_sanity_check_start",
        *validation(1),
        "Callback.on_sanity_check_end",
        *both("on_train_start"),
        *both("on_train_epoch_start"),
        *train_batch(),
        *train_batch(),
        *validation(1),
        *ends("on_train_epoch_end"),
        *ends("on_train_end"),
        *ends("on_fit_end"),
        *ends("teardown"),
    ]


def test_validate_test_predict_hook_order(make_trainer: Any) -> None:
    calls: list[str] = []
    model = recording_module(calls)
    trainer = make_trainer(callbacks=[recording_callback(calls)])
    trainer.validate(model, make_loader(16, 16), verbose=False)
    assert calls == [
        "prepare_data",
        "Callback.setup",
        "setup",
        *validation(1),
        *ends("teardown"),
    ]
    calls.clear()
    trainer.test(model, make_loader(16, 16), verbose=False)
    assert calls == [
        "prepare_data",
        "Callback.setup",
        "setup",
        "on_test_model_eval",
        *both("on_test_start"),
        *both("on_test_epoch_start"),
        *both("on_test_batch_start"),
        "test_step",
        *ends("on_test_batch_end"),
        *ends("on_test_epoch_end"),
        *ends("on_test_end"),
        "on_test_model_train",
        *ends("teardown"),
    ]
    calls.clear()
    trainer.predict(model, [torch.zeros(2, 8)])
    assert calls == [
        "prepare_data",
        "Callback.setup",
        "setup",
        *both("on_predict_start"),
        *both("on_predict_epoch_start"),
        *both("on_predict_batch_start"),
        "predict_step",
        *ends("on_predict_batch_end"),
        *ends("on_predict_epoch_end"),
        *ends("on_predict_end"),
        *ends("teardown"),
    ]


def test_callbacks_run_in_the_order_given(make_trainer: Any) -> None:
    calls: list[str] = []

    class Named(Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            calls.append(self.name)

    trainer = make_trainer(max_epochs=1, callbacks=[Named("b"), Named("a"), Named("c")])
    trainer.fit(TinyModel(), make_loader(16, 16))
    assert calls == ["b", "a", "c"]


def test_epoch_end_callbacks_see_the_epoch_metrics(make_trainer: Any) -> None:
    seen: dict[str, float] = {}

    class Model(TinyModel):
        def on_train_epoch_end(self) -> None:
            self.log("from_module", 3.0)

    class Reader(Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            seen.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    make_trainer(max_epochs=1, callbacks=[Reader()]).fit(Model(), make_loader(16, 16))
    assert seen["from_module"] == 3.0
    assert "train_loss" in seen


def test_returning_minus_one_from_on_train_batch_start_ends_the_epoch(make_trainer: Any) -> None:
    class Model(TinyModel):
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
            return -1 if batch_idx == 2 else None

    trainer = make_trainer(max_epochs=2)
    trainer.fit(Model(), make_loader(80, 16))
    assert trainer.global_step == 4
    assert trainer.current_epoch == 2


def test_misspelled_callback_hook_fails_at_trainer_construction(make_trainer: Any) -> None:
    class Typo(Callback):
        def on_train_epoch_ned(self, trainer: Any, module: Any) -> None:
            pass

    with pytest.raises(UnknownHookError, match="Did you mean 'on_train_epoch_end'"):
        make_trainer(callbacks=[Typo()])


def test_callbacks_by_provider_name_and_mapping(make_trainer: Any) -> None:
    trainer = make_trainer(callbacks=["timer", {"name": "early_stopping", "monitor": "val_loss"}])
    names = [type(c).__name__ for c in trainer.callbacks]
    assert names == ["Timer", "EarlyStopping"]
    assert trainer.early_stopping_callback is trainer.callbacks[1]
    assert trainer.early_stopping_callback.monitor == "val_loss"


def test_configure_callbacks_replaces_same_type(make_trainer: Any) -> None:
    class Marker(Callback):
        def __init__(self, tag: str) -> None:
            self.tag = tag

    class Model(TinyModel):
        def configure_callbacks(self) -> list[Callback]:
            return [Marker("from module")]

    trainer = make_trainer(max_epochs=1, callbacks=[Marker("from trainer")])
    trainer.fit(Model(), make_loader(16, 16))
    assert [c.tag for c in trainer.callbacks if isinstance(c, Marker)] == ["from module"]


def test_callback_state_round_trip(make_trainer: Any) -> None:
    class Counter(Callback):
        def __init__(self) -> None:
            self.count = 0

        def on_train_batch_end(self, trainer: Any) -> None:
            self.count += 1

        def state_dict(self) -> dict[str, Any]:
            return {"count": self.count}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            self.count = state["count"]

    trainer = make_trainer(max_epochs=1, callbacks=[Counter()])
    trainer.fit(TinyModel(), make_loader(48, 16))
    states = callback_states(trainer.callbacks)
    assert states == {Counter.__qualname__: {"count": 3}}
    fresh = make_trainer(callbacks=[Counter()])
    load_callback_states(fresh.callbacks, states)
    assert fresh.callbacks[0].count == 3


def test_on_exception_fires_and_teardown_still_runs(make_trainer: Any) -> None:
    calls: list[str] = []

    class Boom(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            raise RuntimeError("boom")

        def teardown(self, stage: str) -> None:
            calls.append(f"teardown {stage}")

    class Watcher(Callback):
        def on_exception(self, trainer: Any, module: Any, exception: BaseException) -> None:
            calls.append(f"on_exception {exception}")

    trainer = make_trainer(max_epochs=1, callbacks=[Watcher()])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(Boom(), make_loader(16, 16))
    assert calls == ["on_exception boom", "teardown fit"]
    assert trainer.state.status == "interrupted"
