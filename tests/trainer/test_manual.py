"""Manual optimization: the module steps its own optimizers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ember.trainer import Callback, MisconfigurationError
from torch.nn import functional as F
from trainer_helpers import TinyModel, make_loader, make_net


class TwoOptimizers(TinyModel):
    """A GAN-shaped module: two optimizers, each stepped by hand every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.other = make_net(seed=1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        first, second = self.optimizers()
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        first.zero_grad()
        self.manual_backward(loss)
        first.step()
        other_loss = F.cross_entropy(self.other(x), y)
        second.zero_grad()
        self.manual_backward(other_loss)
        self.clip_gradients(second, gradient_clip_val=0.01)
        second.step()
        if batch_idx == 1:
            self.lr_schedulers().step()
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        first = torch.optim.SGD(self.net.parameters(), lr=0.1)
        second = torch.optim.SGD(self.other.parameters(), lr=0.1)
        return [first, second], [torch.optim.lr_scheduler.StepLR(first, 1, gamma=0.5)]


def test_manual_optimization_counts_every_optimizer_step(make_trainer: Any) -> None:
    events: list[str] = []

    class Watch(Callback):
        def on_before_optimizer_step(self, trainer: Any, module: Any, optimizer: Any) -> None:
            events.append("step")

        def on_before_backward(self, trainer: Any, module: Any, loss: Any) -> None:
            events.append("backward")

        def on_before_zero_grad(self, trainer: Any, module: Any, optimizer: Any) -> None:
            events.append("zero_grad")

    model = TwoOptimizers()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = make_trainer(max_epochs=2, callbacks=[Watch()])
    trainer.fit(model, make_loader(32, 16))
    assert trainer.global_step == 2 * 2 * 2  # two optimizer steps per batch, like Lightning
    assert events[:6] == ["zero_grad", "backward", "step", "zero_grad", "backward", "step"]
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.025)
    assert trainer.optimizers[1].param_groups[0]["lr"] == 0.1  # manual: nobody else steps it
    assert "loss" in trainer.callback_metrics


def test_single_manual_optimizer_is_returned_alone(make_trainer: Any) -> None:
    class Model(TinyModel):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch: Any, batch_idx: int) -> None:
            opt = self.optimizers()
            loss = F.cross_entropy(self(batch[0]), batch[1])
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            assert opt.param_groups[0]["lr"] == 0.1

    trainer = make_trainer(max_epochs=1)
    trainer.fit(Model(), make_loader(32, 16))
    assert trainer.global_step == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"accumulate_grad_batches": 2},
            "accumulate_grad_batches=2 only applies to automatic optimization: remove it, and "
            "accumulate in training_step by stepping every N batches",
        ),
        (
            {"gradient_clip_val": 1.0},
            "Trainer(gradient_clip_val=...) only applies to automatic optimization: remove it, "
            "and call self.clip_gradients(optimizer, gradient_clip_val=...) in training_step "
            "before optimizer.step()",
        ),
    ],
)
def test_automatic_only_flags_with_manual_optimization(
    make_trainer: Any, flags: dict[str, Any], message: str
) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1, **flags).fit(TwoOptimizers(), make_loader(16, 16))
    assert str(info.value) == message


def test_manual_backward_in_automatic_mode(make_trainer: Any) -> None:
    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> None:
            self.manual_backward(F.cross_entropy(self(batch[0]), batch[1]))

    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(Model(), make_loader(16, 16))
    assert str(info.value) == (
        "manual_backward is for manual optimization: set self.automatic_optimization = False "
        "in __init__, or return the loss from training_step and let the trainer call backward"
    )


def test_lbfgs_gets_a_closure(make_trainer: Any) -> None:
    class Model(TinyModel):
        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.LBFGS(self.parameters(), lr=0.5, max_iter=3)

    model = Model()
    trainer = make_trainer(max_epochs=2)
    trainer.fit(model, make_loader(32, 16))
    assert trainer.global_step == 4
    assert trainer.callback_metrics["train_loss"].item() < 1.1


def test_toggle_optimizer_freezes_the_other_parameters(make_trainer: Any) -> None:
    flags: list[tuple[bool, bool]] = []

    class Model(TwoOptimizers):
        def training_step(self, batch: Any, batch_idx: int) -> None:
            _, second = self.optimizers()
            self.toggle_optimizer(second)
            flags.append((self.net[0].weight.requires_grad, self.other[0].weight.requires_grad))
            loss = F.cross_entropy(self.other(batch[0]), batch[1])
            second.zero_grad()
            self.manual_backward(loss)
            second.step()
            self.untoggle_optimizer(second)
            flags.append((self.net[0].weight.requires_grad, self.other[0].weight.requires_grad))

    make_trainer(max_epochs=1).fit(Model(), make_loader(16, 16))
    assert flags == [(False, True), (True, True)]
