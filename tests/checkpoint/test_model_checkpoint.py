"""ModelCheckpoint and OnExceptionCheckpoint in real training runs: top-k bookkeeping,
save_last, triggers, file name templates, versioning, and the state across a resume."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from ckpt_helpers import Scripted, fit, make_loader, names
from ember.trainer import MisconfigurationError, Trainer
from ember.trainer.checkpoint import (
    CheckpointError,
    ModelCheckpoint,
    OnExceptionCheckpoint,
    load_checkpoint_safe,
    resolve_ckpt_path,
)

SCORES = [5.0, 3.0, 4.0, 1.0, 2.0, 6.0]  # per epoch; 4 steps per epoch


def _mc(tmp_path: Path, **options) -> ModelCheckpoint:
    options.setdefault("dirpath", tmp_path / "ckpts")
    return ModelCheckpoint(**options)


# ------------------------------------------------------------------------- top-k


@pytest.mark.parametrize(
    ("mode", "best", "kth", "kept_scores"),
    [
        ("min", "epoch=3-step=16.ckpt", "epoch=4-step=20.ckpt", {1.0, 2.0}),
        ("max", "epoch=5-step=24.ckpt", "epoch=0-step=4.ckpt", {6.0, 5.0}),
    ],
)
def test_top_k(tmp_path: Path, mode: str, best: str, kth: str, kept_scores: set) -> None:
    mc = _mc(tmp_path, monitor="val_score", mode=mode, save_top_k=2)
    fit(tmp_path, [mc], max_epochs=6, scores=SCORES)
    assert names(mc.dirpath) == sorted([best, kth])
    assert os.path.basename(mc.best_model_path) == best
    assert float(mc.best_model_score) == SCORES[int(best[6])]
    assert os.path.basename(mc.kth_best_model_path) == kth
    assert float(mc.kth_value) == SCORES[int(kth[6])]
    assert sorted(os.path.basename(p) for p in mc.best_k_models) == sorted([best, kth])
    assert {float(v) for v in mc.best_k_models.values()} == kept_scores


def test_save_top_k_all_and_none(tmp_path: Path) -> None:
    keep_all = _mc(tmp_path, monitor="val_score", save_top_k=-1, filename="{epoch}")
    fit(tmp_path, [keep_all], max_epochs=3, scores=SCORES)
    assert names(keep_all.dirpath) == ["epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"]

    none = _mc(
        tmp_path, dirpath=tmp_path / "none", monitor="val_score", save_top_k=0, save_last=True
    )
    fit(tmp_path, [none], max_epochs=3, scores=SCORES)
    assert names(none.dirpath) == ["last.ckpt"]
    assert none.best_model_path == ""


def test_without_monitor_keeps_the_latest(tmp_path: Path) -> None:
    mc = _mc(tmp_path)
    fit(tmp_path, [mc], max_epochs=3)
    assert names(mc.dirpath) == ["epoch=2-step=12.ckpt"]
    assert mc.best_model_path.endswith("epoch=2-step=12.ckpt")


def test_nan_never_ranks_best(tmp_path: Path) -> None:
    mc = _mc(tmp_path, monitor="val_score", save_top_k=1, filename="{epoch}")
    fit(tmp_path, [mc], max_epochs=3, scores=[2.0, float("nan"), 3.0])
    assert names(mc.dirpath) == ["epoch=0.ckpt"]


# ------------------------------------------------------------------------- save_last


def test_save_last_links_the_top_k_file_or_saves_its_own(tmp_path: Path) -> None:
    mc = _mc(tmp_path, monitor="val_score", save_top_k=1, save_last=True, filename="{epoch}")
    fit(tmp_path, [mc], max_epochs=4, scores=[3.0, 1.0, 2.0, 0.5])
    last = Path(mc.dirpath) / "last.ckpt"
    assert names(mc.dirpath) == ["epoch=3.ckpt", "last.ckpt"]
    assert os.path.samefile(last, Path(mc.dirpath) / "epoch=3.ckpt")  # same step: a hard link
    assert mc.last_model_path == str(last)

    mc2 = _mc(tmp_path, dirpath=tmp_path / "b", monitor="val_score", save_top_k=1, save_last=True)
    fit(tmp_path, [mc2], max_epochs=4, scores=[1.0, 3.0, 2.0, 4.0])
    last2 = Path(mc2.dirpath) / "last.ckpt"
    assert not os.path.samefile(last2, mc2.best_model_path)  # not improved: a full save
    assert load_checkpoint_safe(last2)["global_step"] == 16
    assert load_checkpoint_safe(mc2.best_model_path)["global_step"] == 4


def test_last_checkpoint_holds_its_own_bookkeeping(tmp_path: Path) -> None:
    mc = _mc(tmp_path, monitor="val_score", save_top_k=2, save_last=True)
    fit(tmp_path, [mc], max_epochs=2, scores=SCORES)
    state = load_checkpoint_safe(mc.last_model_path)["callbacks"][mc.state_key]
    assert state["last_model_path"] == mc.last_model_path
    assert state["best_model_path"] == mc.best_model_path
    assert state["best_k_models"] == {p: float(v) for p, v in mc.best_k_models.items()}


def test_save_last_on_train_end_after_an_earlier_trigger(tmp_path: Path) -> None:
    mc = _mc(tmp_path, every_n_train_steps=3, save_last=True, save_top_k=0)
    trainer = fit(tmp_path, [mc], max_epochs=2)  # 8 steps: triggers at 3 and 6
    assert trainer.global_step == 8
    assert load_checkpoint_safe(mc.last_model_path)["global_step"] == 8


# ------------------------------------------------------------------------- triggers


def test_every_n_train_steps(tmp_path: Path) -> None:
    mc = _mc(tmp_path, every_n_train_steps=3, save_top_k=-1, filename="{step}")
    fit(tmp_path, [mc], max_epochs=3)
    assert names(mc.dirpath) == ["step=12.ckpt", "step=3.ckpt", "step=6.ckpt", "step=9.ckpt"]


def test_every_n_epochs(tmp_path: Path) -> None:
    mc = _mc(tmp_path, every_n_epochs=2, save_top_k=-1, filename="{epoch}")
    fit(tmp_path, [mc], max_epochs=5)
    assert names(mc.dirpath) == ["epoch=1.ckpt", "epoch=3.ckpt"]


def test_train_time_interval(tmp_path: Path) -> None:
    mc = _mc(tmp_path, train_time_interval=timedelta(0), save_top_k=-1, filename="{step}")
    fit(tmp_path, [mc], max_epochs=1)
    assert names(mc.dirpath) == [f"step={s}.ckpt" for s in (1, 2, 3, 4)]


def test_save_on_train_epoch_end_false_saves_after_validation(tmp_path: Path) -> None:
    mc = _mc(tmp_path, save_on_train_epoch_end=False, save_top_k=-1, filename="{epoch}")
    fit(tmp_path, [mc], max_epochs=3, check_val_every_n_epoch=2)
    assert names(mc.dirpath) == ["epoch=1.ckpt"]  # validation ran after epoch 1 only


def test_step_trigger_before_the_metric_exists_saves_last_and_warns(tmp_path: Path) -> None:
    mc = _mc(tmp_path, monitor="val_score", every_n_train_steps=2, save_last=True)
    with pytest.warns(UserWarning, match="Top-k checkpoints start once it is logged"):
        fit(tmp_path, [mc], max_epochs=2, scores=SCORES)
    assert "last.ckpt" in names(mc.dirpath)
    assert mc.best_model_path  # once validation logged it, top-k saves began


def test_missing_monitor_after_validation_is_an_error(tmp_path: Path) -> None:
    for when in (None, False):  # at the end of the training epoch, or after validation
        mc = _mc(tmp_path, monitor="val_scor", save_on_train_epoch_end=when)
        with pytest.raises(MisconfigurationError, match="Did you mean 'val_score'"):
            fit(tmp_path, [mc], max_epochs=1, scores=SCORES)


def test_weights_only(tmp_path: Path) -> None:
    mc = _mc(tmp_path, save_weights_only=True)
    fit(tmp_path, [mc], max_epochs=1)
    checkpoint = load_checkpoint_safe(mc.best_model_path)
    assert "state_dict" in checkpoint and "optimizer_states" not in checkpoint


# ------------------------------------------------------------------------- names


def test_filename_templates(tmp_path: Path) -> None:
    mc = ModelCheckpoint(dirpath=tmp_path, filename="{epoch:02d}-{val/loss:.3f}")
    metrics = {"epoch": 3, "step": 9, "val/loss": torch.tensor(0.123456)}
    assert mc.format_checkpoint_name(metrics) == str(tmp_path / "epoch=03-val_loss=0.123.ckpt")
    assert mc.format_checkpoint_name(metrics, ver=2).endswith("epoch=03-val_loss=0.123-v2.ckpt")
    plain = ModelCheckpoint(filename="e{epoch}_l{val/loss:.1f}", auto_insert_metric_name=False)
    assert plain.format_checkpoint_name(metrics) == "e3_l0.1.ckpt"
    default = ModelCheckpoint()
    assert default.format_checkpoint_name(metrics) == "epoch=3-step=9.ckpt"
    with pytest.warns(UserWarning, match="'acc' is not a logged metric"):
        assert ModelCheckpoint(filename="{acc:.2f}").format_checkpoint_name({}) == "acc=0.00.ckpt"
    with pytest.raises(ValueError, match=r"cannot format val/loss=0\.123456"):
        ModelCheckpoint(filename="{val/loss:d}").format_checkpoint_name(metrics)


def test_metric_names_with_slash_in_a_real_run(tmp_path: Path) -> None:
    mc = ModelCheckpoint(
        dirpath=tmp_path / "c", monitor="val/acc", mode="max", filename="{epoch}-{val/acc:.1f}"
    )
    trainer = Trainer(
        max_epochs=2,
        default_root_dir=str(tmp_path),
        callbacks=[mc],
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    trainer.fit(Scripted([0.5, 0.7], metric="val/acc"), make_loader(), make_loader(seed=1))
    assert names(mc.dirpath) == ["epoch=1-val_acc=0.7.ckpt"]


def test_version_counter_keeps_other_runs_files(tmp_path: Path) -> None:
    folder = tmp_path / "ckpts"
    folder.mkdir()
    (folder / "epoch=0-step=4.ckpt").write_bytes(b"another run's file")
    (folder / "last.ckpt").write_bytes(b"another run's last")
    mc = _mc(tmp_path, save_last=True)
    fit(tmp_path, [mc], max_epochs=1)
    assert names(folder) == [
        "epoch=0-step=4-v1.ckpt",
        "epoch=0-step=4.ckpt",
        "last-v1.ckpt",
        "last.ckpt",
    ]
    assert (folder / "epoch=0-step=4.ckpt").read_bytes() == b"another run's file"

    fixed = _mc(tmp_path, dirpath=tmp_path / "fixed", filename="model", save_top_k=-1)
    fit(tmp_path, [fixed], max_epochs=3)
    assert names(fixed.dirpath) == ["model-v1.ckpt", "model-v2.ckpt", "model.ckpt"]


# ------------------------------------------------------------------------- resume


def test_bookkeeping_continues_across_resume(tmp_path: Path) -> None:
    options = {"monitor": "val_score", "save_top_k": 2, "save_last": True}
    whole = _mc(tmp_path, dirpath=tmp_path / "whole", **options)
    fit(tmp_path / "w", [whole], max_epochs=6, scores=SCORES)

    first = _mc(tmp_path, dirpath=tmp_path / "split", **options)
    fit(tmp_path / "s", [first], max_epochs=3, scores=SCORES)
    second = _mc(tmp_path, dirpath=tmp_path / "split", **options)
    fit(tmp_path / "s", [second], max_epochs=6, scores=SCORES, ckpt_path="last")

    assert names(second.dirpath) == names(whole.dirpath)
    assert os.path.basename(second.best_model_path) == os.path.basename(whole.best_model_path)
    assert float(second.best_model_score) == float(whole.best_model_score)
    assert os.path.basename(second.kth_best_model_path) == os.path.basename(
        whole.kth_best_model_path
    )
    assert {os.path.basename(p): float(v) for p, v in second.best_k_models.items()} == {
        os.path.basename(p): float(v) for p, v in whole.best_k_models.items()
    }
    assert second.last_model_path == first.last_model_path  # overwritten, not last-v1


def test_state_round_trip_and_changed_folder(tmp_path: Path) -> None:
    mc = ModelCheckpoint(monitor="val_score", save_top_k=2)
    fit(tmp_path, [mc], max_epochs=3, scores=SCORES)
    state = mc.state_dict()
    assert state["dirpath"] == str(tmp_path / "checkpoints")

    same = ModelCheckpoint(monitor="val_score", save_top_k=2)
    same.load_state_dict(state)  # before setup: applied once the folder is known
    assert same.best_model_path == ""
    same.setup(Trainer(default_root_dir=str(tmp_path), logger=False), None, "fit")
    assert same.state_dict() == state

    moved = _mc(tmp_path, dirpath=tmp_path / "elsewhere", monitor="val_score", save_top_k=2)
    with pytest.warns(UserWarning, match="checkpoint folder changed"):
        moved.load_state_dict(state)
    assert moved.best_model_path == mc.best_model_path
    assert moved.best_k_models == {}


def test_ckpt_path_best_in_a_new_trainer(tmp_path: Path) -> None:
    options = {"dirpath": tmp_path / "ckpts", "monitor": "val_score", "save_last": True}
    fit(tmp_path, [ModelCheckpoint(**options)], max_epochs=4, scores=SCORES)
    fresh = ModelCheckpoint(**options)
    fresh.dirpath = str(tmp_path / "ckpts")
    best = resolve_ckpt_path("best", [fresh], tmp_path)
    assert best is not None and best.name == "epoch=3-step=16.ckpt"
    trainer = fit(
        tmp_path, [ModelCheckpoint(**options)], max_epochs=5, scores=SCORES, ckpt_path="best"
    )
    assert trainer.global_step == 20


def test_ckpt_path_last_and_errors(tmp_path: Path) -> None:
    mc = _mc(tmp_path, save_last=True)
    mc.dirpath = str(tmp_path / "ckpts")
    with pytest.warns(UserWarning, match="no last checkpoint"):
        assert resolve_ckpt_path("last", [mc], tmp_path) is None
    fit(tmp_path, [mc], max_epochs=1)
    last = resolve_ckpt_path("last", [mc], tmp_path)
    assert last is not None and last.name == "last.ckpt"
    preempted = Path(mc.dirpath) / "preempted.ckpt"
    preempted.write_bytes(last.read_bytes())
    os.utime(preempted, (last.stat().st_mtime + 5,) * 2)
    assert resolve_ckpt_path("last", [mc], tmp_path) == preempted
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_ckpt_path(tmp_path / "nope.ckpt", [mc], tmp_path)
    with pytest.raises(CheckpointError, match="needs a ModelCheckpoint"):
        resolve_ckpt_path("best", [], tmp_path)


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "avg"}, "must be 'min' or 'max'"),
        ({"save_top_k": -2}, "integer >= -1"),
        ({"save_top_k": 3}, "needs a metric to rank"),
        ({"save_last": "link"}, "must be True or False"),
        ({"every_n_train_steps": -1}, "integer >= 0"),
        ({"every_n_train_steps": 2, "every_n_epochs": 1}, "mutually exclusive"),
        ({"every_n_epochs": 1, "train_time_interval": 60}, "mutually exclusive"),
        ({"train_time_interval": "soon"}, "HH:MM:SS"),
    ],
)
def test_invalid_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelCheckpoint(**options)


def test_time_interval_forms() -> None:
    for value in (90, "00:01:30", "0:00:01:30", {"seconds": 90}, timedelta(seconds=90)):
        assert ModelCheckpoint(train_time_interval=value).train_time_interval == timedelta(
            seconds=90
        )
    assert ModelCheckpoint().every_n_epochs == 1


def test_state_keys_tell_instances_apart() -> None:
    a = ModelCheckpoint(monitor="val_loss")
    b = ModelCheckpoint(monitor="val_loss", every_n_train_steps=10)
    assert a.state_key != b.state_key
    assert a.state_key.startswith("ModelCheckpoint{'monitor': 'val_loss'")


# ------------------------------------------------------------------------- on exception


class Exploding(Scripted):
    def training_step(self, batch, batch_idx):
        if self.global_step == 5:
            raise RuntimeError("boom at step 5")
        return super().training_step(batch, batch_idx)


def _fit_exploding(tmp_path: Path, callback: OnExceptionCheckpoint) -> None:
    trainer = Trainer(
        max_epochs=3,
        default_root_dir=str(tmp_path),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
    )
    with pytest.raises(RuntimeError, match="boom at step 5"):
        trainer.fit(Exploding(), make_loader())


def test_on_exception_checkpoint(tmp_path: Path) -> None:
    callback = OnExceptionCheckpoint(tmp_path / "exc")
    _fit_exploding(tmp_path, callback)
    assert callback.ckpt_path == str(tmp_path / "exc" / "on_exception.ckpt")
    assert load_checkpoint_safe(callback.ckpt_path)["global_step"] == 5


def test_on_exception_checkpoint_default_folder_and_failed_save(tmp_path: Path) -> None:
    callback = OnExceptionCheckpoint(filename="crash")
    _fit_exploding(tmp_path, callback)
    assert (tmp_path / "checkpoints" / "crash.ckpt").is_file()

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with pytest.warns(UserWarning, match="could not save"):
        _fit_exploding(tmp_path, OnExceptionCheckpoint(blocked))
    with pytest.raises(ValueError, match="bare name"):
        OnExceptionCheckpoint(filename="a/b")
