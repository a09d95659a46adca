"""EarlyStopping stops at the right epoch: the monitored value is scripted per epoch."""

from __future__ import annotations

import math
from typing import Any

import pytest
from ember.trainer.callbacks import EarlyStopping, LambdaCallback


def fit(
    make_trainer: Any,
    model_cls: Any,
    make_loader: Any,
    es: EarlyStopping,
    values: list[float],
    max_epochs: int = 10,
    **trainer_kwargs: Any,
) -> Any:
    trainer = make_trainer(max_epochs=max_epochs, callbacks=[es], **trainer_kwargs)
    trainer.fit(model_cls(val_values=values), make_loader(n=16), make_loader(n=16, seed=1))
    return trainer


@pytest.mark.parametrize(
    ("kwargs", "values", "stopped_epoch"),
    [
        # two improvements, then patience 2 runs out at epoch 3
        ({"patience": 2}, [5.0, 4.0, 4.5, 4.2, 1.0], 3),
        # an improvement resets the count
        ({"patience": 2}, [5.0, 6.0, 4.0, 4.1, 4.2, 1.0], 4),
        # 0.95 and 0.91 are better, but not by min_delta=0.1
        ({"patience": 2, "min_delta": 0.1}, [1.0, 0.95, 0.91, 0.5], 2),
        ({"patience": 1, "mode": "max"}, [0.1, 0.5, 0.4, 0.9], 2),
        ({"patience": 100, "stopping_threshold": 0.1}, [1.0, 0.5, 0.05, 0.01], 2),
        ({"patience": 100, "divergence_threshold": 10.0}, [1.0, 2.0, 50.0, 0.1], 2),
        ({"patience": 100}, [1.0, 0.5, math.nan, 0.1], 2),
        # patience 0: the first check without improvement stops
        ({"patience": 0}, [1.0, 1.0], 1),
    ],
)
def test_stops_at_the_right_epoch(
    make_trainer: Any,
    model_cls: Any,
    make_loader: Any,
    kwargs: dict[str, Any],
    values: list[float],
    stopped_epoch: int,
) -> None:
    es = EarlyStopping("val_loss", **kwargs)
    trainer = fit(make_trainer, model_cls, make_loader, es, values)
    assert es.stopped_epoch == stopped_epoch
    assert trainer.current_epoch == stopped_epoch + 1
    assert es.stopping_reason_message


def test_runs_to_the_end_while_improving(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    es = EarlyStopping("val_loss", patience=1)
    trainer = fit(make_trainer, model_cls, make_loader, es, [5, 4, 3, 2], max_epochs=4)
    assert trainer.current_epoch == 4
    assert (es.stopped_epoch, es.wait_count, es.best_score) == (0, 0, 2.0)
    assert es.stopping_reason_message is None


def test_non_finite_is_just_no_improvement_without_check_finite(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    es = EarlyStopping("val_loss", patience=2, check_finite=False)
    trainer = fit(
        make_trainer, model_cls, make_loader, es, [1.0, math.nan, 0.5, math.nan, math.nan, 0.1]
    )
    assert es.stopped_epoch == 4
    assert trainer.current_epoch == 5


def test_missing_metric_under_strict_lists_what_was_logged(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    with pytest.raises(RuntimeError) as info:
        fit(make_trainer, model_cls, make_loader, EarlyStopping("val_los"), [1.0])
    message = str(info.value)
    assert "'val_los'" in message and "'val_loss'" in message and "'train_loss'" in message
    assert "Did you mean 'val_loss'?" in message


def test_missing_metric_without_strict_is_skipped(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    es = EarlyStopping("val_acc", strict=False, patience=0)
    trainer = fit(make_trainer, model_cls, make_loader, es, [1.0], max_epochs=3)
    assert trainer.current_epoch == 3
    with pytest.warns(RuntimeWarning, match="val_acc"):
        fit(
            make_trainer,
            model_cls,
            make_loader,
            EarlyStopping("val_acc", strict=False, verbose=True),
            [1.0],
            max_epochs=1,
        )


def test_checks_after_each_validation_when_validating_twice_per_epoch(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    es = EarlyStopping("val_loss", patience=2)
    waits: list[int] = []
    record = LambdaCallback(on_validation_end=lambda: waits.append(es.wait_count))
    trainer = make_trainer(max_epochs=10, callbacks=[es, record], val_check_interval=0.5)
    trainer.fit(model_cls(val_values=[1.0, 2.0, 0.5]), make_loader(n=16), make_loader(n=16))
    # values 1.0, 1.0 in epoch 0, then 2.0: the second check without improvement (the
    # first validation of epoch 1) exhausts the patience, and training stops there
    assert waits == [0, 1, 2]
    assert es.stopped_epoch == 1
    assert trainer.current_epoch == 2
    assert trainer.global_step == 2 + 1


def test_validate_and_sanity_check_do_not_count(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    es = EarlyStopping("val_loss", patience=0)
    trainer = make_trainer(max_epochs=1, callbacks=[es], num_sanity_val_steps=2)
    model = model_cls(val_values=[1.0])
    trainer.fit(model, make_loader(n=16), make_loader(n=16, seed=1))
    trainer.validate(model, make_loader(n=16, seed=1), verbose=False)
    trainer.validate(model, make_loader(n=16, seed=1), verbose=False)
    assert (es.wait_count, es.best_score) == (0, 1.0)


def test_state_round_trip() -> None:
    es = EarlyStopping("val_loss", patience=4)
    es.wait_count, es.stopped_epoch, es.best_score = 2, 7, 0.25
    es.stopping_reason_message = "why"
    other = EarlyStopping("val_loss")
    other.load_state_dict(es.state_dict())
    assert other.state_dict() == es.state_dict()
    assert other.patience == 4


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(ValueError, match="'min' or 'max'"):
        EarlyStopping("val_loss", mode="lowest")
    with pytest.raises(ValueError, match="monitor='val_loss'"):
        EarlyStopping("")
