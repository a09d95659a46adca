"""``EmberModule.load_from_checkpoint``, ``EmberDataModule.load_from_checkpoint``, what
``enable_checkpointing`` adds, what a weights-only checkpoint can and cannot do, and
``ckpt_path="last"`` across processes and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ckpt_helpers import Scripted, make_loader
from ember.trainer import EmberDataModule, EmberModule, Trainer
from ember.trainer.checkpoint import (
    CheckpointError,
    ModelCheckpoint,
    StateMismatchError,
    load_checkpoint_safe,
)
from ember.trainer.errors import MisconfigurationError
from harness import assert_same_weights, fit_in_process, train_resumable
from torch import nn
from torch.nn import functional as F


def quiet(root: Path, **flags: Any) -> Trainer:
    return Trainer(
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **flags,
    )


class Data(EmberDataModule):
    def __init__(self, batch_size: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.served = 0

    def train_dataloader(self) -> Any:
        self.served += 1
        return make_loader(batch_size=self.hparams.batch_size)

    def state_dict(self) -> dict[str, Any]:
        return {"served": self.served}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.served = state_dict["served"]


# ------------------------------------------------------------------ load_from_checkpoint


def test_module_is_rebuilt_from_its_hyperparameters(tmp_path: Path) -> None:
    trainer, trained = fit_in_process(tmp_path, 1)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = train_resumable.Net.load_from_checkpoint(tmp_path / "m.ckpt")
    assert isinstance(loaded, train_resumable.Net)
    assert loaded.hparams == {"hidden": 32, "lr": 0.05}
    assert_same_weights(loaded.state_dict(), trained.state_dict(), "loaded")

    tuned = train_resumable.Net.load_from_checkpoint(tmp_path / "m.ckpt", lr=1e-4)
    assert tuned.hparams.lr == 1e-4  # overrides win
    with pytest.raises(StateMismatchError, match=r"body\.0\.weight: checkpoint \[32, 8\]"):
        train_resumable.Net.load_from_checkpoint(tmp_path / "m.ckpt", hidden=16)


class NeedsWidth(EmberModule):
    """Does not save its hyperparameters."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = nn.Linear(4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WithActivation(EmberModule):
    def __init__(self, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Sequential(nn.Linear(4, 4), activation())

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.layer(x)[:, :2], y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_hyperparameters_that_cannot_build_the_class_say_what_to_pass(tmp_path: Path) -> None:
    module = NeedsWidth(3)
    trainer = quiet(tmp_path, max_epochs=1, enable_checkpointing=False)
    trainer.predict(module, [torch.zeros(2, 4)])  # a module run without training
    trainer.save_checkpoint(tmp_path / "w.ckpt", weights_only=True)
    with pytest.raises(CheckpointError) as info:
        NeedsWidth.load_from_checkpoint(tmp_path / "w.ckpt")
    message = str(info.value)
    assert "cannot build NeedsWidth from" in message
    assert "missing a required argument: 'width'" in message
    assert "hyperparameters: none (NeedsWidth.__init__ does not call" in message
    assert "NeedsWidth.load_from_checkpoint(path, name=value)" in message
    assert NeedsWidth.load_from_checkpoint(tmp_path / "w.ckpt", width=3).layer.out_features == 3


def test_a_described_hyperparameter_must_be_passed_again(tmp_path: Path) -> None:
    trainer = quiet(tmp_path, max_epochs=1, enable_checkpointing=False)
    module = WithActivation(nn.GELU)
    trainer.fit(module, make_loader())
    with pytest.warns(UserWarning, match="not plain data"):
        trainer.save_checkpoint(tmp_path / "a.ckpt")
    saved = load_checkpoint_safe(tmp_path / "a.ckpt")["hyper_parameters"]
    assert saved == {"activation": {"class_path": "torch.nn.modules.activation:GELU"}}
    with pytest.raises(CheckpointError, match=r"activation was saved as a description"):
        WithActivation.load_from_checkpoint(tmp_path / "a.ckpt")
    rebuilt = WithActivation.load_from_checkpoint(tmp_path / "a.ckpt", activation=nn.GELU)
    assert_same_weights(rebuilt.state_dict(), module.state_dict(), "with the object")


def test_datamodule_is_rebuilt_with_its_state(tmp_path: Path) -> None:
    trainer = quiet(tmp_path, max_epochs=2, reload_dataloaders_every_n_epochs=1)
    trainer.fit(Scripted(), datamodule=Data(batch_size=4))
    trainer.save_checkpoint(tmp_path / "d.ckpt")
    checkpoint = load_checkpoint_safe(tmp_path / "d.ckpt")
    assert checkpoint["datamodule_hyper_parameters"] == {"batch_size": 4}
    data = Data.load_from_checkpoint(tmp_path / "d.ckpt")
    assert data.hparams.batch_size == 4 and data.served == 2
    assert Data.load_from_checkpoint(tmp_path / "d.ckpt", batch_size=16).hparams.batch_size == 16


# ------------------------------------------------------------------ checkpointing flags


def test_a_model_checkpoint_is_added_by_default(tmp_path: Path) -> None:
    trainer = quiet(tmp_path, max_epochs=2)
    (added,) = trainer.checkpoint_callbacks
    assert added.save_last and added.monitor is None
    trainer.fit(Scripted(), make_loader())
    assert added.dirpath == str(tmp_path / "checkpoints")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "epoch=1-step=8.ckpt",
        "last.ckpt",
    ]

    again = quiet(tmp_path, max_epochs=3)
    again.fit(Scripted(), make_loader(), ckpt_path="last")
    assert again.ckpt_path == str(tmp_path / "checkpoints" / "last.ckpt")
    assert again.global_step == 12

    assert quiet(tmp_path, enable_checkpointing=False).checkpoint_callbacks == []
    assert quiet(tmp_path, fast_dev_run=True).checkpoint_callbacks == []
    given = ModelCheckpoint(monitor="val_score")
    assert quiet(tmp_path, callbacks=[given]).checkpoint_callbacks == [given]


