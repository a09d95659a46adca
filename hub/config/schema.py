"""Typed models of a run file's parts, built with pydantic from what is installed: provider
option schemas (:class:`~ember.hub.records.Option`), the Trainer's signature, and the
signatures of the model and data classes a run file names.

pydantic does the checking (strict types, unknown and missing keys, choices); this module
turns its errors into :class:`ConfigIssue` lines that name the dotted location, what was
expected and the closest valid name. It is imported only when a configuration is
validated, so ``import ember.hub`` and ``ember plugins`` never load pydantic.
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

from ember.hub.config.errors import ConfigIssue
from ember.hub.errors import closest, did_you_mean
from ember.hub.records import Option, ProviderSpec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

_OPTION_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "path": str,
    "list": list[Any],
    "dict": dict[str, Any],
    "any": Any,
}

#: a type the run file cannot express (a class instance, a timedelta): left out of unions
_DROP = object()


# ---------------------------------------------------------------------- describing types
def describe(tp: Any) -> str:
    """A type as a run-file author reads it: ``an integer or a number``."""
    if tp is Any or tp is object:
        return "any value"
    if tp is type(None):
        return "nothing"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if float in members and int in members:  # a number is an integer or a float
            members.remove(int)
        return " or ".join(dict.fromkeys(describe(a) for a in members)) or "nothing"
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        inner = plural.get(args[0]) if args else None
        return f"a list of {inner}" if inner else "a list"
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        return "a table"
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
    }
    if tp in names:
        return names[tp]
    return f"a {getattr(tp, '__name__', str(tp))}"


def value_text(value: Any) -> str:
    """``str 'ten'`` for an error message (long values shortened)."""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), "table" if isinstance(value, dict) else type(value).__name__
    )
    return f"{kind} {shown}"


def config_type(tp: Any) -> Any:
    """The part of a Python annotation that a run file can express: ``os.PathLike`` is a
    string, a ``Mapping`` a table, an ``Iterable`` a list; classes such as ``timedelta``
    or ``Accelerator`` are dropped (they are for Python callers)."""
    if tp is Any or tp in (bool, int, float, str, type(None)):
        return tp
    origin = typing.get_origin(tp)
    if origin is Literal:
        return tp
    if origin in (Union, types.UnionType):
        members = [config_type(a) for a in typing.get_args(tp)]
        kept = list(dict.fromkeys(m for m in members if m is not _DROP))
        if not kept:
            return _DROP
        return kept[0] if len(kept) == 1 else Union[tuple(kept)]  # noqa: UP007
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = config_type(args[0]) if args else Any
        return list[Any] if inner is _DROP else list[inner]
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        args = typing.get_args(tp)
        inner = config_type(args[1]) if len(args) == 2 else Any
        return dict[str, Any] if inner is _DROP else dict[str, inner]
    if tp is os.PathLike or origin is os.PathLike:
        return str
    return _DROP


def string_only(tp: Any) -> bool:
    """Whether ``tp`` accepts strings and no other scalar (so ``--set`` keeps the text)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        return bool(members) and all(string_only(a) for a in members)
    if origin is Literal:
        return all(isinstance(a, str) for a in typing.get_args(tp))
    return tp is str


