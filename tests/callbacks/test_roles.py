"""Callbacks declare what they stand for (``role``) instead of being recognised by class:
a plugin's progress bar, model summary or checkpointer replaces the default, and any
callback publishes metrics through ``trainer.log_metrics``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ember.hub.tracking import JournalReader
from ember.trainer import Callback, Trainer
from ember.trainer.callbacks import ModelSummary, ProgressBar
from ember.trainer.checkpoint import ModelCheckpoint
from ember.trainer.errors import MisconfigurationError


class PluginBar:
    """A third-party progress bar: not a subclass of anything ember ships."""

    role = "progress_bar"

    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, i: int
    ) -> None:
        self.batches += 1


class PluginSummary(Callback):
    role: ClassVar[str | None] = "model_summary"


class PluginCheckpointer(Callback):
    """Saves one checkpoint per epoch in its own folder."""

    role: ClassVar[str | None] = "checkpointer"

    def __init__(self, dirpath: Path) -> None:
        self.dirpath = str(dirpath)
        self.saved: list[str] = []

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        path = os.path.join(self.dirpath, f"epoch{trainer.current_epoch}.ckpt")
        trainer.save_checkpoint(path)
        self.saved.append(path)


def test_a_plugin_progress_bar_and_summary_replace_the_defaults(
    tmp_path: Path, model_cls: Any, make_loader: Any
) -> None:
    """Regression: defaults were found by ``isinstance``, so a third-party progress bar
    got ember's bar added next to it (two bars)."""
    bar, summary = PluginBar(), PluginSummary()
    trainer = Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        max_epochs=1,
        callbacks=[bar, summary],
    )
    assert not any(isinstance(c, (ProgressBar, ModelSummary)) for c in trainer.callbacks)
    assert trainer.progress_bar_callback is bar
    trainer.fit(model_cls(), make_loader())
    assert bar.batches == trainer.global_step > 0
    defaults = Trainer(default_root_dir=tmp_path, logger=False)
    assert isinstance(defaults.progress_bar_callback, ProgressBar)


def test_a_plugin_checkpointer_replaces_model_checkpoint(
    tmp_path: Path, model_cls: Any, make_loader: Any
) -> None:
    """Regression: checkpointers were found by the class name "ModelCheckpoint", so a
    plugin's checkpointer got a ModelCheckpoint added and was not ordered last."""

    class Late(Callback):
        pass

    checkpointer = PluginCheckpointer(tmp_path / "mine")

    class WithCallbacks(model_cls):  # type: ignore[misc,valid-type]
        def configure_callbacks(self) -> Any:
            return [Late()]

    trainer = Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=2,
        callbacks=[checkpointer],
    )
    assert not any(isinstance(c, ModelCheckpoint) for c in trainer.callbacks)
    trainer.fit(WithCallbacks(), make_loader())
    assert trainer.callbacks[-1] is checkpointer  # checkpointers go last
    assert trainer.checkpoint_callback is checkpointer
    assert [Path(p).name for p in checkpointer.saved] == ["epoch0.ckpt", "epoch1.ckpt"]
    # "last" finds the newest checkpoint in the checkpointer's folder
    resumed = Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=3,
        callbacks=[PluginCheckpointer(tmp_path / "mine")],
    )
    resumed.fit(model_cls(), make_loader(), ckpt_path=checkpointer.saved[-1])
    assert resumed.global_step == 12
    with pytest.raises(MisconfigurationError, match="PluginCheckpointer"):
        Trainer(enable_checkpointing=False, callbacks=[PluginCheckpointer(tmp_path)])


def test_any_callback_logs_metrics_through_the_public_method(
    tmp_path: Path, model_cls: Any, make_loader: Any
) -> None:
    class Measures(Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            trainer.log_metrics({"custom/epoch_seen": float(trainer.current_epoch)})

    trainer = Trainer(
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        max_epochs=2,
        callbacks=[Measures()],
    )
    trainer.fit(model_cls(), make_loader())
    assert trainer.logged_metrics["custom/epoch_seen"] == 1.0
    with JournalReader(trainer.run.dir) as journal:
        series = journal.metric_series("custom/epoch_seen")
    assert [(step, value) for step, value, _ in series] == [(4, 0.0), (8, 1.0)]
