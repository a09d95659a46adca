"""Accelerators, precision modes and strategies come through the hub's registry, by name,
like any plugin's; importing the registrations imports no torch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from ember.hub import (
    AcceleratorSpec,
    PrecisionSpec,
    UnknownProviderError,
    get_plugin_manager,
    hookimpl,
    reset_plugin_manager,
)
from ember.trainer import MisconfigurationError, Trainer
from ember.trainer.accelerators import CPUAccelerator, CUDAAccelerator
from ember.trainer.precision import Float32Precision, Float64Precision, Precision
from ember.trainer.strategies import SingleDeviceStrategy
from trainer_helpers import TinyModel, make_loader


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def test_auto_resolves_to_the_cpu_through_the_registry() -> None:
    trainer = Trainer(enable_progress_bar=False)
    assert type(trainer.accelerator) is CPUAccelerator
    assert type(trainer.strategy) is SingleDeviceStrategy
    assert type(trainer.precision_plugin) is Float32Precision
    assert trainer.strategy.root_device.type == "cpu"
    assert trainer.strategy.accelerator is trainer.accelerator
    assert trainer.strategy.precision is trainer.precision_plugin


@pytest.mark.parametrize(
    ("precision", "expected"),
    [
        ("32-true", Float32Precision),
        ("32", Float32Precision),
        (32, Float32Precision),
        ("64-true", Float64Precision),
        (64, Float64Precision),
        ({"name": "64_true"}, Float64Precision),
    ],
)
def test_precision_names_are_normalised(precision: Any, expected: type) -> None:
    trainer = Trainer(precision=precision, enable_progress_bar=False)
    assert type(trainer.precision_plugin) is expected


def test_explicit_names_and_instances() -> None:
    trainer = Trainer(
        accelerator="cpu",
        strategy="single_device",
        devices=1,
        precision=Float64Precision(),
        enable_progress_bar=False,
    )
    assert type(trainer.precision_plugin) is Float64Precision


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"accelerator": "tpu"},
            "no accelerator named 'tpu'. Did you mean 'cuda'? Installed accelerator providers: "
            "cpu, cuda, mps.",
        ),
        (
            {"strategy": "single_devic"},
            "no strategy named 'single_devic'. Did you mean 'single_device'? Installed strategy "
            "providers: ddp, fsdp, single_device.",
        ),
        (
            {"precision": "17-mixed"},
            "no precision named '17-mixed'. Did you mean '16-mixed'? Installed precision "
            "providers: 16-mixed, 16-true, 32-true, 64-true, bf16-mixed, bf16-true.",
        ),
    ],
)
def test_unknown_names_list_what_is_installed(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(UnknownProviderError) as info:
        Trainer(enable_progress_bar=False, **flags)
    assert str(info.value) == message


def test_a_plugin_precision_is_used_by_name(fresh_plugins: None, make_trainer: Any) -> None:
    steps: list[str] = []

    class CountingPrecision(Precision):
        def optimizer_step(self, optimizer: Any, closure: Any = None) -> Any:
            steps.append("step")
            return super().optimizer_step(optimizer, closure)

    class Plugin:
        @hookimpl
        def ember_precisions(self) -> list[PrecisionSpec]:
            return [PrecisionSpec(name="counting", factory=CountingPrecision)]

    get_plugin_manager().register(Plugin(), name="counting-plugin")
    trainer = make_trainer(max_epochs=1, precision="counting")
    trainer.fit(TinyModel(), make_loader(32, 16))
    assert steps == ["step", "step"]


def test_a_provider_of_the_wrong_type(fresh_plugins: None) -> None:
    class Plugin:
        @hookimpl
        def ember_precisions(self) -> list[PrecisionSpec]:
            return [PrecisionSpec(name="wrong", factory=dict)]

    get_plugin_manager().register(Plugin(), name="wrong-plugin")
    with pytest.raises(Exception, match="built a dict, which is not an ember Precision"):
        Trainer(precision="wrong", enable_progress_bar=False)


def test_builtins_and_the_package_import_no_torch() -> None:
    code = (
        "import sys, ember.trainer, ember.trainer.builtins;"
        "from ember.hub import get_plugin_manager;"
        "get_plugin_manager().providers('precision');"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names_resolve_lazily() -> None:
    code = (
        "import sys; from ember.trainer import Trainer, EmberModule, EmberDataModule, Callback;"
        "print(Trainer.__module__, EmberModule.__module__, EmberDataModule.__module__,"
        " Callback.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [
        "ember.trainer.trainer",
        "ember.trainer.module",
        "ember.trainer.datamodule",
        "ember.trainer.callback",
    ]


@pytest.mark.parametrize("available", [True, False])
def test_auto_prefers_an_available_accelerator_with_priority(
    fresh_plugins: None, available: bool
) -> None:
    class Faster(CPUAccelerator):
        @classmethod
        def is_available(cls) -> bool:
            return available

    class Plugin:
        @hookimpl
        def ember_accelerators(self) -> list[AcceleratorSpec]:
            return [AcceleratorSpec(name="faster", factory=Faster, auto_priority=50)]

    get_plugin_manager().register(Plugin(), name="faster-plugin")
    trainer = Trainer(enable_progress_bar=False)
    expected = Faster if available else CPUAccelerator
    if not available and torch.cuda.is_available():
        expected = CUDAAccelerator
    assert type(trainer.accelerator) is expected


def test_auto_imports_no_accelerator_it_does_not_pick(
    fresh_plugins: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: priority lived on the class, so "auto" imported every accelerator
    plugin (a heavy SDK included) just to read it; now it lives on the record."""
    for name in ("ember_lazy_accel_zero", "ember_lazy_accel_negative"):
        (tmp_path / f"{name}.py").write_text(
            "from ember.trainer.accelerators import CPUAccelerator\n"
            "class Accel(CPUAccelerator):\n    pass\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))

    class Plugin:
        @hookimpl
        def ember_accelerators(self) -> list[AcceleratorSpec]:
            return [
                AcceleratorSpec(name="zero", factory="ember_lazy_accel_zero:Accel"),
                AcceleratorSpec(
                    name="negative", factory="ember_lazy_accel_negative:Accel", auto_priority=-5
                ),
            ]

    get_plugin_manager().register(Plugin(), name="lazy-plugin")
    trainer = Trainer(enable_progress_bar=False)
    assert trainer.accelerator.name in ("cpu", "cuda")
    assert "ember_lazy_accel_zero" not in sys.modules
    assert "ember_lazy_accel_negative" not in sys.modules
    # chosen by name, it is imported then
    assert (
        type(Trainer(accelerator="zero", enable_progress_bar=False).accelerator).__name__ == "Accel"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_what_to_do() -> None:
    with pytest.raises(MisconfigurationError, match="torch sees no CUDA device") as info:
        Trainer(accelerator="cuda", enable_progress_bar=False)
    assert "accelerator='cpu'" in str(info.value)


def test_cuda_is_not_auto_picked_without_a_gpu() -> None:
    assert CUDAAccelerator.is_available() == torch.cuda.is_available()
    trainer = Trainer(enable_progress_bar=False)
    assert trainer.accelerator.name == ("cuda" if torch.cuda.is_available() else "cpu")
