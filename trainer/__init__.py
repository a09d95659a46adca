"""ember.trainer: the training engine.

``from ember.trainer import Trainer, EmberModule, EmberDataModule, Callback``. Names are
resolved on first access (PEP 562), so importing ``ember.trainer.builtins`` (done when
plugins are discovered) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember.trainer.callback import Callback
    from ember.trainer.datamodule import EmberDataModule
    from ember.trainer.errors import MisconfigurationError, NonFiniteLossError
    from ember.trainer.module import EmberModule
    from ember.trainer.optim import LRSchedulerConfig
    from ember.trainer.trainer import Trainer
    from ember.trainer.utilities import seed_everything

_EXPORTS: dict[str, str] = {
    "Callback": "ember.trainer.callback",
    "EmberDataModule": "ember.trainer.datamodule",
    "EmberModule": "ember.trainer.module",
    "LRSchedulerConfig": "ember.trainer.optim",
    "MisconfigurationError": "ember.trainer.errors",
    "NonFiniteLossError": "ember.trainer.errors",
    "Trainer": "ember.trainer.trainer",
    "seed_everything": "ember.trainer.utilities",
}

__all__ = [
    "Callback",
    "EmberDataModule",
    "EmberModule",
    "LRSchedulerConfig",
    "MisconfigurationError",
    "NonFiniteLossError",
    "Trainer",
    "seed_everything",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
