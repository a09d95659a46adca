"""Checking a whole run file in one pass, before anything is built or trained.

Every section is checked and every problem collected: unknown sections and keys, provider
names (through the plugin registry, which also names the package of a known provider that
is not installed), provider options (against the schema each plugin declares), trainer
flags (against the Trainer's signature), class paths (imported) and init arguments
(against the class's signature). The result is a :class:`RunConfig` ready to build, or a
:class:`ConfigError` listing everything that is wrong.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ember.hub.config.errors import ConfigError, ConfigIssue
from ember.hub.config.files import (
    apply_override,
    env_overrides,
    parse_assignment,
    read_run_file,
)
from ember.hub.config.schema import (
    Fields,
    closest,
    did_you_mean,
    provider_fields,
    signature_fields,
    string_only,
    value_text,
)
from ember.hub.errors import EmberPluginError
from ember.hub.manager import (
    CORE_DISTRIBUTION,
    ENTRY_POINT_GROUP,
    FIRST_PARTY,
    PluginManager,
    get_plugin_manager,
)
from ember.hub.records import ProviderSpec, normalize_name
from ember.hub.tracking.secrets import REDACTED, redact_config

#: the sections of a run file, with what each holds
SECTIONS: dict[str, str] = {
    "seed_everything": "an integer seed for Python, NumPy and torch (true: pick one)",
    "plugins": "which plugins load: block = [...] and/or only = [...]",
    "trainer": "Trainer flags",
    "model": "the EmberModule: class_path and init_args",
    "data": "a datamodule (class_path, init_args) or loaders ([data.train], [data.val], ...)",
    "loggers": "[[loggers]] tables: name plus that tracker's options",
    "callbacks": "[[callbacks]] tables: name plus that callback's options",
}
#: Trainer flags that name a provider, with the provider kind
PROVIDER_FLAGS: dict[str, str] = {
    "accelerator": "accelerator",
    "strategy": "strategy",
    "precision": "precision",
}
#: provider flags whose ``"auto"`` the Trainer resolves itself
_AUTO_FLAGS = ("accelerator", "strategy")
#: Trainer arguments a run file gives as sections of their own
_SECTION_FLAGS = {"logger": "loggers", "callbacks": "callbacks"}
LIST_SECTIONS: dict[str, str] = {"loggers": "logger", "callbacks": "callback"}
LOADER_KEYS: tuple[str, ...] = ("train", "val", "test", "predict")
_CLASS_KEYS = ("class_path", "init_args")
_PLUGIN_KEYS = ("block", "only")


@dataclass(frozen=True)
class Engine:
    """What validation needs from the training engine, handed in by the caller so that
    this module imports no torch: the Trainer's ``__init__`` (its flags) and the base
    classes a model and a datamodule must derive from."""

    trainer_init: Callable[..., Any]
    module_base: type | None = None
    datamodule_base: type | None = None
    #: the engine's own check of flag values (a type alone does not make a value right):
    #: the message of the first bad one among the flags given, or None
    flag_problem: Callable[[Mapping[str, Any]], str | None] | None = None

    @classmethod
    def load(cls) -> Engine:
        """The installed ember.trainer (imports torch)."""
        from ember.trainer import EmberDataModule, EmberModule, Trainer
        from ember.trainer.flags import flag_problem

        return cls(Trainer.__init__, EmberModule, EmberDataModule, flag_problem)

    def trainer_fields(self) -> Fields:
        """The Trainer's flags as a table schema, read from its signature (once)."""
        cached = _trainer_cache.get(self.trainer_init)
        if cached is None:
            cached = _trainer_cache[self.trainer_init] = signature_fields(
                "trainer", self.trainer_init, convert=True, skip=tuple(_SECTION_FLAGS)
            )
        return cached


_trainer_cache: dict[Callable[..., Any], Fields] = {}


@dataclass
class ClassRef:
    """A ``class_path`` with its ``init_args``, imported and checked."""

    location: str
    class_path: str
    target: Callable[..., Any]
    init_args: dict[str, Any]

    def build(self) -> Any:
        """Call the class (or function) with the init arguments."""
        return self.target(**self.init_args)

    def as_dict(self) -> dict[str, Any]:
        """As written in a run file."""
        out: dict[str, Any] = {"class_path": self.class_path}
        if self.init_args:
            out["init_args"] = dict(self.init_args)
        return out