# ---------------------------------------------------------------------- models
class Fields:
    """One flat table's schema: each key's annotation, default and description, and the
    pydantic model that checks a table against them (keys as aliases, so any option name,
    even ``json`` or ``model_type``, is a valid key)."""

    def __init__(
        self,
        name: str,
        fields: Mapping[str, tuple[Any, Any, str]],
        *,
        extra: bool = False,
        secret: typing.Iterable[str] = (),
        arbitrary_types: bool = False,
    ) -> None:
        self.name = name
        self.annotations = {k: ann for k, (ann, _, _) in fields.items()}
        self.defaults = {k: d for k, (_, d, _) in fields.items()}
        self.descriptions = {k: doc for k, (_, _, doc) in fields.items() if doc}
        self.extra = extra
        secret = set(secret)
        definitions: dict[str, Any] = {}
        for i, (key, (ann, default, description)) in enumerate(fields.items()):
            extra_schema = {"secret": True} if key in secret else None
            definitions[f"f{i}"] = (
                ann,
                Field(
                    default,
                    alias=key,
                    description=description or None,
                    json_schema_extra=extra_schema,
                ),
            )
        config = ConfigDict(
            extra="allow" if extra else "forbid",
            strict=True,
            arbitrary_types_allowed=arbitrary_types,
            protected_namespaces=(),
            title=name,
        )
        self.model: type[BaseModel] = create_model(name, __config__=config, **definitions)

    def check(self, values: Mapping[str, Any], location: str) -> list[ConfigIssue]:
        """Every problem of ``values`` (one per key), located under ``location``."""
        try:
            self.model.model_validate(dict(values))
        except ValidationError as exc:
            return self.issues(exc, values, location)
        return []

    def issues(
        self, exc: ValidationError, values: Mapping[str, Any], location: str
    ) -> list[ConfigIssue]:
        """pydantic's errors as one :class:`ConfigIssue` per key, in the file's order."""
        by_key: dict[str, list[dict[str, Any]]] = {}
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            by_key.setdefault(key, []).append(dict(err))
        found: list[ConfigIssue] = []
        order = {k: i for i, k in enumerate(values)}
        for key, errs in sorted(by_key.items(), key=lambda kv: order.get(kv[0], len(order))):
            where = f"{location}.{key}" if location else key
            kinds = {e["type"] for e in errs}
            if "extra_forbidden" in kinds:
                hint = closest(key, self.annotations)
                message = f"unknown key {key!r}"
                if hint:
                    message += f"; did you mean {hint!r}?"
                else:
                    message += f". Valid keys: {', '.join(self.annotations) or 'none'}"
            elif "missing" in kinds:
                message = f"required key {key!r} is missing ({describe(self.annotations[key])}"
                doc = self.descriptions.get(key)
                message += f": {doc})" if doc else ")"
            else:
                ann = self.annotations.get(key, Any)
                value = values.get(key)
                message = f"expected {describe(ann)}, got {value_text(value)}"
                if typing.get_origin(_without_none(ann)) is Literal and isinstance(value, str):
                    choices = [a for a in typing.get_args(_without_none(ann)) if isinstance(a, str)]
                    message += did_you_mean(value, choices)
            found.append(ConfigIssue(where, message))
        return found

    def json_schema(self) -> dict[str, Any]:
        """The table's JSON Schema (keys by their real names)."""
        schema = self.model.model_json_schema(by_alias=True)
        schema.pop("title", None)
        return schema


def optional(tp: Any) -> Any:
    """``tp`` or ``None``."""
    return tp if tp is Any else Union[tp, None]  # noqa: UP007


def _without_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return tp


def option_annotation(option: Option) -> Any:
    """The type a provider option accepts (``None`` too unless it is required)."""
    tp: Any = (
        Literal[tuple(option.choices)]  # type: ignore[valid-type]
        if option.choices
        else _OPTION_TYPES[option.type]
    )
    return tp if option.required else optional(tp)


#: built models by record (the record is kept too, so its id is never reused meanwhile)
_provider_cache: dict[int, tuple[ProviderSpec, Fields]] = {}


def provider_fields(spec: ProviderSpec) -> Fields:
    """The options table of a provider, from its record's schema."""
    cached = _provider_cache.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    fields = {
        k: (option_annotation(o), ... if o.required else o.default, o.description)
        for k, o in spec.options.items()
    }
    built = Fields(
        f"{spec.kind}:{spec.name}",
        fields,
        extra=spec.allow_extra_options,
        secret=spec.secret_options(),
    )
    _provider_cache[id(spec)] = (spec, built)
    return built


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """``func``'s resolved annotations. One that does not resolve at run time (a name
    imported for type checkers only) is left out on its own: that parameter is checked
    by name, every other one still by type."""
    try:
        return typing.get_type_hints(func)
    except Exception:
        pass
    globalns = getattr(func, "__globals__", {})
    hints: dict[str, Any] = {}
    for pname, ann in getattr(func, "__annotations__", {}).items():

        def one() -> None: ...

        one.__annotations__ = {pname: ann}
        try:
            hints.update(typing.get_type_hints(one, globalns=globalns))
        except Exception:
            continue
    return hints


def signature_fields(
    name: str,
    func: Callable[..., Any],
    *,
    convert: bool,
    skip: typing.Iterable[str] = (),
) -> Fields:
    """The keyword parameters of ``func`` as a table schema. With ``convert``, annotations
    are narrowed to what a run file can express (:func:`config_type`); otherwise they are
    kept, and values must be instances of them (a class's ``init_args``)."""
    signature = inspect.signature(func)
    hints = _type_hints(func.__init__ if isinstance(func, type) else func)
    skip = set(skip)
    fields: dict[str, tuple[Any, Any, str]] = {}
    extra = False
    for pname, param in signature.parameters.items():
        if pname in ("self", "cls") or pname in skip:
            continue
        if param.kind is param.VAR_KEYWORD:
            extra = True
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            continue
        ann = hints.get(pname, Any)
        if convert:
            ann = config_type(ann)
            if ann is _DROP:
                continue
        default = ... if param.default is param.empty else param.default
        if default is None:
            ann = optional(ann)
        fields[pname] = (ann, default, "")
    try:
        return Fields(name, fields, extra=extra, arbitrary_types=not convert)
    except Exception:  # pydantic cannot build a check for some annotation: names only
        loose = {k: (Any, d, doc) for k, (_, d, doc) in fields.items()}
        return Fields(name, loose, extra=extra)
