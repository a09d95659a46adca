"""Conformance suites for torch-side plugins, in the manner of pandas' extension tests:
a plugin's test module subclasses a suite, names its provider, and inherits every test.

.. code-block:: python

    from ember.trainer.testing import PrecisionConformance

    class TestMyPrecision(PrecisionConformance):
        precision = "my_precision"          # the provider name users select

Each suite trains a tiny model for one epoch with the plugin selected by name, and checks
that its state survives a checkpoint round trip, plus the contract points of its kind.
:class:`CallbackConformance` does the same for a callback: registration through the hub,
hook names, state through a checkpoint, pickling for spawned processes.
Override the ``plugin_manager`` fixture to test against a manager other than the
process-global one (``ember.hub.testing.isolated_plugin_manager`` builds a fresh one).
:class:`TinyModule` and :func:`tiny_data` are the model and data the suites train; as a
pytest plugin (``pytest_plugins = ["ember.trainer.testing"]``) the module gives any test
them as the ``ember_tiny_module`` and ``ember_tiny_data`` fixtures. Requires pytest (a
test dependency, not one of ember's).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from ember.hub import (
    CallbackSpec,
    Option,
    PluginManager,
    UnknownHookError,
    callback_plugin,
    get_plugin_manager,
)
from ember.hub.testing import missing_fixture
from ember.trainer.callback import Callback, callback_role
from ember.trainer.checkpoint import load_checkpoint_safe
from ember.trainer.module import EmberModule
from ember.trainer.plugins import Accelerator, Precision, Strategy
from ember.trainer.trainer import Trainer
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "AcceleratorConformance",
    "CallbackConformance",
    "PrecisionConformance",
    "StrategyConformance",
    "TinyModule",
    "ember_tiny_data",
    "ember_tiny_module",
    "tiny_data",
]


def tiny_data(n: int = 64, seed: int = 0) -> DataLoader:
    """``n`` samples of a noiseless 4-feature linear regression, in batches of 16."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-1.5], [0.5], [2.0]])
    return DataLoader(TensorDataset(x, y), batch_size=16)


class TinyModule(EmberModule):
    """A linear regression that records what the plugin contract promises it: the steps
    it ran, and the gradients ``on_before_optimizer_step`` saw. Logs ``train_loss`` and
    ``val_loss`` (what a callback may monitor)."""

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
        loss = self.loss(batch)
        self.log("train_loss", loss)
        return loss

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


@pytest.fixture
def ember_tiny_module() -> TinyModule:
    """A fresh :class:`TinyModule` (seeded: every one starts with the same weights)."""
    return TinyModule()


@pytest.fixture
def ember_tiny_data() -> DataLoader:
    """:func:`tiny_data`: 64 samples in 4 batches."""
    return tiny_data()


class _Base:
    """The manager the plugin is found through, and a quiet trainer."""

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

    def _selected(self, attribute: str, what: str) -> Any:
        value = getattr(self, attribute, None)
        if value is None:
            missing_fixture(self, attribute, what)
        return value