@dataclass
class RunConfig:
    """A validated run: everything needed to build the Trainer, the model and the data."""

    trainer: dict[str, Any]
    model: ClassRef
    data: ClassRef | None = None
    loaders: dict[str, ClassRef] = field(default_factory=dict)
    #: ``None``: the Trainer's default loggers; ``[]``: the run journal only
    loggers: list[dict[str, Any]] | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    seed: int | bool | None = None
    block: list[str] = field(default_factory=list)
    source: str | None = None
    #: the configuration with defaults filled in and secrets redacted (``--print-config``)
    printable: dict[str, Any] = field(default_factory=dict)

    def trainer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Trainer(...)``."""
        kwargs = dict(self.trainer)
        if self.loggers is not None:
            kwargs["logger"] = [dict(e) for e in self.loggers]
        if self.callbacks:
            kwargs["callbacks"] = [dict(c) for c in self.callbacks]
        return kwargs


# ---------------------------------------------------------------------- entry points
def load_config(
    path: str | os.PathLike[str],
    overrides: list[str] | tuple[str, ...] = (),
    *,
    engine: Engine | None = None,
    env: Mapping[str, str] | None = None,
) -> RunConfig:
    """Read the run file at ``path``, apply environment overrides then ``--set`` ones
    (``"trainer.max_epochs=3"``), and validate the result."""
    source = str(path)
    engine = engine or Engine.load()
    raw = read_run_file(path)
    raw = apply_overrides(raw, overrides, engine=engine, env=env, source=source)
    try:
        return validate(raw, engine=engine, source=source)
    except ConfigError as exc:
        # a problem with a value that is not in the file says where the value came from;
        # by name only ("--set KEY"), as the value may be a secret
        origins = {
            key: origin.partition("=")[0] for key, _, origin in _assignments(overrides, env, [])
        }
        raise ConfigError(
            [_with_origins(issue, origins) for issue in exc.issues], source=exc.source
        ) from None


def apply_overrides(
    raw: dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    *,
    engine: Engine,
    env: Mapping[str, str] | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """``raw`` with environment then command-line overrides applied; each value typed as
    TOML reads it, except where the schema wants a string (then kept as text)."""
    try:
        pm = plugin_manager_for(raw.get("plugins"), [])
    except EmberPluginError as exc:  # strict mode and a broken plugin
        raise ConfigError([ConfigIssue("plugins", str(exc))], source=source) from None
    wants_text = _string_locations(raw, pm, engine)
    issues: list[ConfigIssue] = []
    for key, value, origin in _assignments(overrides, env, issues):
        try:
            apply_override(raw, key, value, wants_text, origin)
        except ConfigError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ConfigError(issues, source=source)
    return raw


def _assignments(
    overrides: list[str] | tuple[str, ...],
    env: Mapping[str, str] | None,
    issues: list[ConfigIssue],
) -> list[tuple[str, str, str]]:
    """``(dotted key, value text, origin)`` of the environment then ``--set`` overrides,
    in the order they apply; an assignment that does not parse goes to ``issues``."""
    assignments = [
        (key, value, f"environment variable {var}") for key, value, var in env_overrides(env)
    ]
    for text in overrides:
        try:
            key, value = parse_assignment(text)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        assignments.append((_dotted(key), value, f"--set {text}"))
    return assignments


def _dotted(location: str) -> str:
    """``loggers[0].name`` as an override key spells it: ``loggers.0.name``."""
    return location.replace("[", ".").replace("]", "")


def _with_origins(issue: ConfigIssue, origins: Mapping[str, str]) -> ConfigIssue:
    """``issue``, its message ending with where each overridden value it concerns was set:
    the value at its location (or a table holding it), and, in the same section, a key
    the message names (``min_epochs=5 is more than max_epochs=1``)."""
    at = _dotted(issue.location)
    notes = []
    for key, origin in origins.items():
        if at == key or at.startswith(key + ".") or key.startswith(at + "."):
            notes.insert(0, f"set by {origin}")
            continue
        section, _, name = key.rpartition(".")
        if section == at.rpartition(".")[0] and re.search(rf"\b{re.escape(name)}\b", issue.message):
            notes.append(f"{name} set by {origin}")
    if not notes:
        return issue
    return ConfigIssue(issue.location, f"{issue.message} ({'; '.join(notes)})")


def validate(raw: Mapping[str, Any], *, engine: Engine, source: str | None = None) -> RunConfig:
    """Check every section of ``raw`` and return the run, or raise :class:`ConfigError`
    with every problem found."""
    return _Validator(raw, engine, source).run()


# ---------------------------------------------------------------------- the checks
class _Validator:
    def __init__(self, raw: Mapping[str, Any], engine: Engine, source: str | None) -> None:
        self.raw = raw
        self.engine = engine
        self.source = source
        self.issues: list[ConfigIssue] = []
        self.printable: dict[str, Any] = {}

    def issue(self, location: str, message: str) -> None:
        self.issues.append(ConfigIssue(location, message))

    def run(self) -> RunConfig:
        raw = self.raw
        if not isinstance(raw, Mapping):
            raise ConfigError(
                [ConfigIssue("", f"expected a table of sections, got {value_text(raw)}")],
                source=self.source,
            )
        for key in raw:
            if key not in SECTIONS:
                hint = closest(str(key), SECTIONS)
                message = f"unknown section {key!r}"
                message += f"; did you mean {hint!r}?" if hint else "."
                self.issue(str(key), f"{message} Sections: {', '.join(SECTIONS)}")
        seed = self.seed(raw.get("seed_everything"))
        block = self.plugins(raw.get("plugins"))
        pm = self.plugin_manager(block)
        trainer = self.trainer(raw.get("trainer", {}), pm)
        model = self.model(raw.get("model"))
        data, loaders = self.data(raw.get("data"))
        loggers = self.providers("loggers", raw.get("loggers"), pm)
        callbacks = self.providers("callbacks", raw.get("callbacks"), pm)
        if self.issues:
            raise ConfigError(self.issues, source=self.source)
        assert model is not None
        return RunConfig(
            trainer=trainer,
            model=model,
            data=data,
            loaders=loaders,
            loggers=loggers,
            callbacks=callbacks or [],
            seed=seed,
            block=block,
            source=self.source,
            printable=redact_config(self.printable),
        )

    # -- seed and plugins
    def seed(self, value: Any) -> int | bool | None:
        if value is None:
            return None
        if isinstance(value, bool):
            if value:
                self.printable["seed_everything"] = True
            return value
        if isinstance(value, int) and 0 <= value < 2**32:
            self.printable["seed_everything"] = value
            return value
        self.issue(
            "seed_everything",
            f"expected an integer in [0, 2**32) or true, got {value_text(value)}",
        )
        return None

    def plugins(self, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, Mapping):
            self.issue(
                "plugins",
                f"expected a table (block = [...], only = [...]), got {value_text(value)}",
            )
            return []
        for key in value:
            if key not in _PLUGIN_KEYS:
                self.issue(
                    f"plugins.{key}",
                    f"unknown key {key!r}{did_you_mean(str(key), _PLUGIN_KEYS)} Valid keys: "
                    + ", ".join(_PLUGIN_KEYS),
                )
        lists: dict[str, list[str]] = {}
        for key in _PLUGIN_KEYS:
            names = value.get(key)
            if names is None:
                continue
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                self.issue(
                    f"plugins.{key}", f"expected a list of plugin names, got {value_text(names)}"
                )
                continue
            lists[key] = names
        self.printable["plugins"] = dict(lists)
        installed = _installed_plugins()
        block = [normalize_name(n) for n in lists.get("block", [])]
        if "only" in lists:
            wanted = {normalize_name(n) for n in lists["only"]}
            known = {n for names in installed.values() for n in names} | {
                CORE_DISTRIBUTION,
                "builtins",
            }
            for i, name in enumerate(lists["only"]):
                if normalize_name(name) not in known:
                    shown = sorted({names[0] for names in installed.values()})
                    self.issue(
                        f"plugins.only[{i}]",
                        f"no installed plugin is called {name!r}"
                        f"{did_you_mean(normalize_name(name), known)} Installed plugins: "
                        f"{', '.join(shown) or 'none'}",
                    )
            block += [names[0] for names in installed.values() if not wanted & set(names)]
        return list(dict.fromkeys(block))

    def plugin_manager(self, block: list[str]) -> PluginManager:
        try:
            return plugin_manager_for(None, block)
        except EmberPluginError as exc:  # strict mode and a broken plugin
            raise ConfigError([ConfigIssue("plugins", str(exc))], source=self.source) from None

    # -- trainer
    def trainer(self, value: Any, pm: PluginManager) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.issue("trainer", f"expected a table of Trainer flags, got {value_text(value)}")
            return {}
        flags = dict(value)
        for flag, section in _SECTION_FLAGS.items():
            if flag in flags:
                flags.pop(flag)
                self.issue(
                    f"trainer.{flag}",
                    f"give {section} as [[{section}]] tables (name = ... plus options), "
                    "not as a trainer flag",
                )
        fields = self.engine.trainer_fields()
        problems = fields.check(flags, "trainer")
        self.issues.extend(problems)
        bad = {p.location for p in problems}
        if not problems:
            self.flag_values(flags)
        for flag, kind in PROVIDER_FLAGS.items():
            if flag in flags and f"trainer.{flag}" not in bad:
                flags[flag] = self.provider_flag(flag, kind, flags[flag], pm)
        shown = {k: v for k, v in fields.defaults.items() if v is not None and v is not ...}
        shown.update(flags)
        self.printable["trainer"] = shown
        return flags

    def flag_values(self, flags: dict[str, Any]) -> None:
        """Ask the engine about the values of well-typed ``flags``; each problem is laid
        at the flag its message starts with, which is then set aside to find the next."""
        check = self.engine.flag_problem
        left = dict(flags)
        while check is not None and left:
            message = check(left)
            if message is None:
                return
            named = re.match(r"[A-Za-z_]\w*", message)
            flag = named.group() if named and named.group() in left else None
            self.issue(f"trainer.{flag}" if flag else "trainer", message)
            if flag is None:
                return
            del left[flag]

    def provider_flag(self, flag: str, kind: str, value: Any, pm: PluginManager) -> Any:
        where = f"trainer.{flag}"
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            name, options = value, {}
        else:
            if "name" not in value:
                self.issue(where, f"a {kind} given as a table needs a 'name' key")
                return value
            name, options = value["name"], {k: v for k, v in value.items() if k != "name"}
        if flag in _AUTO_FLAGS and isinstance(name, str) and normalize_name(name) == "auto":
            return value
        spec = self.lookup(
            kind, name, f"{where}" if isinstance(value, str) else f"{where}.name", pm
        )
        if spec is None:
            return value
        self.issues.extend(provider_fields(spec).check(options, where))
        return spec.name if isinstance(value, str) else {"name": spec.name, **options}

    def lookup(self, kind: str, name: Any, where: str, pm: PluginManager) -> ProviderSpec | None:
        if not isinstance(name, str):
            self.issue(where, f"expected a {kind} name (a string), got {value_text(name)}")
            return None
        try:
            return pm.get(kind, name)
        except EmberPluginError as exc:
            message = str(exc)
            known = {n: pkg for (k, n), pkg in FIRST_PARTY.items() if k == kind}
            hint = closest(normalize_name(name), known)
            if hint and "pip install" not in message and "did you mean" not in message.lower():
                message += f" Did you mean {hint!r}? (pip install {known[hint]})"
            self.issue(where, message)
            return None

    # -- loggers and callbacks
    def providers(self, section: str, value: Any, pm: PluginManager) -> list[dict[str, Any]] | None:
        if value is None:
            return None
        kind = LIST_SECTIONS[section]
        if not isinstance(value, list):
            self.issue(
                section,
                f"expected a list of {kind} tables ([[{section}]] with name = ...), "
                f"got {value_text(value)}",
            )
            return None
        entries: list[dict[str, Any]] = []
        shown: list[dict[str, Any]] = []
        #: each logger as resolved (defaults filled): the same one twice shares a destination
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            where = f"{section}[{i}]"
            if isinstance(item, str):
                name, options = item, {}
                name_at = where
            elif isinstance(item, Mapping):
                if "name" not in item:
                    installed = ", ".join(sorted(pm.providers(kind))) or "none"
                    self.issue(
                        f"{where}.name",
                        f"required {kind} name is missing (installed: {installed})",
                    )
                    continue
                name = item["name"]
                options = {k: v for k, v in item.items() if k != "name"}
                name_at = f"{where}.name"
            else:
                self.issue(where, f"expected a {kind} name or table, got {value_text(item)}")
                continue
            spec = self.lookup(kind, name, name_at, pm)
            if spec is None:
                continue
            fields = provider_fields(spec)
            from_env = {k: v for k, v in spec.env_options().items() if k not in options}
            problems = fields.check({**from_env, **options}, where)
            self.issues.extend(problems)
            if problems:
                continue
            entries.append({"name": spec.name, **options})
            filled = {k: v for k, v in fields.defaults.items() if v is not None and v is not ...}
            filled.update(options)
            filled.update({k: REDACTED for k in from_env if k in spec.secret_options()})
            secret = spec.secret_options()
            shown.append(
                {
                    "name": spec.name,
                    **{k: REDACTED if k in secret else v for k, v in filled.items()},
                }
            )
            same = json.dumps(shown[-1], sort_keys=True, default=str)
            if section == "loggers" and same in seen and REDACTED not in same:
                self.issue(
                    where,
                    f"the same logger as {section}[{seen[same]}] ({spec.name!r} with the same "
                    "options): both would write to one destination. List it once, or give "
                    "each its own destination through its options (e.g. a distinct save_dir)",
                )
            seen.setdefault(same, i)
        self.printable[section] = shown
        return entries

    # -- model and data
    def model(self, value: Any) -> ClassRef | None:
        if value is None:
            self.issue(
                "model",
                "required section is missing: add [model] with class_path = "
                "'package.module:YourModule' (and init_args = {...})",
            )
            return None
        ref = self.class_ref(value, "model", self.engine.module_base, "an EmberModule subclass")
        if ref is not None:
            self.printable["model"] = ref.as_dict()
        return ref

    def data(self, value: Any) -> tuple[ClassRef | None, dict[str, ClassRef]]:
        if value is None:
            return None, {}
        if not isinstance(value, Mapping):
            self.issue("data", f"expected a table, got {value_text(value)}")
            return None, {}
        if "class_path" in value:
            extra = [k for k in value if k in LOADER_KEYS]
            if extra:
                self.issue(
                    f"data.{extra[0]}",
                    "give either a datamodule (class_path) or loaders ([data.train], ...), "
                    "not both",
                )
            datamodule = {k: v for k, v in value.items() if k not in LOADER_KEYS}
            ref = self.class_ref(
                datamodule, "data", self.engine.datamodule_base, "an EmberDataModule subclass"
            )
            if ref is not None:
                self.printable["data"] = ref.as_dict()
            return ref, {}
        loaders: dict[str, ClassRef] = {}
        if not value:
            self.issue("data", "empty: give class_path (a datamodule) or [data.train], [data.val]")
        for key, item in value.items():
            if key not in LOADER_KEYS:
                hint = closest(str(key), [*LOADER_KEYS, *_CLASS_KEYS])
                self.issue(
                    f"data.{key}",
                    f"unknown key {key!r}"
                    + (f"; did you mean {hint!r}?" if hint else "")
                    + " [data] holds class_path and init_args (a datamodule), or loaders: "
                    + ", ".join(LOADER_KEYS),
                )
                continue
            ref = self.class_ref(item, f"data.{key}", None, "")
            if ref is not None:
                loaders[key] = ref
        if loaders:
            self.printable["data"] = {k: r.as_dict() for k, r in loaders.items()}
        return None, loaders

    def class_ref(
        self, value: Any, where: str, base: type | None, base_text: str
    ) -> ClassRef | None:
        if not isinstance(value, Mapping):
            self.issue(
                where, f"expected a table with class_path and init_args, got {value_text(value)}"
            )
            return None
        for key in value:
            if key not in _CLASS_KEYS:
                self.issue(
                    f"{where}.{key}",
                    f"unknown key {key!r}{did_you_mean(str(key), _CLASS_KEYS)} Valid keys: "
                    "class_path, init_args",
                )
        path = value.get("class_path")
        if path is None:
            self.issue(
                f"{where}.class_path",
                "required import path is missing, e.g. class_path = 'package.module:ClassName'",
            )
            return None
        if not isinstance(path, str):
            self.issue(
                f"{where}.class_path", f"expected an import path string, got {value_text(path)}"
            )
            return None
        target, problem = import_path(path)
        if problem:
            self.issue(f"{where}.class_path", problem)
            return None
        if base is not None and not (isinstance(target, type) and issubclass(target, base)):
            self.issue(
                f"{where}.class_path",
                f"expected {base_text}, got {path!r} ({_what(target)})",
            )
            return None
        if not callable(target):
            self.issue(f"{where}.class_path", f"{path!r} is not a class or function")
            return None
        init_args = value.get("init_args", {})
        if not isinstance(init_args, Mapping):
            self.issue(
                f"{where}.init_args", f"expected a table of arguments, got {value_text(init_args)}"
            )
            return None
        try:
            fields = signature_fields(path, target, convert=False)
        except (TypeError, ValueError):  # no signature to read (a builtin): pass through
            return ClassRef(where, path, target, dict(init_args))
        problems = fields.check(init_args, f"{where}.init_args")
        for p in problems:
            if p.message.startswith("unknown key"):
                name = getattr(target, "__qualname__", path)
                self.issues.append(
                    ConfigIssue(
                        p.location,
                        p.message.replace("unknown key", f"{name}() takes no argument", 1),
                    )
                )
            elif "is missing" in p.message:
                self.issues.append(ConfigIssue(p.location, p.message + f" ({path} needs it)"))
            else:
                self.issues.append(p)
        return None if problems else ClassRef(where, path, target, dict(init_args))


def _what(obj: Any) -> str:
    if isinstance(obj, type):
        return f"a class derived from {obj.__mro__[1].__name__}"
    return f"a {type(obj).__name__}"


def import_path(path: str) -> tuple[Any, str | None]:
    """Import ``"package.module:Attr"`` (or ``"package.module.Attr"``); return the object,
    or ``None`` and why it could not be imported. Only the module named is imported."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        return None, (
            f"{path!r} is not an import path; write 'package.module:ClassName' "
            "(or 'package.module.ClassName')"
        )
    _cwd_importable()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(f"{missing}."):
            return None, (
                f"cannot import {path!r}: no module named {missing!r} (class paths import from "
                "the current directory and the installed packages)"
            )
        return None, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return None, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            return None, (
                f"{getattr(obj, '__name__', module_name)!r} has no attribute {part!r}"
                f"{did_you_mean(part, names)}"
            )
        obj = getattr(obj, part)
    return obj, None


