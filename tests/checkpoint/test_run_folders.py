"""Each run keeps its checkpoints in its own folder, and ``ckpt_path="last"`` never
resumes another run's checkpoint silently (issue 13, item 6)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from ckpt_helpers import Scripted, make_loader, names
from ember.trainer import Trainer
from ember.trainer.checkpoint import (
    AmbiguousCheckpointError,
    ModelCheckpoint,
    OnExceptionCheckpoint,
    load_checkpoint_safe,
)


def _trainer(root: Path, max_epochs: int = 1, **flags: Any) -> Trainer:
    options: dict[str, Any] = dict(
        max_epochs=max_epochs,
        default_root_dir=str(root),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    options.update(flags)
    return Trainer(**options)


def _fit(trainer: Trainer, ckpt_path: str | None = None) -> Trainer:
    trainer.fit(Scripted(), make_loader(), make_loader(seed=1), ckpt_path=ckpt_path)
    return trainer


def _runs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "ember_runs").iterdir() if p.is_dir())


def test_each_run_checkpoints_in_its_own_folder(tmp_path: Path) -> None:
    first = _fit(_trainer(tmp_path))
    second = _fit(_trainer(tmp_path))
    assert first.run.id != second.run.id
    for trainer in (first, second):
        folder = trainer.run.dir / "checkpoints"
        assert Path(trainer.checkpoint_callback.dirpath) == folder
        assert Path(trainer.log_dir) == trainer.run.dir
        assert names(folder) == ["epoch=0-step=4.ckpt", "last.ckpt"]  # no -v1 names
        assert load_checkpoint_safe(folder / "last.ckpt")["run"]["id"] == trainer.run.id
    assert not (tmp_path / "checkpoints").exists()
    assert _runs(tmp_path) == sorted([first.run.dir, second.run.dir])


def test_last_resumes_the_one_run_and_continues_it(tmp_path: Path) -> None:
    first = _fit(_trainer(tmp_path, max_epochs=1))
    resumed = _fit(_trainer(tmp_path, max_epochs=2), ckpt_path="last")
    folder = first.run.dir / "checkpoints"
    assert resumed.ckpt_path == str(folder / "last.ckpt")
    assert resumed.run.id == first.run.id and resumed.run.dir == first.run.dir
    assert _runs(tmp_path) == [first.run.dir]  # no folder for a run that never was
    assert Path(resumed.checkpoint_callback.dirpath) == folder
    assert names(folder) == ["epoch=1-step=8.ckpt", "last.ckpt"]  # rotated, not -v1
    assert resumed.global_step == 8


def test_last_with_several_runs_is_an_error_that_lists_them(tmp_path: Path) -> None:
    first = _fit(_trainer(tmp_path))
    second = _fit(_trainer(tmp_path))
    with pytest.raises(AmbiguousCheckpointError) as info:
        _fit(_trainer(tmp_path, max_epochs=2), ckpt_path="last")
    message = str(info.value)
    assert "2 runs" in message
    for trainer in (first, second):
        assert str(trainer.run.dir / "checkpoints" / "last.ckpt") in message
    assert message.index(str(second.run.dir)) < message.index(str(first.run.dir))  # newest first
    assert _runs(tmp_path) == sorted([first.run.dir, second.run.dir])  # nothing opened

    # a path settles it; a job with its own folder relaunches with "last"
    chosen = first.run.dir / "checkpoints" / "last.ckpt"
    resumed = _fit(_trainer(tmp_path, max_epochs=2), ckpt_path=str(chosen))
    assert resumed.run.id == first.run.id and resumed.global_step == 8


def test_last_with_a_given_folder_looks_only_there(tmp_path: Path) -> None:
    _fit(_trainer(tmp_path))
    _fit(_trainer(tmp_path))
    job = tmp_path / "job-7"

    def trainer(max_epochs: int) -> Trainer:
        callbacks = [ModelCheckpoint(dirpath=job, save_last=True)]
        return _trainer(tmp_path, max_epochs=max_epochs, callbacks=callbacks)

    with pytest.warns(UserWarning, match="no last checkpoint"):
        first = _fit(trainer(1), ckpt_path="last")  # the job's first launch
    assert first.global_step == 4 and names(job) == ["epoch=0-step=4.ckpt", "last.ckpt"]
    resumed = _fit(trainer(2), ckpt_path="last")
    assert resumed.ckpt_path == str(job / "last.ckpt") and resumed.run.id == first.run.id


def test_the_same_trainer_fits_on_from_its_own_run(tmp_path: Path) -> None:
    _fit(_trainer(tmp_path))
    trainer = _fit(_trainer(tmp_path))
    run_dir = trainer.run.dir
    trainer.flags = dataclasses.replace(trainer.flags, max_epochs=2)
    _fit(trainer, ckpt_path="last")
    assert trainer.ckpt_path == str(run_dir / "checkpoints" / "last.ckpt")
    assert trainer.run.dir == run_dir and trainer.global_step == 8


def test_without_a_run_folder_checkpoints_go_under_the_root(tmp_path: Path) -> None:
    first = _fit(_trainer(tmp_path, logger=False))
    assert Path(first.checkpoint_callback.dirpath) == tmp_path / "checkpoints"
    assert not (tmp_path / "ember_runs").exists()
    resumed = _fit(_trainer(tmp_path, max_epochs=2, logger=False), ckpt_path="last")
    assert resumed.ckpt_path == str(tmp_path / "checkpoints" / "last.ckpt")
    assert resumed.global_step == 8


def test_on_exception_checkpoint_follows_the_run_folder(tmp_path: Path) -> None:
    class Explodes(Scripted):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if self.trainer.global_step == 2:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    trainer = _trainer(tmp_path, callbacks=[OnExceptionCheckpoint()])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(Explodes(), make_loader())
    saved = trainer.callbacks[0].ckpt_path
    assert saved == str(trainer.run.dir / "checkpoints" / "on_exception.ckpt")
    assert Path(saved).is_file()