def test_a_model_checkpoint_with_checkpointing_disabled_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationError, match="enable_checkpointing=False"):
        quiet(tmp_path, enable_checkpointing=False, callbacks=[ModelCheckpoint()])


def test_a_weights_only_checkpoint_cannot_resume(tmp_path: Path) -> None:
    only = ModelCheckpoint(save_weights_only=True, save_last=True)
    quiet(tmp_path, max_epochs=1, callbacks=[only]).fit(Scripted(), make_loader())
    path = tmp_path / "checkpoints" / "last.ckpt"
    assert load_checkpoint_safe(path)["weights_only"] is True

    module = Scripted()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = quiet(tmp_path, max_epochs=2, callbacks=[ModelCheckpoint(save_last=True)])
    with pytest.raises(CheckpointError) as info:
        trainer.fit(module, make_loader(), ckpt_path="last")
    message = str(info.value)
    assert f"cannot resume training from {path}: it was saved with weights only" in message
    assert "Scripted.load_from_checkpoint(" in message
    assert_same_weights(module.state_dict(), before, "nothing was loaded")
    # evaluating from it is fine
    assert quiet(tmp_path, enable_checkpointing=False).validate(
        Scripted(), make_loader(), ckpt_path=path, verbose=False
    )


def test_last_finds_a_default_folder_of_another_process_and_continues_in_it(
    tmp_path: Path,
) -> None:
    """A checkpoint folder left to its default differs between processes when an earlier
    entry point opened a run directory: ``"last"`` looks in every run directory, and the
    resumed callback keeps rotating the files where they are."""
    earlier = tmp_path / "ember_runs" / "20250101-000000-abcd" / "checkpoints"
    first = ModelCheckpoint(dirpath=earlier, save_last=True)
    quiet(tmp_path, max_epochs=1, callbacks=[first]).fit(Scripted(), make_loader())

    default = ModelCheckpoint(save_last=True)
    trainer = quiet(tmp_path, max_epochs=2, callbacks=[default])
    trainer.fit(Scripted(), make_loader(), ckpt_path="last")
    assert trainer.ckpt_path == str(earlier / "last.ckpt")
    assert default.dirpath == str(earlier)
    assert sorted(p.name for p in earlier.iterdir()) == ["epoch=1-step=8.ckpt", "last.ckpt"]
    assert not (tmp_path / "checkpoints").exists()