class _Suite(_Base):
    """What the provider suites share: training and a checkpoint round trip."""

    def test_trains_one_epoch(self, plugin_manager: PluginManager, tmp_path: Path) -> None:
        """One epoch of training lowers the loss; every batch is a step."""
        data = tiny_data()
        module = TinyModule()
        before = module.loss_on(data)
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        trainer.fit(module, data, tiny_data(32, seed=1))
        assert trainer.global_step == len(data)
        assert module.step_calls == len(data)
        assert module.validation_calls == 2
        assert math.isfinite(module.loss_on(data))
        assert module.loss_on(data) < before

    def test_state_survives_a_checkpoint_round_trip(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """Weights, loop position, optimizer and the providers' own state come back."""
        data = tiny_data()
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        module = TinyModule()
        trainer.fit(module, data)
        path = tmp_path / "round_trip.ckpt"
        trainer.save_checkpoint(path)
        saved = load_checkpoint_safe(path)
        resumed = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        fresh = TinyModule()
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

    accelerator: ClassVar[str | None] = None

    def selection(self) -> dict[str, Any]:
        """``accelerator=<name>``."""
        return {
            "accelerator": self._selected("accelerator", "the name of the accelerator under test")
        }

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
        trainer.fit(TinyModule(), tiny_data())
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

    precision: ClassVar[str | None] = None
    gradient_rtol: ClassVar[float] = 1e-3

    def selection(self) -> dict[str, Any]:
        """``precision=<name>``."""
        return {
            "precision": self._selected("precision", "the name of the precision mode under test")
        }

    def test_is_a_precision_that_knows_the_device(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """The provider builds a ``Precision``; set-up tells it the run's device type."""
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        assert isinstance(trainer.precision_plugin, Precision)
        trainer.fit(TinyModule(), tiny_data())
        assert trainer.precision_plugin.device_type == trainer.strategy.root_device.type

    def test_hooks_and_clipping_see_true_gradients(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """``on_before_optimizer_step`` sees unscaled gradients, equal (to
        ``gradient_rtol``) to a float32 run's, with clipping on."""
        data = tiny_data(16)
        reference = TinyModule()
        Trainer(
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=tmp_path,
            max_epochs=1,
            gradient_clip_val=1e6,
        ).fit(reference, data)
        module = TinyModule()
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

    strategy: ClassVar[str | None] = None

    def selection(self) -> dict[str, Any]:
        """``strategy=<name>``."""
        return {"strategy": self._selected("strategy", "the name of the strategy under test")}

    def test_is_a_strategy_that_keeps_the_module(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """The user's module stays the trainer's module; the model wraps it."""
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        strategy = trainer.strategy
        assert isinstance(strategy, Strategy)
        module = TinyModule()
        trainer.fit(module, tiny_data())
        assert trainer.module is module
        assert strategy.is_global_zero == (strategy.global_rank == 0)
        assert 0 <= strategy.local_rank < max(1, strategy.world_size)

    def test_collectives_in_one_process(
        self, plugin_manager: PluginManager, tmp_path: Path
    ) -> None:
        """After set-up, the collectives answer as one process would."""
        trainer = self.make_trainer(plugin_manager, tmp_path, max_epochs=1)
        trainer.fit(TinyModule(), tiny_data())
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
        module = TinyModule()
        trainer.fit(module, tiny_data())
        assert module.step_calls == len(tiny_data())


def _same_state(a: Any, b: Any) -> bool:
    """Deep equality of two callback states (tensors compared by value, NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        a, b = a.detach().cpu(), b.detach().cpu()
        if a.is_floating_point():
            same_nan = torch.equal(a.isnan(), b.isnan())
            return same_nan and torch.equal(a.nan_to_num(), b.nan_to_num())
        return torch.equal(a, b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


class CallbackConformance(_Base):
    """Set :attr:`callback` to the provider name and :attr:`callback_options` to the
    options a run needs (required ones at least); or, for a callback not registered by
    name, define a ``make_callback`` fixture: a zero-argument callable that builds a fresh
    callback. Each test fits :class:`TinyModule` (which logs ``train_loss`` and
    ``val_loss``) for :attr:`max_epochs` epochs with the callback."""

    callback: ClassVar[str | None] = None
    callback_options: ClassVar[dict[str, Any]] = {}
    max_epochs: ClassVar[int] = 2
    #: whether ``load_state_dict(s)`` then ``state_dict()`` gives ``s`` back on a fresh
    #: callback; False for one that restores only part on purpose (a timer restores the
    #: training time only; a checkpointer waits until it knows its folder)
    state_round_trips_exactly: ClassVar[bool] = True

    def selection(self) -> dict[str, Any]:
        """Nothing: the callback is given to each trainer by the tests."""
        return {}

    @pytest.fixture
    def make_callback(self, plugin_manager: PluginManager) -> Callable[[], Any]:
        """Build the callback by provider name, as ``Trainer(callbacks=[{...}])`` does."""
        name = self._selected(
            "callback",
            "the callback's provider name (or define a make_callback fixture returning a "
            "zero-argument callable that builds the callback)",
        )
        return lambda: plugin_manager.create("callback", {"name": name, **self.callback_options})

    def _trainer(
        self, plugin_manager: PluginManager, root: Path, callback: Any, **flags: Any
    ) -> Trainer:
        checkpointer = callback_role(callback) == "checkpointer"
        return self.make_trainer(
            plugin_manager,
            root,
            callbacks=[callback],
            enable_checkpointing=checkpointer,
            max_epochs=self.max_epochs,
            **flags,
        )

    def test_registered_through_the_hub(
        self, plugin_manager: PluginManager, make_callback: Callable[[], Any]
    ) -> None:
        """The provider record has a description and an options schema, and building it by
        name gives the callback the tests use."""
        if self.callback is None:
            pytest.skip("set callback to the provider name to check its registration")
        spec = plugin_manager.get("callback", self.callback)
        assert isinstance(spec, CallbackSpec)
        assert spec.description, "give the provider a one-line description"
        for key, opt in spec.options.items():
            assert isinstance(opt, Option), f"option {key!r} must be an ember.hub.Option"
        unknown = set(self.callback_options) - set(spec.options)
        assert not unknown or spec.allow_extra_options, f"options not in the schema: {unknown}"
        built = spec.create(**self.callback_options)
        assert type(built) is type(make_callback())

    def test_hook_names_are_hooks(self, make_callback: Callable[[], Any]) -> None:
        """The callback subclasses ``Callback``, every ``on_*`` method is an ember hook
        with a signature that fits it, and it implements at least one."""
        callback = make_callback()
        assert isinstance(callback, Callback), (
            f"{type(callback).__name__} must subclass ember.trainer.Callback"
        )
        try:
            plugin = callback_plugin(callback, Callback)
        except UnknownHookError as exc:
            pytest.fail(str(exc), pytrace=False)
        hooks = [name for name in vars(plugin) if name.startswith("ember_")]
        assert hooks, f"{type(callback).__name__} implements no hook"

    def test_runs_through_fit_and_validate(
        self, plugin_manager: PluginManager, make_callback: Callable[[], Any], tmp_path: Path
    ) -> None:
        """Fit with validation every epoch, then a validation run, with the callback on."""
        callback = make_callback()
        module = TinyModule()
        trainer = self._trainer(plugin_manager, tmp_path, callback)
        trainer.fit(module, tiny_data(), tiny_data(32, seed=1))
        assert trainer.global_step > 0
        assert module.step_calls > 0
        trainer.validate(module, tiny_data(32, seed=1))

    def test_state_round_trips_through_a_checkpoint(
        self, plugin_manager: PluginManager, make_callback: Callable[[], Any], tmp_path: Path
    ) -> None:
        """``state_dict()`` is saved in the checkpoint under ``state_key`` (loadable with
        ``weights_only=True``), the trainer gives it back to a fresh callback on resume, and
        (unless :attr:`state_round_trips_exactly` is False) ``load_state_dict`` then
        ``state_dict`` returns it unchanged."""
        callback = make_callback()
        trainer = self._trainer(plugin_manager, tmp_path / "first", callback)
        trainer.fit(TinyModule(), tiny_data(), tiny_data(32, seed=1))
        state = callback.state_dict()
        assert isinstance(state, dict), "state_dict() must return a dict"
        path = tmp_path / "round_trip.ckpt"
        trainer.save_checkpoint(path)
        saved = load_checkpoint_safe(path).get("callbacks", {})
        key = callback.state_key
        if not state:
            assert key not in saved
            return
        assert key in saved, f"the checkpoint holds no state under {key!r}: {sorted(saved)}"
        assert _same_state(saved[key], state)

        fresh = make_callback()
        assert fresh.state_key == key, "two callbacks made alike must share a state_key"
        received: list[dict[str, Any]] = []
        original = fresh.load_state_dict

        def record(state_dict: dict[str, Any]) -> None:
            received.append(state_dict)
            original(state_dict)

        fresh.load_state_dict = record  # type: ignore[method-assign]
        resumed = self._trainer(plugin_manager, tmp_path / "resumed", fresh)
        resumed.fit(TinyModule(), tiny_data(), tiny_data(32, seed=1), ckpt_path=path)
        assert received and _same_state(received[0], state), "the resume did not restore it"

        if self.state_round_trips_exactly:
            reloaded = make_callback()
            reloaded.load_state_dict(saved[key])
            assert _same_state(reloaded.state_dict(), state), (
                "load_state_dict(state) then state_dict() changed the state; set "
                "state_round_trips_exactly = False if it restores only part on purpose"
            )

    def test_picklable_for_spawned_processes(self, make_callback: Callable[[], Any]) -> None:
        """A fresh callback survives ``pickle`` (a spawned process gets a copy this way)
        with its class, state key and state."""
        callback = make_callback()
        try:
            clone = pickle.loads(pickle.dumps(callback))
        except Exception as exc:
            pytest.fail(
                f"{type(callback).__name__} cannot be pickled ({type(exc).__name__}: {exc}): "
                "define it at module level and keep no open files, locks or lambdas in "
                "__init__",
                pytrace=False,
            )
        assert type(clone) is type(callback)
        assert clone.state_key == callback.state_key
        assert _same_state(clone.state_dict(), callback.state_dict())
        callback_plugin(clone, Callback)
