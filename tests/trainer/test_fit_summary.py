"""The summary printed when fit ends: why it stopped, the best checkpoint and its score,
the run folder, what each tracker received; quiet when asked to be."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ember.hub import Logger
from ember.trainer import Callback, EmberModule
from ember.trainer.callbacks import EarlyStopping, LambdaCallback, ModelCheckpoint, Timer
from ember.trainer.errors import MisconfigurationError
from trainer_helpers import TinyModel, make_loader


def _summary(out: str) -> list[str]:
    """The summary's lines: from ``fit finished|interrupted|failed:`` to the end."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("fit "))
    return lines[start:]


def _relative(path: str | os.PathLike[str]) -> str:
    return os.path.relpath(path)


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the trainer's root, as a user would: the summary shows relative paths."""
    monkeypatch.chdir(tmp_path)


def test_summary_names_the_reason_the_best_checkpoint_the_run_and_each_tracker(
    make_trainer: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = ModelCheckpoint(monitor="val_loss")
    trainer = make_trainer(
        max_epochs=2,
        logger="csv",
        enable_fit_summary=True,
        enable_checkpointing=True,
        callbacks=[checkpoint],
    )
    trainer.fit(TinyModel(), make_loader(), make_loader(seed=1))
    summary = _summary(capsys.readouterr().out)
    (csv,) = trainer.tracking.report.loggers
    assert summary == [
        "fit finished: max_epochs=2 reached",
        summary[1],
        f"  best checkpoint: {_relative(checkpoint.best_model_path)} "
        f"(val_loss={float(checkpoint.best_model_score):.6g})",
        f"  run folder: {_relative(trainer.run.dir)}",
        f"  trackers: csv received {csv.delivered} records (0 pending, 0 failed)",
    ]
    assert summary[1].startswith("  trained 2 epochs, 8 steps in 0:00:")
    assert csv.delivered > 0
    assert not os.path.isabs(summary[3].split(": ", 1)[1])


def _stop(trainer: Any, module: Any) -> None:
    trainer.should_stop = True


@pytest.mark.parametrize(
    ("flags", "callbacks", "reason"),
    [
        ({"max_steps": 3}, [], "max_steps=3 reached"),
        ({"max_time": {"seconds": 0}}, [], "max_time=0:00:00 reached"),
        (
            {"max_epochs": 50},
            [EarlyStopping("val_loss", stopping_threshold=10.0)],
            "early stopping on 'val_loss': Stopping threshold reached",
        ),
        (
            {"max_epochs": 5},
            [Timer(duration="00:00:00:00", verbose=False)],
            "the Timer callback's time limit reached",
        ),
        (
            {"max_epochs": 5},
            [LambdaCallback(on_train_epoch_end=_stop)],
            "trainer.should_stop was set (by the module or a callback)",
        ),
    ],
    ids=["max_steps", "max_time", "early_stopping", "timer", "should_stop"],
)
def test_summary_says_why_training_stopped(
    make_trainer: Any,
    capsys: pytest.CaptureFixture[str],
    flags: dict[str, Any],
    callbacks: list[Any],
    reason: str,
) -> None:
    trainer = make_trainer(logger=False, enable_fit_summary=True, callbacks=callbacks, **flags)
    trainer.fit(TinyModel(), make_loader(), make_loader(seed=1))
    summary = _summary(capsys.readouterr().out)
    assert summary[0].startswith(f"fit finished: {reason}"), summary
    assert "  checkpoints: off (enable_checkpointing=False)" in summary
    assert "  tracking: off (logger=False)" in summary


class _Interrupt(Callback):
    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step == 2:
            raise KeyboardInterrupt


def test_an_interrupted_fit_says_so_and_where_its_files_are(
    make_trainer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = make_trainer(
        max_epochs=3, logger="csv", enable_fit_summary=True, callbacks=[_Interrupt()]
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(TinyModel(), make_loader())
    summary = _summary(capsys.readouterr().out)
    assert summary[0] == "fit interrupted: interrupted by Ctrl-C (KeyboardInterrupt)"
    assert summary[1].startswith("  trained 0 epochs, 2 steps in ")
    assert f"  run folder: {_relative(trainer.run.dir)}" in summary
    assert any(line.startswith("  trackers: csv received ") for line in summary)


def test_fast_dev_run_says_logging_and_checkpointing_are_off(
    make_trainer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = make_trainer(fast_dev_run=2, enable_fit_summary=True)
    trainer.fit(TinyModel(), make_loader(), make_loader(seed=1))
    summary = _summary(capsys.readouterr().out)
    assert summary[0] == "fit finished: fast_dev_run=2 ran 2 batches of each loader"
    assert summary[2] == (
        "  fast_dev_run: logging and checkpointing are off, nothing was saved "
        "(remove fast_dev_run for a real run)"
    )
    assert len(summary) == 3


class _Unreachable(Logger):
    """A tracker that is down for the whole run."""

    name = "unreachable"

    def log_metrics(self, records: Any) -> None:
        raise ConnectionError("tracker down")


def test_a_tracker_that_did_not_receive_everything_is_shown_with_its_figures(
    make_trainer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = make_trainer(
        max_epochs=1,
        logger=["csv", _Unreachable()],
        logger_timeout=0.5,
        log_every_n_steps=1,
        enable_fit_summary=True,
    )
    trainer.fit(TinyModel(), make_loader())
    summary = _summary(capsys.readouterr().out)
    trainer.run.finish("success", timeout=0)
    table = [line.split() for line in summary]
    assert ["LOGGER", "STATE", "DELIVERED", "PENDING", "FAILED"] in table
    (row,) = [cells for cells in table if cells and cells[0] == "unreachable"]
    assert int(row[3]) + int(row[4]) > 0  # pending or failed: not hidden


def test_summary_follows_the_progress_bar_flag_unless_set(
    make_trainer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for flags, shown in [
        ({"enable_progress_bar": False}, False),
        ({"enable_progress_bar": True}, True),
        ({"enable_progress_bar": True, "enable_fit_summary": False}, False),
        ({"enable_progress_bar": False, "enable_fit_summary": True}, True),
    ]:
        make_trainer(max_steps=1, logger=False, **flags).fit(TinyModel(), make_loader())
        out = capsys.readouterr().out
        assert ("fit finished:" in out) is shown, flags
    with pytest.raises(
        MisconfigurationError, match=r"enable_fit_summary \(.*\) must be True, False"
    ):
        make_trainer(enable_fit_summary="yes")


def test_a_fit_that_fails_before_training_prints_no_summary(
    make_trainer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    class NoTrainingStep(TinyModel):
        training_step = EmberModule.training_step

    trainer = make_trainer(enable_fit_summary=True, logger=False)
    with pytest.raises(MisconfigurationError, match="has no training_step"):
        trainer.fit(NoTrainingStep(), make_loader())
    assert "fit " not in capsys.readouterr().out
