"""Errors raised by the plugin hub. Each message says what was wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to ``word``, or ``None`` when nothing is close."""
    found = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"``, or ``"."`` when nothing is close: the end of every
    "unknown name" message in ember."""
    hint = closest(word, candidates)
    return f"; did you mean {hint!r}?" if hint else "."
