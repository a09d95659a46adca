"""EmberModule's own API: hyperparameters, device, trainer access, printing."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch
from ember.trainer import EmberDataModule, EmberModule
from trainer_helpers import TinyModel, make_loader


class WithHparams(EmberModule):
    def __init__(
        self, hidden: int = 4, lr: float = 0.1, backbone: Any = None, **extra: Any
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore="backbone")
        self.layer = torch.nn.Linear(2, hidden)


class Child(WithHparams):
    def __init__(self, depth: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)


def test_save_hyperparameters_captures_init_arguments() -> None:
    model = WithHparams(hidden=8, backbone=torch.nn.Linear(1, 1), tag="x")
    assert model.hparams == {"hidden": 8, "lr": 0.1, "tag": "x"}
    assert model.hparams.hidden == 8
    model.hparams.lr = 0.5
    assert model.hparams_initial.lr == 0.1


def test_save_hyperparameters_in_a_subclass_chain() -> None:
    model = Child(depth=3, hidden=5)
    assert model.hparams == {"hidden": 5, "lr": 0.1, "depth": 3}


def test_save_hyperparameters_by_name_and_by_mapping() -> None:
    class Named(EmberModule):
        def __init__(self, a: int, b: int) -> None:
            super().__init__()
            self.save_hyperparameters("a")

    class Mapped(EmberModule):
        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__()
            self.save_hyperparameters(config)

    assert Named(1, 2).hparams == {"a": 1}
    assert Mapped({"x": 1}).hparams == {"x": 1}
    with pytest.raises(
        ValueError, match="'c' is not an argument of __init__; its arguments are: a, b"
    ):

        class Bad(Named):
            def __init__(self, a: int, b: int) -> None:
                EmberModule.__init__(self)
                self.save_hyperparameters("c")

        Bad(1, 2)


def test_datamodule_hyperparameters() -> None:
    class Data(EmberDataModule):
        def __init__(self, batch_size: int = 32) -> None:
            super().__init__()
            self.save_hyperparameters()

    assert Data(batch_size=8).hparams == {"batch_size": 8}


def test_trainer_access_and_counters(make_trainer: Any) -> None:
    model = TinyModel()
    with pytest.raises(RuntimeError, match="TinyModel is not attached to a Trainer"):
        _ = model.trainer
    assert model.current_epoch == 0 and model.global_step == 0
    trainer = make_trainer(max_epochs=2)
    trainer.fit(model, make_loader(32, 16))
    assert model.trainer is trainer
    assert trainer.module is model and trainer.lightning_module is model
    assert (model.current_epoch, model.global_step) == (2, 4)


def test_device_follows_to() -> None:
    model = TinyModel()
    assert model.device == torch.device("cpu")
    model.to(torch.device("meta"))
    assert model.device.type == "meta"


def test_print_only_on_global_zero(make_trainer: Any, capsys: Any) -> None:
    class Model(TinyModel):
        def on_train_start(self) -> None:
            self.print("hello from", self.trainer.global_rank)

    # logger=False: no run header on stdout
    make_trainer(max_epochs=1, logger=False).fit(Model(), make_loader(16, 16))
    assert capsys.readouterr().out == "hello from 0\n"


def test_pickling_drops_the_trainer(make_trainer: Any) -> None:
    model = TinyModel()
    make_trainer(max_epochs=1).fit(model, make_loader(16, 16))
    copy = pickle.loads(pickle.dumps(model))
    assert copy._trainer is None
    assert torch.equal(copy.net[0].weight, model.net[0].weight)


def test_freeze_and_unfreeze() -> None:
    model = TinyModel()
    model.freeze()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    model.unfreeze()
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_frozen_submodule_stays_in_eval_mode_after_validation(make_trainer: Any) -> None:
    model = TinyModel()
    model.net[0].eval()
    make_trainer(max_epochs=1).fit(model, make_loader(32, 16), make_loader(16, 16))
    assert model.training and not model.net[0].training


def test_optimizer_step_and_zero_grad_overrides(make_trainer: Any) -> None:
    calls: list[str] = []

    class Warmup(TinyModel):
        def optimizer_step(
            self, epoch: int, batch_idx: int, optimizer: Any, closure: Any = None
        ) -> None:
            for group in optimizer.param_groups:
                group["lr"] = 0.01 * (self.global_step + 1)
            calls.append("step")
            optimizer.step(closure=closure)

        def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: Any) -> None:
            calls.append("zero_grad")
            optimizer.zero_grad()

    trainer = make_trainer(max_epochs=1)
    trainer.fit(Warmup(), make_loader(48, 16))
    assert calls == ["step", "zero_grad"] * 3
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.03)


def test_float64_precision(make_trainer: Any) -> None:
    dtypes: list[torch.dtype] = []

    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            dtypes.append(batch[0].dtype)
            dtypes.append(torch.zeros(1).dtype)
            return super().training_step(batch, batch_idx)

    model = Model()
    trainer = make_trainer(max_epochs=1, precision="64-true")
    trainer.fit(model, make_loader(16, 16))
    assert dtypes == [torch.float64, torch.float64]
    assert model.dtype == torch.float64
    assert torch.get_default_dtype() == torch.float32
