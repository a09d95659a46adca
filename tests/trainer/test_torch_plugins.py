"""A third-party distribution (tests/trainer/fixtures/torchplugins), pip-installed and
found through its real entry point, provides a wrapping strategy, a loss-scaling
precision mode and an accelerator written only against ``ember.trainer.plugins``. Models
that override ``backward`` and ``optimizer_step``, use a closure optimizer (LBFGS), or
optimize by hand train correctly under each, selected by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ember.hub import PluginManager, UnknownProviderError, reset_plugin_manager
from ember.trainer import EmberModule, Trainer
from ember.trainer.checkpoint import load_checkpoint_safe
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


@pytest.fixture
def plugins(torch_plugins: PluginManager) -> PluginManager:
    """The manager that found the installed fixture distribution (see conftest)."""
    return torch_plugins


def regression_data(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5], [1.0]]) + 0.3
    return TensorDataset(x, y)


def loader(n: int = 64, batch_size: int = 16) -> DataLoader:
    return DataLoader(regression_data(n), batch_size=batch_size)


class Regression(EmberModule):
    """Linear regression; records which of its hooks ran."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(4, 1)
        self.events: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.loss(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self.loss(batch))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test_loss", self.loss(batch))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        return self(batch[0])

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def on_train_epoch_end(self) -> None:
        self.events.append("on_train_epoch_end")

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        precision = self.trainer.precision_plugin
        # gradients reach this hook at their true scale, on every path
        assert not getattr(precision, "grads_scaled", False), "hook saw scaled gradients"
        self.events.append("on_before_optimizer_step")

    def full_loss(self) -> float:
        with torch.no_grad():
            x, y = regression_data().tensors
            return float(F.mse_loss(self(x), y))


class OverridesBackwardAndStep(Regression):
    """Takes over ``backward`` and ``optimizer_step``, as a user writing warm-up does."""

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        self.events.append("backward")
        loss.backward(*args, **kwargs)

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        self.events.append("optimizer_step")
        optimizer.step(closure=optimizer_closure)


class ClosureOptimizer(Regression):
    """LBFGS re-evaluates the loss through the closure."""

    def configure_optimizers(self) -> Any:
        return torch.optim.LBFGS(self.parameters(), lr=0.5, max_iter=4)


class ManualOptimization(Regression):
    """Steps by hand, clipping through the module."""

    automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = self.loss(batch)
        self.manual_backward(loss)
        self.clip_gradients(optimizer, gradient_clip_val=10.0)
        optimizer.step()
        return loss


MODELS = [OverridesBackwardAndStep, ClosureOptimizer, ManualOptimization]
SELECTIONS = {
    "strategy": {"strategy": "fixture_wrapping"},
    "precision": {"precision": "fixture_scaling"},
    "accelerator": {"accelerator": "fixture_accel"},
    "all": {
        "strategy": "fixture_wrapping",
        "precision": "fixture_scaling",
        "accelerator": "fixture_accel",
    },
}


def make_trainer(plugins: PluginManager, tmp_path: Path, **flags: Any) -> Trainer:
    flags.setdefault("enable_progress_bar", False)
    flags.setdefault("enable_model_summary", False)
    flags.setdefault("enable_checkpointing", False)
    flags.setdefault("logger", False)
    flags.setdefault("num_sanity_val_steps", 0)
    return Trainer(default_root_dir=tmp_path, plugin_manager=plugins, **flags)


