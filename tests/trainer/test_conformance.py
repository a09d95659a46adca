"""The built-in providers and the third-party fixture's pass the conformance suites of
``ember.trainer.testing``, selected by name."""

from __future__ import annotations

import pytest
from ember.hub import PluginManager
from ember.trainer.testing import (
    AcceleratorConformance,
    PrecisionConformance,
    StrategyConformance,
)


class TestCPUAccelerator(AcceleratorConformance):
    accelerator = "cpu"


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
