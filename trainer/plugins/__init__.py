"""The public contract for torch-side plugins: accelerators, precision modes and
strategies are written against this module, and ember's built-ins use nothing else.

A plugin subclasses :class:`Accelerator`, :class:`Precision` or :class:`Strategy` and
registers it with an ``AcceleratorSpec``/``PrecisionSpec``/``StrategySpec`` from
``ember.hub``; users then select it by name (``Trainer(strategy="my_strategy")``). See
``docs/writing-torch-plugins.md``; :mod:`ember.trainer.testing` holds the conformance
suites a plugin's tests inherit.
"""

from __future__ import annotations

from ember.trainer.errors import MisconfigurationError
from ember.trainer.plugins.accelerator import (
    Accelerator,
    parse_device_count,
    parse_device_indices,
)
from ember.trainer.plugins.precision import Precision, needs_closure
from ember.trainer.plugins.strategy import STEP_METHODS, Launcher, StepForward, Strategy
from ember.trainer.plugins.tensors import cast_floating, detach_tensors, map_batch, move_to_device

__all__ = [
    "STEP_METHODS",
    "Accelerator",
    "Launcher",
    "MisconfigurationError",
    "Precision",
    "StepForward",
    "Strategy",
    "cast_floating",
    "detach_tensors",
    "map_batch",
    "move_to_device",
    "needs_closure",
    "parse_device_count",
    "parse_device_indices",
]