@pytest.mark.parametrize("selection", list(SELECTIONS))
@pytest.mark.parametrize("model_cls", MODELS, ids=lambda c: c.__name__)
def test_each_model_trains_under_each_plugin(
    plugins: PluginManager, tmp_path: Path, model_cls: type[Regression], selection: str
) -> None:
    flags = SELECTIONS[selection]
    clip = {} if model_cls is ManualOptimization else {"gradient_clip_val": 10.0}
    trainer = make_trainer(plugins, tmp_path, max_epochs=3, **flags, **clip)
    model = model_cls()
    before = model.full_loss()
    trainer.fit(model, loader(), loader(32))
    assert model.full_loss() < 0.5 * before
    assert trainer.global_step == 12
    assert "on_before_optimizer_step" in model.events
    assert "on_train_epoch_end" in model.events  # hooks are found on the user's module
    assert trainer.module is model
    strategy, precision, accelerator = (
        trainer.strategy,
        trainer.precision_plugin,
        trainer.accelerator,
    )
    if "strategy" in flags:
        assert type(strategy).__name__ == "WrappingStrategy"
        assert strategy.forward_calls >= 12 + 2  # every training and validation step
        assert strategy.loaders_processed == 2
        assert "prepare_data" in strategy.barriers
        assert not any(name in vars(model) for name in ("training_step", "validation_step"))
    if "precision" in flags:
        assert type(precision).__name__ == "ScalingPrecision"
        assert precision.device_type == "cpu"
        # every step went through the precision mode, the module's own included
        assert precision.step_calls == 12
        assert precision.backward_calls >= 12
        assert precision.skipped_steps == 0
        if model_cls is not ClosureOptimizer:
            assert precision.clip_calls == 12
    if "accelerator" in flags:
        assert type(accelerator).__name__ == "CountingAccelerator"
        assert accelerator.batches_moved == 12 + 2 * 3


def test_precision_wraps_a_module_that_overrides_backward_and_optimizer_step(
    plugins: PluginManager, tmp_path: Path
) -> None:
    """Regression: an overridden ``optimizer_step`` or ``backward`` bypassed the precision
    mode (0 calls each), so a loss scaler never stepped."""
    trainer = make_trainer(plugins, tmp_path, max_epochs=1, precision="fixture_scaling")
    model = OverridesBackwardAndStep()
    trainer.fit(model, loader())
    assert model.events.count("backward") == 4
    assert model.events.count("optimizer_step") == 4
    assert trainer.precision_plugin.backward_calls == 4
    assert trainer.precision_plugin.step_calls == 4


@pytest.mark.parametrize("model_cls", MODELS, ids=lambda c: c.__name__)
def test_inf_gradients_skip_the_step_and_back_off(
    plugins: PluginManager, tmp_path: Path, model_cls: type[Regression]
) -> None:
    trainer = make_trainer(
        plugins,
        tmp_path,
        max_epochs=2,
        precision={"name": "fixture_scaling", "init_scale": 3.0e38},
    )
    model = model_cls()
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model, loader())
    precision = trainer.precision_plugin
    assert precision.skipped_steps >= 1
    assert precision.scale < 3.0e38
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_precision_state_survives_a_checkpoint(plugins: PluginManager, tmp_path: Path) -> None:
    trainer = make_trainer(
        plugins,
        tmp_path,
        max_epochs=1,
        precision={"name": "fixture_scaling", "init_scale": 3.0e38},
    )
    trainer.fit(Regression(), loader())
    scale = trainer.precision_plugin.scale
    trainer.save_checkpoint(tmp_path / "scaled.ckpt")
    assert load_checkpoint_safe(tmp_path / "scaled.ckpt")["precision"]["scale"] == scale
    resumed = make_trainer(plugins, tmp_path, max_epochs=1, precision="fixture_scaling")
    resumed.fit(Regression(), loader(), ckpt_path=tmp_path / "scaled.ckpt")
    assert resumed.precision_plugin.scale == scale


def test_steps_run_through_the_wrapper_in_every_entry_point(
    plugins: PluginManager, tmp_path: Path
) -> None:
    """Regression: the loops called ``module.training_step`` directly, so a wrapper's
    forward (DDP's gradient hooks) never ran; the fixture raises on any bypass."""
    trainer = make_trainer(plugins, tmp_path, max_epochs=1, strategy="fixture_wrapping")
    model = Regression()
    trainer.fit(model, loader(), loader(32))
    strategy = trainer.strategy
    assert strategy.forward_calls == 4 + 2
    trainer.validate(model, loader(32), verbose=False)
    trainer.test(model, loader(32), verbose=False)
    predictions = trainer.predict(model, loader(32))
    assert len(predictions) == 2
    assert strategy.forward_calls == 4 + 2 + 2 + 2 + 2


