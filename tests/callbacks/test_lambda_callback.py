"""LambdaCallback turns functions into hooks, and only the hooks it was given."""

from __future__ import annotations

from typing import Any

import pytest
from ember.hub import Lifecycle
from ember.trainer import Callback
from ember.trainer.callbacks import LambdaCallback


def test_functions_run_as_hooks(make_trainer: Any, model_cls: Any, make_loader: Any) -> None:
    calls: list[Any] = []
    callback = LambdaCallback(
        setup=lambda trainer, pl_module, stage: calls.append(("setup", stage)),
        on_train_epoch_end=lambda trainer, pl_module: calls.append(
            ("epoch", trainer.current_epoch)
        ),
        on_train_batch_end=lambda batch_idx: calls.append(("batch", batch_idx)),
        on_fit_end=None,
    )
    trainer = make_trainer(max_epochs=2, callbacks=[callback])
    trainer.fit(model_cls(), make_loader(n=16))
    assert calls == [
        ("setup", "fit"),
        ("batch", 0),
        ("batch", 1),
        ("epoch", 0),
        ("batch", 0),
        ("batch", 1),
        ("epoch", 1),
    ]


def test_only_the_given_hooks_are_registered() -> None:
    hooks = Lifecycle(
        callbacks=[LambdaCallback(on_fit_start=print), LambdaCallback(on_fit_end=print)],
        callback_base=Callback,
    )
    implemented = {
        name
        for name in ("on_fit_start", "on_fit_end", "on_train_batch_end")
        if hooks.implemented(name)
    }
    assert implemented == {"on_fit_start", "on_fit_end"}


def test_unknown_hook_names_are_rejected_with_a_suggestion() -> None:
    with pytest.raises(TypeError, match="Did you mean 'on_train_epoch_end'"):
        LambdaCallback(on_train_epoch_ned=print)
    with pytest.raises(TypeError, match="must be a function"):
        LambdaCallback(on_fit_start=3)


def test_is_a_callback_with_a_plain_state_key() -> None:
    callback = LambdaCallback(on_fit_start=print)
    assert isinstance(callback, (LambdaCallback, Callback))
    assert callback.state_key == "LambdaCallback"
    assert repr(callback) == "LambdaCallback(on_fit_start)"
