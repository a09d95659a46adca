"""Typed registration records: one small frozen dataclass per named thing a plugin provides.

A provider hook (``ember_loggers()``, ``ember_accelerators()``, ...) returns or yields
these. They hold no heavy objects: the factory is an import string or a callable that
imports on call, so discovering plugins never imports torch or a tracker SDK.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ember.hub.errors import OptionsError

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "path": (str, os.PathLike),
    "list": (list, tuple),
    "dict": (dict,),
    "any": (object,),
}


def normalize_name(name: str) -> str:
    """Return the lookup key of a provider name: lower case, ``-`` and spaces as ``_``.

    Two spellings with one key are the same name: ``"32-true"``, ``"32_true"`` and
    ``"32 TRUE"`` all find the provider whose canonical name is ``"32-true"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"a provider name must be a string, got {type(name).__name__}")
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def validate_name(name: str) -> str:
    """Check that ``name`` is a valid provider name; return its canonical spelling.

    The canonical spelling is the name as its record writes it, in lower case (``"32-true"``
    stays ``"32-true"``); it is what listings and error messages show.
    """
    if not isinstance(name, str):
        raise TypeError(f"a provider name must be a string, got {type(name).__name__}")
    canonical = name.strip().lower()
    if not _NAME_RE.match(canonical):
        raise ValueError(
            f"invalid provider name {name!r}: use lower-case letters, digits, '_' and '-', "
            "starting with a letter or digit, e.g. 'my_logger' or '32-true'"
        )
    return canonical


def _freeze(value: Any) -> Any:
    """A hashable stand-in for ``value`` (lists and dicts become tuples), for hashing only."""
    if isinstance(value, Mapping):
        return tuple(sorted(((k, _freeze(v)) for k, v in value.items()), key=repr))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


class OptionsSchema(Mapping[str, "Option"]):
    """A provider's options schema: a read-only, hashable mapping of option name to
    :class:`Option`, so that a record holding one stays hashable."""

    __slots__ = ("_items",)

    def __init__(self, options: Mapping[str, Option] | None = None) -> None:
        items = dict(options or {})
        for key, opt in items.items():
            if not isinstance(key, str) or not isinstance(opt, Option):
                raise TypeError(
                    f"options must map option names to Option(...), got {key!r}: {opt!r}"
                )
        self._items = items

    def __getitem__(self, key: str) -> Option:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"OptionsSchema({self._items!r})"


@dataclass(frozen=True)
class Option:
    """One entry of a provider's options schema.

    ``type`` is one of ``str``, ``int``, ``float``, ``bool``, ``path``, ``list``, ``dict``,
    ``any``. A ``secret`` option (an API key, a token) is never written to a journal, a
    tracker's hyperparameters or a printed configuration. ``env`` names the environment
    variable the option is read from when it is not given (an API key's usual home);
    ``ember doctor`` reports whether it is set, never its value.
    """

    #: the value's type: ``str``, ``int``, ``float``, ``bool``, ``path``, ``list``,
    #: ``dict`` or ``any``
    type: str = "any"
    #: the value the provider receives when the option is not given (None: not passed)
    default: Any = None
    #: one line for users: shown by ``ember config schema`` and in error messages
    description: str = ""
    #: the option must be given (or read from :attr:`env`); a missing one is an error
    required: bool = False
    #: never written to a journal, a tracker's hyperparameters or a printed configuration
    secret: bool = False
    #: the only values accepted, when given
    choices: tuple[Any, ...] | None = None
    #: the environment variable the option is read from when it is not given
    env: str | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"unknown option type {self.type!r}; use one of {sorted(_TYPES)}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    def __hash__(self) -> int:
        # a default may be a list or a dict; hash a frozen copy so records stay hashable
        frozen = (_freeze(self.default), _freeze(self.choices))
        return hash((self.type, self.description, self.required, self.secret, self.env, *frozen))

    def from_env(self, key: str, environ: Mapping[str, str] | None = None) -> Any:
        """The value of :attr:`env` converted to this option's type, or ``None`` when the
        variable is not set (or ``env`` not declared)."""
        raw = (os.environ if environ is None else environ).get(self.env or "", "")
        if not self.env or not raw.strip():
            return None
        try:
            if self.type == "int":
                return int(raw)
            if self.type == "float":
                return float(raw)
            if self.type == "bool":
                return {"1": True, "true": True, "yes": True, "on": True}.get(raw.lower(), False)
        except ValueError:
            raise OptionsError(
                f"environment variable {self.env}={raw!r} (option {key!r}) must be {self.type}"
            ) from None
        return raw

    def check(self, provider: str, key: str, value: Any) -> None:
        """Raise :class:`OptionsError` when ``value`` does not fit this option."""
        if value is None and not self.required:
            return
        is_bool_for_number = self.type in ("int", "float") and isinstance(value, bool)
        wrong_path = (
            self.type == "path"
            and isinstance(value, os.PathLike)
            and not isinstance(os.fspath(value), str)
        )
        if is_bool_for_number or wrong_path or not isinstance(value, _TYPES[self.type]):
            shown = "<secret>" if self.secret else repr(value)
            expected = "str or os.PathLike" if self.type == "path" else self.type
            raise OptionsError(
                f"option {key!r} of {provider!r} must be {expected}, "
                f"got {type(value).__name__} {shown}"
            )
        if self.choices is not None and value not in self.choices:
            shown = "<secret>" if self.secret else repr(value)
            raise OptionsError(
                f"option {key!r} of {provider!r} must be one of "
                f"{', '.join(map(repr, self.choices))}; got {shown}"
            )

    def coerce(self, value: Any) -> Any:
        """The value handed to the provider: a ``path`` option's ``os.PathLike`` becomes
        ``str``, so that providers and the journal see one type."""
        if self.type == "path" and isinstance(value, os.PathLike):
            return os.fspath(value)
        return value


