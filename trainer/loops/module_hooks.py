"""Which of the module's hooks to call: decided once per run, so the loops test
``is not None`` instead of calling no-op methods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ember.trainer.module import MODULE_HOOKS, EmberModule, overrides
from torch import Tensor, nn


class ModuleHooks:
    """One attribute per hook in ``MODULE_HOOKS``: the bound method if the module
    overrides it, else ``None``."""

    def __init__(self, module: EmberModule) -> None:
        for name in MODULE_HOOKS:
            setattr(
                self, name, getattr(module, name) if overrides(module, name, EmberModule) else None
            )


def detached(value: Any) -> Any:
    """``value`` with every tensor in it detached (step outputs kept for ``*_epoch_end``)."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, Mapping):
        return {k: detached(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(detached(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(detached(v) for v in value)
    return value


class TrainingModes:
    """The ``training`` flag of every submodule, to put back after evaluation (a frozen
    backbone in eval mode stays in eval mode)."""

    def __init__(self, module: nn.Module) -> None:
        self._modes = [(m, m.training) for m in module.modules()]

    def restore(self) -> None:
        """Give every submodule its saved flag back."""
        for m, mode in self._modes:
            m.training = mode