def test_gradient_sync_is_skipped_while_accumulating(
    plugins: PluginManager, tmp_path: Path
) -> None:
    depths: list[int] = []

    class Recording(Regression):
        def on_after_backward(self) -> None:
            depths.append(self.trainer.strategy.no_sync_depth)

    trainer = make_trainer(
        plugins, tmp_path, max_epochs=1, strategy="fixture_wrapping", accumulate_grad_batches=2
    )
    trainer.fit(Recording(), loader())
    assert depths == [1, 0, 1, 0]
    assert trainer.global_step == 2


def test_checkpoints_are_written_and_read_by_the_strategy(
    plugins: PluginManager, tmp_path: Path
) -> None:
    trainer = make_trainer(
        plugins, tmp_path, max_epochs=1, strategy="fixture_wrapping", enable_checkpointing=True
    )
    trainer.fit(Regression(), loader())
    saved = trainer.strategy.saved
    assert saved and Path(saved[0]).is_file()
    resumed = make_trainer(plugins, tmp_path, max_epochs=2, strategy="fixture_wrapping")
    resumed.fit(Regression(), loader(), ckpt_path=saved[0])
    assert resumed.strategy.loaded == [saved[0]]
    assert resumed.global_step == 8


def test_a_failing_teardown_never_hides_the_run_error(
    plugins: PluginManager, tmp_path: Path
) -> None:
    """Regression: a strategy's teardown error replaced the error that ended the run."""

    class Broken(Regression):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            raise ValueError("the real error")

    trainer = make_trainer(
        plugins,
        tmp_path,
        max_epochs=1,
        strategy={"name": "fixture_wrapping", "fail_teardown": True},
    )
    with pytest.raises(ValueError, match="the real error") as info:
        trainer.fit(Broken(), loader())
    notes = getattr(info.value, "__notes__", [])
    assert any("WrappingStrategy.teardown raised" in note for note in notes)
    # with no run error, the teardown error itself is raised
    with pytest.raises(RuntimeError, match="fixture strategy teardown failed"):
        trainer.fit(Regression(), loader())


def test_entry_points_run_through_the_strategys_launcher(
    plugins: PluginManager, tmp_path: Path
) -> None:
    trainer = make_trainer(
        plugins, tmp_path, max_epochs=1, strategy={"name": "fixture_wrapping", "use_launcher": True}
    )
    model = Regression()
    trainer.fit(model, loader())
    trainer.validate(model, loader(32), verbose=False)
    assert trainer.strategy.launcher.launches == 2


def test_accelerator_random_state_is_checkpointed(plugins: PluginManager, tmp_path: Path) -> None:
    trainer = make_trainer(plugins, tmp_path, max_epochs=1, accelerator="fixture_accel")
    trainer.fit(Regression(), loader())
    trainer.save_checkpoint(tmp_path / "accel.ckpt")
    expected = torch.rand(3, generator=trainer.accelerator.generator)  # drawn after saving
    assert "fixture_accel" in load_checkpoint_safe(tmp_path / "accel.ckpt")["rng"]
    resumed = make_trainer(
        plugins, tmp_path, max_epochs=2, accelerator="fixture_accel", deterministic=False
    )
    resumed.fit(Regression(), loader(), ckpt_path=tmp_path / "accel.ckpt")
    assert resumed.accelerator.determinism == (False, None)  # applied as the fit started
    assert resumed.accelerator.batches_moved == 4
    assert torch.equal(torch.rand(3, generator=resumed.accelerator.generator), expected)


def test_the_trainer_uses_the_plugin_manager_it_is_given(plugins: PluginManager) -> None:
    """Regression: the Trainer always used the process-global manager."""
    reset_plugin_manager()
    try:
        with pytest.raises(UnknownProviderError, match="fixture_scaling"):
            Trainer(precision="fixture_scaling", enable_progress_bar=False)
    finally:
        reset_plugin_manager()
    trainer = Trainer(precision="fixture_scaling", plugin_manager=plugins, logger=False)
    assert type(trainer.precision_plugin).__name__ == "ScalingPrecision"