def _cwd_importable() -> None:
    """Class paths resolve against the current directory, as with ``python -m``."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _installed_plugins() -> dict[tuple[str | None, str], tuple[str, ...]]:
    """Every third-party entry point, with the names it answers to (first: the one to
    block it by). ember's own built-ins always load, so they are not listed."""
    out: dict[tuple[str | None, str], tuple[str, ...]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        d = normalize_name(dist or "")
        if d == CORE_DISTRIBUTION:
            continue
        names = [normalize_name(ep.name)]
        if d:
            names += [d, d.removeprefix("ember_")]
        out[(dist, ep.name)] = tuple(dict.fromkeys(names))
    return out


def plugin_manager_for(section: Any, block: list[str]) -> PluginManager:
    """The process-wide manager, or a fresh one when the run file blocks plugins."""
    names = list(block)
    if isinstance(section, Mapping) and isinstance(section.get("block"), list):
        names += [normalize_name(n) for n in section["block"] if isinstance(n, str)]
    if not names:
        return get_plugin_manager()
    from_env = [
        normalize_name(n) for n in os.environ.get("EMBER_BLOCK_PLUGINS", "").split(",") if n.strip()
    ]
    pm = PluginManager(block=[*from_env, *names])
    pm.load_entrypoints()
    return pm


def _string_locations(
    raw: Mapping[str, Any], pm: PluginManager, engine: Engine
) -> Callable[[list[str | int]], bool]:
    """Where the schema wants a string, so ``--set key=123`` keeps ``"123"``."""
    trainer = engine.trainer_fields()

    def wants_text(path: list[str | int]) -> bool:
        head = path[0]
        if path[-1] in ("class_path", "name"):
            return True
        if head == "trainer" and len(path) == 2:
            ann = trainer.annotations.get(str(path[1]))
            return ann is not None and string_only(ann)
        if head in LIST_SECTIONS and len(path) == 3 and isinstance(path[1], int):
            entries = raw.get(head)
            if not isinstance(entries, list) or path[1] >= len(entries):
                return False
            entry = entries[path[1]]
            name = (
                entry
                if isinstance(entry, str)
                else entry.get("name")
                if isinstance(entry, Mapping)
                else None
            )
            try:
                spec = pm.get(LIST_SECTIONS[head], str(name))
            except EmberPluginError:
                return False
            option = spec.options.get(str(path[2]))
            if option is None:
                return False
            if option.choices:
                return all(isinstance(c, str) for c in option.choices)
            return option.type in ("str", "path")
        return False

    return wants_text


__all__ = [
    "LIST_SECTIONS",
    "PROVIDER_FLAGS",
    "SECTIONS",
    "ClassRef",
    "Engine",
    "RunConfig",
    "apply_overrides",
    "import_path",
    "load_config",
    "plugin_manager_for",
    "validate",
]
