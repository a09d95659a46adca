"""Typed registration records: one small frozen dataclass per named thing a plugin provides.

A provider hook (``ember_loggers()``, ``ember_accelerators()``, ...) returns or yields
these. They hold no heavy objects: the factory is an import string or a callable that
imports on call, so discovering plugins never imports torch or a tracker SDK.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ember.hub.errors import OptionsError

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "path": (str,),
    "list": (list, tuple),
    "dict": (dict,),
    "any": (object,),
}


def normalize_name(name: str) -> str:
    """Return the canonical form of a provider name: lower case, ``-`` and spaces as ``_``."""
    if not isinstance(name, str):
        raise TypeError(f"a provider name must be a string, got {type(name).__name__}")
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def validate_name(name: str) -> str:
    """Normalise ``name`` and check that it is a valid provider name."""
    norm = normalize_name(name)
    if not _NAME_RE.match(norm):
        raise ValueError(
            f"invalid provider name {name!r}: use letters, digits and '_' "
            "(or '-'), e.g. 'my_logger'"
        )
    return norm


@dataclass(frozen=True)
class Option:
    """One entry of a provider's options schema.

    ``type`` is one of ``str``, ``int``, ``float``, ``bool``, ``path``, ``list``, ``dict``,
    ``any``. A ``secret`` option (an API key, a token) is never written to a journal, a
    tracker's hyperparameters or a printed configuration.
    """

    type: str = "any"
    default: Any = None
    description: str = ""
    required: bool = False
    secret: bool = False
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"unknown option type {self.type!r}; use one of {sorted(_TYPES)}")

    def check(self, provider: str, key: str, value: Any) -> None:
        """Raise :class:`OptionsError` when ``value`` does not fit this option."""
        if value is None and not self.required:
            return
        is_bool_for_number = self.type in ("int", "float") and isinstance(value, bool)
        if is_bool_for_number or not isinstance(value, _TYPES[self.type]):
            raise OptionsError(
                f"option {key!r} of {provider!r} must be {self.type}, "
                f"got {type(value).__name__} {value!r}"
            )
        if self.choices is not None and value not in self.choices:
            raise OptionsError(
                f"option {key!r} of {provider!r} must be one of "
                f"{', '.join(map(repr, self.choices))}; got {value!r}"
            )


def _closest(word: str, candidates: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


@dataclass(frozen=True)
class ProviderSpec:
    """The common shape of every provider record.

    ``factory`` builds the provider: an import string ``"package.module:attr"`` or a
    callable. It is resolved only when the provider is built. ``options`` is the options
    schema, checked before anything is built. ``distribution`` and ``version`` are filled
    in by the plugin manager from the entry point that registered the record.
    """

    kind: ClassVar[str] = "provider"

    name: str
    factory: str | Callable[..., Any]
    description: str = ""
    aliases: tuple[str, ...] = ()
    options: Mapping[str, Option] = field(default_factory=dict)
    allow_extra_options: bool = False
    distribution: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", validate_name(self.name))
        object.__setattr__(self, "aliases", tuple(validate_name(a) for a in self.aliases))
        if not (isinstance(self.factory, str) or callable(self.factory)):
            raise TypeError(
                f"{type(self).__name__} {self.name!r}: factory must be an import string "
                "'module:attr' or a callable"
            )
        if isinstance(self.factory, str) and ":" not in self.factory:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: factory {self.factory!r} must look "
                "like 'package.module:attribute'"
            )
        if "\n" in self.description:
            raise ValueError(f"{type(self).__name__} {self.name!r}: description must be one line")
        object.__setattr__(self, "options", dict(self.options))

    @property
    def names(self) -> tuple[str, ...]:
        """The name and every alias."""
        return (self.name, *self.aliases)

    def with_origin(self, distribution: str | None, version: str | None) -> ProviderSpec:
        """A copy that records which distribution provided it."""
        return replace(self, distribution=distribution, version=version)

    def load(self) -> Callable[..., Any]:
        """Import (if needed) and return the factory."""
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``options`` against the schema; return them with defaults filled in."""
        unknown = [k for k in options if k not in self.options]
        if unknown and not self.allow_extra_options:
            key = unknown[0]
            hint = _closest(key, list(self.options))
            known = ", ".join(sorted(self.options)) or "none"
            msg = f"unknown option {key!r} for {self.kind} {self.name!r}"
            msg += f"; did you mean {hint!r}?" if hint else "."
            raise OptionsError(f"{msg} Known options: {known}")
        resolved: dict[str, Any] = {}
        for key, opt in self.options.items():
            if key in options:
                opt.check(self.name, key, options[key])
                resolved[key] = options[key]
            elif opt.required:
                raise OptionsError(
                    f"{self.kind} {self.name!r} needs option {key!r}"
                    + (f" ({opt.description})" if opt.description else "")
                )
            elif opt.default is not None:
                resolved[key] = opt.default
        for key in unknown:
            resolved[key] = options[key]
        return resolved

    def secret_options(self) -> frozenset[str]:
        """Names of the options marked secret."""
        return frozenset(k for k, o in self.options.items() if o.secret)

    def create(self, **options: Any) -> Any:
        """Validate ``options`` and build the provider."""
        return self.load()(**self.validate_options(options))


@dataclass(frozen=True)
class LoggerSpec(ProviderSpec):
    """An experiment tracker (``logger=`` in the Trainer)."""

    kind: ClassVar[str] = "logger"


@dataclass(frozen=True)
class AcceleratorSpec(ProviderSpec):
    """A device family (``accelerator=``).

    ``auto_priority`` ranks it for ``accelerator="auto"``: the installed accelerators
    above the CPU's 0 are tried from the highest down (their factory asked whether the
    hardware is present), so lower-ranked ones are never imported.
    """

    kind: ClassVar[str] = "accelerator"

    auto_priority: int = 0


@dataclass(frozen=True)
class PrecisionSpec(ProviderSpec):
    """A numeric precision mode (``precision=``)."""

    kind: ClassVar[str] = "precision"


@dataclass(frozen=True)
class StrategySpec(ProviderSpec):
    """A way of spreading training over devices and processes (``strategy=``)."""

    kind: ClassVar[str] = "strategy"


@dataclass(frozen=True)
class CallbackSpec(ProviderSpec):
    """A callback selectable by name (``callbacks=["early_stopping", ...]``)."""

    kind: ClassVar[str] = "callback"


SPEC_TYPES: dict[str, type[ProviderSpec]] = {
    cls.kind: cls
    for cls in (LoggerSpec, AcceleratorSpec, PrecisionSpec, StrategySpec, CallbackSpec)
}
#: the provider hook that yields each kind of record
PROVIDER_HOOKS: dict[str, str] = {
    "logger": "ember_loggers",
    "accelerator": "ember_accelerators",
    "precision": "ember_precisions",
    "strategy": "ember_strategies",
    "callback": "ember_callbacks",
}
