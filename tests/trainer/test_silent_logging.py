"""Logging options and calls that did nothing, silently (issue 13, "nothing silent"): each
now warns once or raises with what to do."""

from __future__ import annotations

import csv
import os
import warnings
from typing import Any

import pytest
from ember.trainer import Callback, MisconfigurationError
from ember.trainer import module as module_mod
from ember.trainer.callbacks import LearningRateMonitor
from trainer_helpers import TinyModel, make_loader


@pytest.fixture
def fresh_no_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which no-effect options already warned in this process."""
    monkeypatch.setattr(module_mod, "_warned_no_effect", set())


def no_effect_warnings(record: Any) -> list[str]:
    return [str(w.message) for w in record if "has no effect in ember" in str(w.message)]


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ({"rank_zero_only": True}, "rank_zero_only=True"),
        ({"sync_dist_group": "group"}, "sync_dist_group='group'"),
        ({"metric_attribute": "acc"}, "metric_attribute='acc'"),
    ],
)
def test_a_log_option_without_effect_warns_once(
    make_trainer: Any, fresh_no_effect: None, options: dict[str, Any], shown: str
) -> None:
    class Logs(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            self.log("extra", loss.detach(), **options)
            return loss

    trainer = make_trainer(max_epochs=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(Logs(), make_loader(64, 16))
    found = no_effect_warnings(record)
    assert len(found) == 1, found
    assert found[0].startswith(f"self.log(..., {shown}) has no effect in ember")
    assert "extra" in trainer.callback_metrics


def test_log_dict_options_without_effect_warn(make_trainer: Any, fresh_no_effect: None) -> None:
    class Logs(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            self.log_dict({"x": loss.detach()}, rank_zero_only=True, sync_dist_group="g")
            return loss

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_trainer(max_epochs=1).fit(Logs(), make_loader(32, 16))
    found = no_effect_warnings(record)
    assert [m.split(")")[0] for m in found] == [
        "self.log(..., rank_zero_only=True",
        "self.log(..., sync_dist_group='g'",
    ]


def test_default_log_options_do_not_warn(make_trainer: Any, fresh_no_effect: None) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_trainer(max_epochs=1).fit(TinyModel(), make_loader(32, 16))
    assert no_effect_warnings(record) == []


def test_log_metrics_before_any_run_is_an_error(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=1)
    with pytest.raises(MisconfigurationError, match="before fit, validate, test or predict"):
        trainer.log_metrics({"early": 1.0})
    trainer.fit(TinyModel(), make_loader(16, 16))
    assert "early" not in trainer.logged_metrics
    trainer.log_metrics({"after": 2.0})
    assert trainer.logged_metrics["after"] == 2.0


def test_log_metrics_in_the_sanity_check_is_not_recorded_and_warns(make_trainer: Any) -> None:
    """Like self.log values of the sanity check: before, they reached the journal."""

    class Publish(Callback):
        def on_validation_epoch_end(self, trainer: Any, module: Any) -> None:
            trainer.log_metrics({"seen_sanity": float(trainer.sanity_checking)})

    trainer = make_trainer(max_epochs=1, callbacks=[Publish()], num_sanity_val_steps=2)
    with pytest.warns(UserWarning, match="during the sanity check is not recorded") as record:
        trainer.fit(TinyModel(), make_loader(32, 16), make_loader(32, 16))
    assert len([w for w in record if "sanity check is not recorded" in str(w.message)]) == 1
    assert trainer.logged_metrics["seen_sanity"] == 0.0
    with open(os.path.join(trainer.log_dir, "metrics.csv"), newline="") as f:
        seen = [row["seen_sanity"] for row in csv.DictReader(f) if row.get("seen_sanity")]
    assert [float(v) for v in seen] == [0.0]


def test_lr_monitor_without_a_logger_warns(make_trainer: Any) -> None:
    monitor = LearningRateMonitor()
    trainer = make_trainer(max_epochs=1, logger=False, callbacks=[monitor])
    with pytest.warns(UserWarning, match="LearningRateMonitor has no logger") as record:
        trainer.fit(TinyModel(), make_loader(16, 16))
    assert len([w for w in record if "LearningRateMonitor has no" in str(w.message)]) == 1
    assert monitor.lrs == {"lr-SGD": [0.1]}


def test_lr_monitor_with_a_logger_does_not_warn(make_trainer: Any) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_trainer(max_epochs=1, callbacks=[LearningRateMonitor()]).fit(
            TinyModel(), make_loader(16, 16)
        )
    assert not [w for w in record if "LearningRateMonitor has no" in str(w.message)]


def test_lr_monitor_with_fast_dev_run_does_not_warn(make_trainer: Any) -> None:
    monitor = LearningRateMonitor()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_trainer(fast_dev_run=True, callbacks=[monitor]).fit(TinyModel(), make_loader(16, 16))
    assert not [w for w in record if "LearningRateMonitor has no" in str(w.message)]
    assert monitor.lrs == {"lr-SGD": [0.1]}


def test_log_every_n_steps_zero_warns_that_step_values_are_never_sent(make_trainer: Any) -> None:
    """As in Lightning, 0 turns step values off; with loggers that is said, not silent."""
    trainer = make_trainer(max_epochs=1, log_every_n_steps=0)
    with pytest.warns(UserWarning, match="^log_every_n_steps=0 never sends") as record:
        trainer.fit(TinyModel(), make_loader(64, 16))
    assert len([w for w in record if "log_every_n_steps=0" in str(w.message)]) == 1
    assert "train_loss" not in trainer.logged_metrics


def test_log_every_n_steps_zero_without_loggers_does_not_warn(make_trainer: Any) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_trainer(max_epochs=1, log_every_n_steps=0, logger=False).fit(
            TinyModel(), make_loader(64, 16)
        )
    assert not [w for w in record if "log_every_n_steps=0" in str(w.message)]
