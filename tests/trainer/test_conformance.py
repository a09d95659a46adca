"""The built-in providers and the third-party fixture's pass the conformance suites of
``ember.trainer.testing``, selected by name."""

from __future__ import annotations

import pytest
import torch
from ember.hub import PluginManager
from ember.trainer.testing import (
    AcceleratorConformance,
    PrecisionConformance,
    StrategyConformance,
)


class TestCPUAccelerator(AcceleratorConformance):
    accelerator = "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
class TestCUDAAccelerator(AcceleratorConformance):
    accelerator = "cuda"


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS device here")
class TestMPSAccelerator(AcceleratorConformance):
    accelerator = "mps"


class TestFloat32Precision(PrecisionConformance):
    precision = "32-true"


class TestFloat64Precision(PrecisionConformance):
    precision = "64-true"


class TestSingleDeviceStrategy(StrategyConformance):
    strategy = "single_device"


class FixturePlugins:
    """Resolve names through the manager that found the installed fixture distribution."""

    @pytest.fixture
    def plugin_manager(self, torch_plugins: PluginManager) -> PluginManager:
        return torch_plugins


class TestFixtureAccelerator(FixturePlugins, AcceleratorConformance):
    accelerator = "fixture_accel"


class TestFixtureScalingPrecision(FixturePlugins, PrecisionConformance):
    precision = "fixture_scaling"


class TestFixtureWrappingStrategy(FixturePlugins, StrategyConformance):
    strategy = "fixture_wrapping"
