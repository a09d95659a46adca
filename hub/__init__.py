"""ember.hub: the plugin system.

Hook specifications, typed provider records, discovery through the ``ember`` entry point
group, and the lifecycle facade the trainer fires events through. Importing this package
imports neither torch nor ``ember.trainer`` nor any tracker SDK.
"""

from __future__ import annotations

from ember.hub.compat import Compatibility
from ember.hub.errors import (
    DuplicateProviderError,
    EmberPluginError,
    IncompatiblePluginWarning,
    OptionsError,
    PluginLoadError,
    PluginSettingsError,
    PluginWarning,
    UnknownHookError,
    UnknownProviderError,
    did_you_mean,
)
from ember.hub.hookspecs import hookimpl, hookspec
from ember.hub.lifecycle import CALLBACK_HOOKS, Lifecycle, callback_plugin, hook_signature
from ember.hub.manager import (
    LIFECYCLE_HOOKS,
    PluginInfo,
    PluginManager,
    get_plugin_manager,
    reset_plugin_manager,
)
from ember.hub.records import (
    PROVIDER_HOOKS,
    AcceleratorSpec,
    CallbackSpec,
    LoggerSpec,
    Option,
    OptionsSchema,
    PrecisionSpec,
    ProviderSpec,
    StrategySpec,
    normalize_name,
)
from ember.hub.tracking.logger import Logger
from ember.hub.views import ModuleView, TrainerView

__version__ = "0.1.0"

__all__ = [
    "CALLBACK_HOOKS",
    "LIFECYCLE_HOOKS",
    "PROVIDER_HOOKS",
    "AcceleratorSpec",
    "CallbackSpec",
    "Compatibility",
    "DuplicateProviderError",
    "EmberPluginError",
    "IncompatiblePluginWarning",
    "Lifecycle",
    "Logger",
    "LoggerSpec",
    "ModuleView",
    "Option",
    "OptionsError",
    "OptionsSchema",
    "PluginInfo",
    "PluginLoadError",
    "PluginManager",
    "PluginSettingsError",
    "PluginWarning",
    "PrecisionSpec",
    "ProviderSpec",
    "StrategySpec",
    "TrainerView",
    "UnknownHookError",
    "UnknownProviderError",
    "__version__",
    "callback_plugin",
    "did_you_mean",
    "get_plugin_manager",
    "hook_signature",
    "hookimpl",
    "hookspec",
    "normalize_name",
    "reset_plugin_manager",
]
