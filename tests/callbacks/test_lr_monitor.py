"""LearningRateMonitor logs what the optimizers really use, under Lightning's names."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ember.trainer.callbacks import LambdaCallback, LearningRateMonitor


def test_epoch_scheduler_values_match_the_scheduler(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    def configure(module: Any) -> Any:
        opt = torch.optim.SGD(module.parameters(), lr=0.1)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]

    monitor = LearningRateMonitor()
    trainer = make_trainer(max_epochs=4, callbacks=[monitor])
    trainer.fit(model_cls(configure=configure), make_loader())
    assert monitor.lrs == {"lr-SGD": pytest.approx([0.1, 0.05, 0.025, 0.0125])}
    assert trainer.logged_metrics["lr-SGD"] == pytest.approx(0.0125)


def test_step_scheduler_is_logged_every_log_every_n_steps(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    def configure(module: Any) -> Any:
        opt = torch.optim.Adam(module.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (step + 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    used: list[float] = []
    record = LambdaCallback(
        on_before_optimizer_step=lambda optimizer: used.append(optimizer.param_groups[0]["lr"])
    )
    monitor = LearningRateMonitor(logging_interval="step")
    trainer = make_trainer(max_epochs=2, log_every_n_steps=2, callbacks=[monitor, record])
    trainer.fit(model_cls(configure=configure), make_loader(n=40))  # 5 steps per epoch
    assert len(used) == 10
    assert monitor.lrs["lr-Adam"] == pytest.approx(used[::2])
    assert used == pytest.approx([1.0 / (s + 1) for s in range(10)])


def test_names_param_groups_momentum_and_weight_decay(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    def configure(module: Any) -> Any:
        return torch.optim.SGD(
            [
                {"params": [module.layer.weight], "lr": 0.1},
                {"params": [module.layer.bias], "lr": 0.01, "weight_decay": 0.5},
            ],
            momentum=0.9,
        )

    monitor = LearningRateMonitor(log_momentum=True, log_weight_decay=True)
    trainer = make_trainer(max_epochs=1, callbacks=[monitor])
    trainer.fit(model_cls(configure=configure), make_loader())
    assert trainer.logged_metrics["lr-SGD/pg1"] == pytest.approx(0.1)
    assert trainer.logged_metrics["lr-SGD/pg2"] == pytest.approx(0.01)
    assert trainer.logged_metrics["lr-SGD/pg1-momentum"] == pytest.approx(0.9)
    assert trainer.logged_metrics["lr-SGD/pg2-weight_decay"] == pytest.approx(0.5)
    assert trainer.logged_metrics["lr-SGD/pg1-weight_decay"] == 0.0


def test_named_groups_scheduler_names_and_adam_betas(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    def configure(module: Any) -> Any:
        opt = torch.optim.Adam(
            [
                {"params": [module.layer.weight], "name": "weights"},
                {"params": [module.layer.bias], "name": "bias"},
            ],
            lr=0.01,
            betas=(0.8, 0.99),
        )
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "name": "my_lr"}}

    monitor = LearningRateMonitor(log_momentum=True)
    trainer = make_trainer(max_epochs=1, callbacks=[monitor])
    trainer.fit(model_cls(configure=configure), make_loader())
    assert set(monitor.lrs) == {"my_lr/weights", "my_lr/bias"}
    assert trainer.logged_metrics["my_lr/weights-momentum"] == pytest.approx(0.8)


def test_two_optimizers_of_one_class_get_numbered(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    class TwoOptimizers(model_cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch: Any, batch_idx: int) -> None:
            for opt in self.optimizers():
                opt.zero_grad()
                x, y = batch
                self.manual_backward(torch.nn.functional.mse_loss(self.layer(x), y))
                opt.step()

        def configure_optimizers(self) -> Any:
            return [
                torch.optim.SGD([self.layer.weight], lr=0.1),
                torch.optim.SGD([self.layer.bias], lr=0.2),
            ]

    monitor = LearningRateMonitor()
    trainer = make_trainer(max_epochs=1, log_every_n_steps=1, callbacks=[monitor])
    trainer.fit(TwoOptimizers(), make_loader(n=16))
    assert trainer.logged_metrics["lr-SGD"] == pytest.approx(0.1)
    assert trainer.logged_metrics["lr-SGD-1"] == pytest.approx(0.2)


def test_duplicate_group_names_and_bad_interval_are_explained(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    with pytest.raises(ValueError, match="'step', 'epoch' or None"):
        LearningRateMonitor(logging_interval="batch")

    def configure(module: Any) -> Any:
        return torch.optim.SGD(
            [
                {"params": [module.layer.weight], "name": "a"},
                {"params": [module.layer.bias], "name": "a"},
            ],
            lr=0.1,
        )

    trainer = make_trainer(max_epochs=1, callbacks=[LearningRateMonitor()])
    with pytest.raises(ValueError, match="several parameter groups named 'a'"):
        trainer.fit(model_cls(configure=configure), make_loader())


def test_accumulated_batches_log_each_step_once(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    monitor = LearningRateMonitor()
    trainer = make_trainer(
        max_epochs=1, log_every_n_steps=1, accumulate_grad_batches=2, callbacks=[monitor]
    )
    trainer.fit(model_cls(), make_loader(n=64))  # 8 batches, 4 optimizer steps
    assert monitor.lrs == {"lr-SGD": [0.05] * 4}