def _closest(word: str, candidates: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


@dataclass(frozen=True)
class ProviderSpec:
    """The common shape of every provider record.

    ``name`` is the provider's one canonical name (listings and errors show it); a lookup
    matches it and every alias whatever the case and whether ``-`` or ``_`` is used.
    ``factory`` builds the provider: an import string ``"package.module:attr"`` or a
    callable. It is resolved only when the provider is built. ``options`` is the options
    schema, checked before anything is built (held as a read-only :class:`OptionsSchema`,
    so records are hashable). ``distribution`` and ``version`` are filled in by the plugin
    manager from the entry point that registered the record.
    """

    #: the kind of provider the record registers: a key of :data:`PROVIDER_HOOKS`
    kind: ClassVar[str] = "provider"

    #: the canonical name users select the provider by (lower case, ``-`` and ``_`` alike)
    name: str
    #: an import string ``"package.module:attr"`` or a callable that builds the provider
    factory: str | Callable[..., Any]
    #: one line shown by ``ember plugins`` and ``ember config schema``
    description: str = ""
    #: other names that select the same provider
    aliases: tuple[str, ...] = ()
    #: the options schema: option name to :class:`Option`, checked before anything is built
    options: Mapping[str, Option] = field(default_factory=dict)
    #: pass options the schema does not name on to the factory instead of refusing them
    allow_extra_options: bool = False
    #: the distribution that registered the record (filled in by the plugin manager)
    distribution: str | None = None
    #: that distribution's version (filled in by the plugin manager)
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
        if "name" in self.options:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: an option cannot be called 'name', "
                "because 'name' selects the provider in {'name': ...} mappings and run-file "
                "tables; call it after what it names (run_name, experiment_name, ...)"
            )
        object.__setattr__(self, "options", OptionsSchema(self.options))

    @property
    def names(self) -> tuple[str, ...]:
        """The name and every alias, as spelled in the record."""
        return (self.name, *self.aliases)

    @property
    def keys(self) -> tuple[str, ...]:
        """The lookup key of the name and of every alias (see :func:`normalize_name`)."""
        return tuple(dict.fromkeys(normalize_name(n) for n in self.names))

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
        from_env = self.env_options()
        for key, opt in self.options.items():
            if key in options:
                opt.check(self.name, key, options[key])
                resolved[key] = opt.coerce(options[key])
            elif key in from_env:
                resolved[key] = opt.coerce(from_env[key])
            elif opt.required:
                raise OptionsError(
                    f"{self.kind} {self.name!r} needs option {key!r}"
                    + (f" ({opt.description})" if opt.description else "")
                    + (f"; or set the environment variable {opt.env}" if opt.env else "")
                )
            elif opt.default is not None:
                resolved[key] = opt.default
        for key in unknown:
            resolved[key] = options[key]
        return resolved

    def env_options(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The options whose declared environment variable is set, with their values."""
        found = {k: o.from_env(k, environ) for k, o in self.options.items() if o.env}
        return {k: v for k, v in found.items() if v is not None}

    def secret_options(self) -> frozenset[str]:
        """Names of the options marked secret."""
        return frozenset(k for k, o in self.options.items() if o.secret)

    def create(self, **options: Any) -> Any:
        """Validate ``options`` and build the provider."""
        return self.load()(**self.validate_options(options))


@dataclass(frozen=True)
class LoggerSpec(ProviderSpec):
    """An experiment tracker (``logger=`` in the Trainer)."""

    #: the kind of provider the record registers
    kind: ClassVar[str] = "logger"


@dataclass(frozen=True)
class AcceleratorSpec(ProviderSpec):
    """A device family (``accelerator=``).

    ``auto_priority`` ranks it for ``accelerator="auto"``: the installed accelerators
    above the CPU's 0 are tried from the highest down (their factory asked whether the
    hardware is present), so lower-ranked ones are never imported.
    """

    #: the kind of provider the record registers
    kind: ClassVar[str] = "accelerator"

    #: rank for ``accelerator="auto"``: above 0 it is tried, highest first (CUDA has 10)
    auto_priority: int = 0


@dataclass(frozen=True)
class PrecisionSpec(ProviderSpec):
    """A numeric precision mode (``precision=``)."""

    #: the kind of provider the record registers
    kind: ClassVar[str] = "precision"


@dataclass(frozen=True)
class StrategySpec(ProviderSpec):
    """A way of spreading training over devices and processes (``strategy=``)."""

    #: the kind of provider the record registers
    kind: ClassVar[str] = "strategy"


@dataclass(frozen=True)
class CallbackSpec(ProviderSpec):
    """A callback selectable by name (``callbacks=["early_stopping", ...]``)."""

    #: the kind of provider the record registers
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
