"""ember.hub: the plugin system.

Hook specifications, typed provider records, discovery through the ``ember`` entry point
group, and the lifecycle facade the trainer fires events through. Importing this package
imports neither torch nor ``ember.trainer`` nor any tracker SDK.
"""

from __future__ import annotations

from ember.hub.errors import (
    DuplicateProviderError,
    EmberPluginError,
    OptionsError,
    PluginLoadError,
    UnknownHookError,
    UnknownProviderError,
)
from ember.hub.hookspecs import hookimpl, hookspec
from ember.hub.lifecycle import CALLBACK_HOOKS, Lifecycle, callback_plugin, hook_signature
from ember.hub.manager import (
    PluginInfo,
    PluginManager,
    get_plugin_manager,
    reset_plugin_manager,
)
from ember.hub.records import (
    AcceleratorSpec,
    CallbackSpec,
    LoggerSpec,
    Option,
    PrecisionSpec,
    ProviderSpec,
    StrategySpec,
)
from ember.hub.tracking.logger import Logger

__version__ = "0.1.0"

__all__ = [
    "CALLBACK_HOOKS",
    "AcceleratorSpec",
    "CallbackSpec",
    "DuplicateProviderError",
    "EmberPluginError",
    "Lifecycle",
    "Logger",
    "LoggerSpec",
    "Option",
    "OptionsError",
    "PluginInfo",
    "PluginLoadError",
    "PluginManager",
    "PrecisionSpec",
    "ProviderSpec",
    "StrategySpec",
    "UnknownHookError",
    "UnknownProviderError",
    "__version__",
    "callback_plugin",
    "get_plugin_manager",
    "hook_signature",
    "hookimpl",
    "hookspec",
    "reset_plugin_manager",
]
