"""Every form ``configure_optimizers`` may return, and when schedulers step."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ember.trainer import MisconfigurationError
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau, StepLR
from trainer_helpers import TinyModel, make_loader


class Configured(TinyModel):
    """``configure_optimizers`` returns ``build(self)``."""

    def __init__(self, build: Any) -> None:
        super().__init__()
        self.build = build

    def configure_optimizers(self) -> Any:
        return self.build(self)


def sgd(module: Any, lr: float = 1.0) -> torch.optim.SGD:
    return torch.optim.SGD(module.parameters(), lr=lr)


def halving(opt: torch.optim.Optimizer) -> LambdaLR:
    return LambdaLR(opt, lambda n: 0.5**n)


FORMS = {
    "optimizer": lambda m: sgd(m),
    "list": lambda m: [sgd(m)],
    "tuple": lambda m: (sgd(m),),
    "pair of lists": lambda m: (lambda o: ([o], [halving(o)]))(sgd(m)),
    "dict": lambda m: (lambda o: {"optimizer": o, "lr_scheduler": halving(o)})(sgd(m)),
    "dict with config": lambda m: (
        lambda o: {"optimizer": o, "lr_scheduler": {"scheduler": halving(o), "interval": "epoch"}}
    )(sgd(m)),
    "list of dicts": lambda m: [(lambda o: {"optimizer": o, "lr_scheduler": halving(o)})(sgd(m))],
    "pair with config": lambda m: (lambda o: ([o], [{"scheduler": halving(o), "frequency": 1}]))(
        sgd(m)
    ),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_trains(make_trainer: Any, form: str) -> None:
    model = Configured(FORMS[form])
    trainer = make_trainer(max_epochs=2)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model, make_loader(32, 16))
    assert trainer.global_step == 4
    assert len(trainer.optimizers) == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    if trainer.lr_scheduler_configs:
        assert lr == pytest.approx(0.25)  # two epoch steps of halving
        assert model.lr_schedulers() is trainer.lr_scheduler_configs[0].scheduler
    else:
        assert lr == 1.0
        assert model.lr_schedulers() is None


def test_step_interval_and_frequency(make_trainer: Any) -> None:
    def build(m: Any) -> Any:
        opt = sgd(m)
        config = {"scheduler": halving(opt), "interval": "step", "frequency": 2}
        return {"optimizer": opt, "lr_scheduler": config}

    trainer = make_trainer(max_epochs=1)
    trainer.fit(Configured(build), make_loader(96, 16))  # 6 steps -> 3 scheduler steps
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.5**3)
    config = trainer.lr_scheduler_configs[0]
    assert (config.interval, config.frequency, config.reduce_on_plateau) == ("step", 2, False)


def test_reduce_on_plateau_reads_the_monitored_metric(make_trainer: Any) -> None:
    class Model(Configured):
        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            self.log("flat", 1.0)

    def build(m: Any) -> Any:
        opt = sgd(m)
        plateau = ReduceLROnPlateau(opt, factor=0.5, patience=0)
        return {"optimizer": opt, "lr_scheduler": plateau, "monitor": "flat"}

    trainer = make_trainer(max_epochs=3)
    trainer.fit(Model(build), make_loader(32, 16), make_loader(16, 16))
    # epoch 1 sets the best value; epochs 2 and 3 do not improve on it
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.25)


def test_reduce_on_plateau_with_a_missing_metric(make_trainer: Any) -> None:
    def build(m: Any) -> Any:
        opt = sgd(m)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": ReduceLROnPlateau(opt), "monitor": "val_los"},
        }

    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(Configured(build), make_loader(16, 16), make_loader(16, 16))
    assert str(info.value) == (
        "ReduceLROnPlateau monitors 'val_los', which was not logged. Did you mean 'val_loss'? "
        "Available metrics: train_loss, val_loss. Log it with self.log('val_los', ...), or set "
        '"strict": False in the lr_scheduler dict to skip steps where it is missing'
    )


def test_lr_scheduler_step_override(make_trainer: Any) -> None:
    seen: list[Any] = []

    class Model(Configured):
        def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
            seen.append(type(scheduler).__name__)
            scheduler.step()

    trainer = make_trainer(max_epochs=2)
    trainer.fit(Model(lambda m: (lambda o: ([o], [StepLR(o, 1)]))(sgd(m))), make_loader(16, 16))
    assert seen == ["StepLR", "StepLR"]


def test_estimated_stepping_batches_in_configure_optimizers(make_trainer: Any) -> None:
    seen: list[Any] = []

    def build(m: Any) -> Any:
        seen.append(m.trainer.estimated_stepping_batches)
        return sgd(m)

    make_trainer(max_epochs=3, accumulate_grad_batches=2).fit(
        Configured(build), make_loader(80, 16)
    )
    assert seen == [9]  # ceil(5 / 2) steps per epoch, 3 epochs


MISTAKES = {
    "nothing": (
        lambda m: None,
        "Configured.configure_optimizers returned no optimizer, which automatic optimization "
        "needs: return one (e.g. torch.optim.SGD(self.parameters(), lr=0.1)), or set "
        "self.automatic_optimization = False",
    ),
    "two optimizers": (
        lambda m: [sgd(m), sgd(m)],
        "Configured.configure_optimizers returned 2 optimizers, but automatic optimization "
        "steps exactly one: set self.automatic_optimization = False and step them in "
        "training_step (self.optimizers(), self.manual_backward(loss)), or put all parameter "
        "groups in one optimizer",
    ),
    "a string": (
        lambda m: "adam",
        "configure_optimizers returned str: return an optimizer; a list of optimizers; a pair "
        '([optimizers], [schedulers]); a dict {"optimizer": opt, "lr_scheduler": scheduler or '
        '{"scheduler": ..., "interval": "epoch" | "step", "frequency": 1, "monitor": '
        '"val_loss"}}; or a list of such dicts',
    ),
    "typo in dict": (
        lambda m: {"optimizer": sgd(m), "lr_schedular": None},
        "configure_optimizers returned an optimizer dict with the unknown key 'lr_schedular'; "
        "did you mean 'lr_scheduler'? Known keys: optimizer, lr_scheduler, monitor",
    ),
    "plateau without monitor": (
        lambda m: (lambda o: {"optimizer": o, "lr_scheduler": ReduceLROnPlateau(o)})(sgd(m)),
        "configure_optimizers returned a ReduceLROnPlateau scheduler without a metric to "
        'monitor: return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": '
        '"val_loss"}}',
    ),
    "bad interval": (
        lambda m: (
            lambda o: {
                "optimizer": o,
                "lr_scheduler": {"scheduler": halving(o), "interval": "batch"},
            }
        )(sgd(m)),
        'a scheduler\'s "interval" must be "epoch" or "step", got \'batch\'',
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_bad_configure_optimizers(make_trainer: Any, mistake: str) -> None:
    build, message = MISTAKES[mistake]
    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(Configured(build), make_loader(16, 16))
    assert str(info.value) == message


def test_missing_configure_optimizers(make_trainer: Any) -> None:
    class NoOptimizers(TinyModel):
        configure_optimizers = TinyModel.__mro__[1].configure_optimizers  # the base's

    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(NoOptimizers(), make_loader(16, 16))
    assert str(info.value) == (
        "NoOptimizers has no configure_optimizers: define `def configure_optimizers(self)` "
        "returning e.g. `torch.optim.Adam(self.parameters(), lr=1e-3)`"
    )


def test_optimizer_step_gets_a_handle_that_passes_for_the_optimizer(make_trainer: Any) -> None:
    seen: list[Any] = []

    class Checks(TinyModel):
        def optimizer_step(
            self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
        ) -> None:
            seen.append(optimizer)
            assert isinstance(optimizer, torch.optim.SGD)
            assert optimizer.param_groups is self.trainer.optimizers[0].param_groups
            optimizer.step(closure=optimizer_closure)

    make_trainer(max_epochs=1).fit(Checks(), make_loader(32, 16))
    assert len(seen) == 2
    assert seen[0].optimizer is seen[1].optimizer
