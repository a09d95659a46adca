"""Errors raised by the plugin hub. Each message says what was wrong and how to fix it."""

from __future__ import annotations


class EmberPluginError(Exception):
    """Base class of every plugin-system error."""


class PluginLoadError(EmberPluginError):
    """A plugin's entry point could not be loaded or registered (fatal under strict mode)."""


class DuplicateProviderError(EmberPluginError):
    """Two plugins registered a provider of the same kind under the same name."""


class UnknownProviderError(EmberPluginError, LookupError):
    """No installed plugin provides the requested name."""


class UnknownHookError(EmberPluginError):
    """A plugin or callback implements a hook that does not exist."""


class OptionsError(EmberPluginError, ValueError):
    """Options given to a provider do not match its schema."""


class PluginSettingsError(EmberPluginError, ValueError):
    """An ``EMBER_*`` environment variable (``EMBER_STRICT_PLUGINS``, ``EMBER_OFFLINE`` ...)
    holds a value ember cannot read."""


class PluginWarning(UserWarning):
    """Something about the plugin set-up that is probably not what was meant."""


class IncompatiblePluginWarning(PluginWarning):
    """A plugin's distribution declares ember versions that exclude the installed one; it
    is loaded anyway (``EMBER_STRICT_PLUGINS=1`` skips it instead)."""
