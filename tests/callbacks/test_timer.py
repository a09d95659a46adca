"""Timer measures the stages of a run and stops training when its budget is spent."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from ember.trainer.callbacks import LambdaCallback, Timer
from ember.trainer.callbacks.timer import parse_duration


def slow(seconds: float) -> LambdaCallback:
    """A callback that makes every training batch take at least ``seconds``."""
    return LambdaCallback(on_train_batch_end=lambda: time.sleep(seconds))


def test_stops_training_when_the_budget_is_spent(
    make_trainer: Any, model_cls: Any, make_loader: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    timer = Timer(duration=timedelta(milliseconds=100))
    trainer = make_trainer(max_epochs=1000, callbacks=[slow(0.02), timer])
    trainer.fit(model_cls(), make_loader(n=32))
    # each step sleeps 0.02 s before the check, so by step 5 the 0.1 s are spent
    assert 1 <= trainer.global_step <= 5
    assert timer.time_elapsed("train") >= 0.1
    assert timer.time_remaining() <= 0
    assert "Time limit reached" in capsys.readouterr().out


def test_epoch_interval_finishes_the_epoch(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    timer = Timer(duration={"milliseconds": 10}, interval="epoch", verbose=False)
    trainer = make_trainer(max_epochs=1000, callbacks=[slow(0.01), timer])
    trainer.fit(model_cls(), make_loader(n=32))
    assert trainer.current_epoch == 1
    assert trainer.global_step == 4


def test_restored_elapsed_time_counts_against_the_budget(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    timer = Timer(duration="00:00:01:00", verbose=False)
    timer.load_state_dict({"time_elapsed": {"train": 61.0, "validate": 3.0}})
    assert timer.time_elapsed("train") == 61.0
    trainer = make_trainer(max_epochs=5, callbacks=[timer])
    trainer.fit(model_cls(), make_loader(n=32))
    assert trainer.global_step == 0


def test_times_each_stage(make_trainer: Any, model_cls: Any, make_loader: Any) -> None:
    timer = Timer()
    trainer = make_trainer(max_epochs=1, callbacks=[timer])
    model = model_cls()
    assert timer.start_time("train") is None and timer.time_elapsed("test") == 0.0
    trainer.fit(model, make_loader(n=16), make_loader(n=16))
    trainer.test(model, make_loader(n=16), verbose=False)
    trainer.predict(model, make_loader(n=16))
    for stage in ("train", "validate", "test", "predict"):
        start, end = timer.start_time(stage), timer.end_time(stage)
        assert start is not None and end is not None and start <= end
        assert timer.time_elapsed(stage) == pytest.approx(end - start)
    assert timer.time_remaining() is None
    state = timer.state_dict()
    assert set(state["time_elapsed"]) == {"train", "validate", "test", "predict"}
    with pytest.raises(ValueError, match="unknown stage 'training'"):
        timer.time_elapsed("training")


def test_duration_formats() -> None:
    assert parse_duration("01:02:03:04") == 86400 + 2 * 3600 + 3 * 60 + 4
    assert parse_duration({"hours": 1, "minutes": 30}) == 5400
    assert parse_duration(timedelta(seconds=7)) == 7
    assert parse_duration(None) is None
    with pytest.raises(ValueError, match="'DD:HH:MM:SS'"):
        parse_duration("1h")
    with pytest.raises(ValueError, match="timedelta arguments"):
        parse_duration({"hour": 1})
    with pytest.raises(ValueError, match="'step' or 'epoch'"):
        Timer(interval="batch")
