"""Conformance suites for torch-side plugins, in the manner of pandas' extension tests:
a plugin's test module subclasses a suite, names its provider, and inherits every test.

.. code-block:: python

    from ember.trainer.testing import PrecisionConformance

    class TestMyPrecision(PrecisionConformance):
        precision = "my_precision"          # the provider name users select

Each suite trains a tiny model for one epoch with the plugin selected by name, and checks
that its state survives a checkpoint round trip, plus the contract points of its kind.
Override the ``plugin_manager`` fixture to test against a manager other than the
process-global one. Requires pytest (a test dependency, not one of ember's).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from ember.hub import PluginManager, get_plugin_manager
from ember.trainer.checkpoint import load_checkpoint_safe
from ember.trainer.module import EmberModule
from ember.trainer.plugins import Accelerator, Precision, Strategy
from ember.trainer.trainer import Trainer
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["AcceleratorConformance", "PrecisionConformance", "StrategyConformance"]


def _data(n: int = 64, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-1.5], [0.5], [2.0]])
    return DataLoader(TensorDataset(x, y), batch_size=16)


class _Tiny(EmberModule):
    """A linear regression that records what the plugin contract promises it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(4, 1)
        self.step_calls = 0
        self.validation_calls = 0
        self.before_step_grads: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        dtype = self.layer.weight.dtype
        return F.mse_loss(self(x.to(dtype)), y.to(dtype))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.step_calls += 1
        return self.loss(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.validation_calls += 1
        self.log("val_loss", self.loss(batch))

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        grad = self.layer.weight.grad
        assert grad is not None
        self.before_step_grads.append(grad.detach().float().cpu().clone())

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def loss_on(self, data: DataLoader) -> float:
        with torch.no_grad():
            return sum(float(self.loss(b)) for b in data) / len(data)


class _Suite:
    """What every suite shares: the manager, a trainer with quiet defaults, a run."""

    #: extra ``Trainer`` flags every test of the suite uses
    trainer_flags: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def plugin_manager(self) -> PluginManager:
        """The manager the plugin is found through (override for a private one)."""
        return get_plugin_manager()

    def selection(self) -> dict[str, Any]:
        """The ``Trainer`` flags that select the plugin under test."""
        raise NotImplementedError

    def make_trainer(self, plugin_manager: PluginManager, root: Path, **flags: Any) -> Trainer:
        """A trainer with the plugin selected by name and nothing else switched on."""
        defaults: dict[str, Any] = {
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "enable_checkpointing": False,
            "num_sanity_val_steps": 0,
            "default_root_dir": root,
        }
        return Trainer(
            plugin_manager=plugin_manager,
            **{**defaults, **self.trainer_flags, **self.selection(), **flags},
        )

    def test_trains_one_epoch(self, plugin_manager: PluginManager, tmp_path: Path) -> None:
        """One epoch of training lowers the loss; every batch is a step."""
        data = _data()
        module = _Tiny()
        before = module.loss_on(data)
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        trainer.fit(module, data, _data(32, seed=1))
        assert trainer.global_step == len(data)
        assert module.step_calls == len(data)
        assert module.validation_calls == 2
        assert math.isfinite(module.loss_on(data))
        assert module.loss_on(data) < before

    def test_state_survives_a_checkpoint_round_trip(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """Weights, loop position, optimizer and the providers' own state come back."""
        data = _data()
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        module = _Tiny()
        trainer.fit(module, data)
        path = tmp_path / "round_trip.ckpt"
        trainer.save_checkpoint(path)
        saved = load_checkpoint_safe(path)
        resumed = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        fresh = _Tiny()
        resumed.fit(fresh, data, ckpt_path=path)  # already at max_epochs: restores only
        assert resumed.global_step == trainer.global_step
        for name, value in module.state_dict().items():
            assert torch.equal(fresh.state_dict()[name].cpu(), value.cpu()), name
        assert resumed.precision_plugin.state_dict() == trainer.precision_plugin.state_dict()
        assert saved.get("precision", {}) == trainer.precision_plugin.state_dict()
        accelerator_rng = trainer.accelerator.rng_state()
        assert set(accelerator_rng) <= set(saved["rng"])


class AcceleratorConformance(_Suite):
    """Set :attr:`accelerator` to the provider name."""

    accelerator: ClassVar[str]

    def selection(self) -> dict[str, Any]:
        """``accelerator=<name>``."""
        return {"accelerator": self.accelerator}

    def test_is_an_accelerator_with_devices(self, plugin_manager: PluginManager) -> None:
        """The provider builds an ``Accelerator`` that parses ``devices=1`` to one device
        of its own ``device_type``."""
        trainer = self.make_trainer(plugin_manager, Path.cwd())
        accelerator = trainer.accelerator
        assert isinstance(accelerator, Accelerator)
        devices = accelerator.parse_devices(1)
        assert len(devices) == 1 and devices[0].type == accelerator.device_type

    def test_batches_reach_the_device(self, plugin_manager: PluginManager, tmp_path: Path) -> None:
        """Every tensor of a nested batch lands on the run's device."""
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        trainer.fit(_Tiny(), _data())
        accelerator = trainer.accelerator
        device = trainer.strategy.root_device
        batch = {"x": torch.ones(2), "nested": [torch.zeros(1), ("text", torch.ones(1))]}
        moved = accelerator.batch_to_device(batch, device)
        assert moved["x"].device.type == device.type
        assert moved["nested"][1][0] == "text"
        assert moved["nested"][1][1].device.type == device.type

    def test_rng_state_round_trips(self, plugin_manager: PluginManager) -> None:
        """What ``rng_state`` returns, ``load_rng_state`` accepts."""
        accelerator = self.make_trainer(plugin_manager, Path.cwd()).accelerator
        state = accelerator.rng_state()
        assert isinstance(state, dict)
        accelerator.load_rng_state(state)


class PrecisionConformance(_Suite):
    """Set :attr:`precision` to the provider name; :attr:`gradient_rtol` bounds how far
    the gradients seen by ``on_before_optimizer_step`` may be from float32's."""

    precision: ClassVar[str]
    gradient_rtol: ClassVar[float] = 1e-3

    def selection(self) -> dict[str, Any]:
        """``precision=<name>``."""
        return {"precision": self.precision}

    def test_is_a_precision_that_knows_the_device(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """The provider builds a ``Precision``; set-up tells it the run's device type."""
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        assert isinstance(trainer.precision_plugin, Precision)
        trainer.fit(_Tiny(), _data())
        assert trainer.precision_plugin.device_type == trainer.strategy.root_device.type

    def test_hooks_and_clipping_see_true_gradients(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """``on_before_optimizer_step`` sees unscaled gradients, equal (to
        ``gradient_rtol``) to a float32 run's, with clipping on."""
        data = _data(16)
        reference = _Tiny()
        Trainer(
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=tmp_path,
            max_epochs=1,
            gradient_clip_val=1e6,
        ).fit(reference, data)
        module = _Tiny()
        self.make_trainer(plugin_manager, tmp_path, max_epochs=1, gradient_clip_val=1e6).fit(
            module, data
        )
        torch.testing.assert_close(
            module.before_step_grads[0],
            reference.before_step_grads[0],
            rtol=self.gradient_rtol,
            atol=self.gradient_rtol,
        )


class StrategyConformance(_Suite):
    """Set :attr:`strategy` to the provider name (tests run in one process)."""

    strategy: ClassVar[str]

    def selection(self) -> dict[str, Any]:
        """``strategy=<name>``."""
        return {"strategy": self.strategy}

    def test_is_a_strategy_that_keeps_the_module(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """The user's module stays the trainer's module; the model wraps it."""
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        strategy = trainer.strategy
        assert isinstance(strategy, Strategy)
        module = _Tiny()
        trainer.fit(module, _data())
        assert trainer.module is module
        assert strategy.is_global_zero == (strategy.global_rank == 0)
        assert 0 <= strategy.local_rank < max(1, strategy.world_size)

    def test_collectives_in_one_process(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """After set-up, the collectives answer as one process would."""
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        trainer.fit(_Tiny(), _data())
        strategy = trainer.strategy
        strategy.setup_environment()
        try:
            value = torch.tensor([1.0, 2.0], device=strategy.root_device)
            assert strategy.reduce(value, "sum").shape == value.shape
            assert strategy.all_gather(value).shape[-1] == 2
            assert strategy.broadcast({"k": 1}) == {"k": 1}
            assert strategy.reduce_boolean_decision(True) is True
            strategy.barrier("conformance")
        finally:
            strategy.teardown()

    def test_steps_run_through_the_model(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """``step_function`` runs the module's steps (through the wrapper, if any)."""
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        module = _Tiny()
        trainer.fit(module, _data())
        assert module.step_calls == len(_data())
