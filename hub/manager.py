"""The plugin manager: discovery through the ``ember`` entry point group, the provider
registry, and lookup by kind and name.

Built-in plugins come through the root distribution's own entry points, so they load,
fail and get blocked exactly like third-party ones. Loading an entry point imports only
the module it names; provider records name their factories lazily, so no tracker SDK and
no torch is imported here.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from ember.hub import hookspecs
from ember.hub.compat import (
    INCOMPATIBLE,
    UNDECLARED,
    Compatibility,
    check_distribution,
    installed_ember_version,
)
from ember.hub.errors import (
    DuplicateProviderError,
    IncompatiblePluginWarning,
    PluginLoadError,
    PluginSettingsError,
    PluginWarning,
    UnknownHookError,
    UnknownProviderError,
)
from ember.hub.records import PROVIDER_HOOKS, SPEC_TYPES, ProviderSpec, normalize_name

ENTRY_POINT_GROUP = "ember"
CORE_DISTRIBUTION = "ember"

#: where a first-party provider that is not installed can be found
FIRST_PARTY: dict[tuple[str, str], str] = {
    ("logger", "wandb"): "ember-wandb",
    ("logger", "comet"): "ember-comet",
    ("logger", "mlflow"): "ember-mlflow",
    ("logger", "tensorboard"): "ember-tensorboard",
}

LIFECYCLE_HOOKS: tuple[str, ...] = tuple(
    name
    for name in dir(hookspecs)
    if name.startswith("ember_") and name not in PROVIDER_HOOKS.values()
)


class _EmberPluggy(pluggy.PluginManager):
    """pluggy, plus pytest's convenience: a plugin module's ``ember_*`` functions are hook
    implementations even without ``@hookimpl`` (so a typo there is caught as well)."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("ember_") and callable(getattr(plugin, name, None)):
            opts = {}
        return opts


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """A yes/no environment variable; any other value is an error, not a silent "no"."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise PluginSettingsError(
        f"{name}={raw!r} is not a yes/no value: set {name}=1 (or true, yes, on) to turn it "
        f"on, {name}=0 (or false, no, off) or leave it unset to turn it off"
    )


def _env_list(name: str) -> list[str]:
    """A comma-separated list of plugin names; ``*`` is an error that says what to use."""
    raw = os.environ.get(name, "")
    names = [v.strip() for v in raw.split(",") if v.strip()]
    for item in names:
        if any(ch in item for ch in "*?[]"):
            raise PluginSettingsError(
                f"{name}={raw!r}: {item!r} is a pattern, but {name} takes plugin names "
                "(e.g. wandb,comet; `ember plugins` lists them). To load no third-party "
                "plugin at all, set EMBER_DISABLE_PLUGIN_AUTOLOAD=1"
            )
    return [normalize_name(v) for v in names]


@dataclass
class PluginInfo:
    """What the hub knows about one plugin: where it came from and what became of it."""

    name: str
    distribution: str | None
    version: str | None
    entry_point: str | None = None
    status: str = "active"  # active | blocked | failed | incompatible
    error: str | None = None
    provides: list[tuple[str, str]] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    #: the ember versions its distribution declares (None for ember's own built-ins and for
    #: plugins registered from code, which have no distribution metadata to read)
    compatibility: Compatibility | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``ember plugins --json``."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": self.entry_point,
            "status": self.status,
            "error": self.error,
            "provides": [{"kind": k, "name": n} for k, n in self.provides],
            "hooks": list(self.hooks),
            "compatibility": self.compatibility.as_dict() if self.compatibility else None,
        }


class PluginManager:
    """Loads plugins, keeps the provider registry and answers lookups.

    :param autoload: load third-party entry points (default: unless
        ``EMBER_DISABLE_PLUGIN_AUTOLOAD=1``). ember's own built-ins always load.
    :param block: plugin names to skip (default: ``EMBER_BLOCK_PLUGINS``); a name matches
        an entry point name or a distribution name, with or without the ``ember-`` prefix.
    :param strict: make a plugin that fails to load fatal, and skip a plugin whose
        distribution declares ember versions that exclude the installed one (default:
        ``EMBER_STRICT_PLUGINS``). Without it such a plugin loads, with a
        :class:`PluginWarning`.
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        block: Iterable[str] | None = None,
        strict: bool | None = None,
    ) -> None:
        self.autoload = (
            not env_flag("EMBER_DISABLE_PLUGIN_AUTOLOAD") if autoload is None else autoload
        )
        self.blocked = (
            {normalize_name(b) for b in block}
            if block is not None
            else set(_env_list("EMBER_BLOCK_PLUGINS"))
        )
        self._blocked_from_env = block is None
        self.strict = env_flag("EMBER_STRICT_PLUGINS") if strict is None else strict
        self._pm = _EmberPluggy(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._infos: list[PluginInfo] = []
        self._objects: dict[str, object] = {}
        self._registry: dict[str, dict[str, ProviderSpec]] | None = None
        self._conflicts: list[str] = []
        self._records_by_plugin: dict[int, list[ProviderSpec]] = {}
        self._loaded = False
        self._compat_cache: dict[str, Compatibility] = {}

    # ------------------------------------------------------------------ loading
    def load_entrypoints(self) -> None:
        """Discover and register every plugin of the ``ember`` entry point group (once)."""
        if self._loaded:
            return
        self._loaded = True
        seen: set[tuple[str | None, str]] = set()
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=_ep_order):
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if (dist, ep.name) in seen:  # the same distribution seen twice on sys.path
                continue
            seen.add((dist, ep.name))
            info = PluginInfo(ep.name, dist, version, entry_point=f"{ep.name} = {ep.value}")
            self._infos.append(info)
            if ep.dist is not None and normalize_name(ep.dist.name) != CORE_DISTRIBUTION:
                info.compatibility = self._compatibility(ep.dist)
            if self._is_blocked(ep.name, dist):
                info.status = "blocked"
                continue
            if not self.autoload and normalize_name(dist or "") != CORE_DISTRIBUTION:
                info.status = "blocked"
                info.error = "autoload disabled (EMBER_DISABLE_PLUGIN_AUTOLOAD=1)"
                continue
            if not self._compatible_enough(info):
                continue
            try:
                plugin = ep.load()
                self._register(plugin, info)
            except Exception as exc:  # one broken plugin must not take the others down
                self._fail(info, exc)
        if self._blocked_from_env:
            self._warn_unknown_blocks(seen)

    def _compatibility(self, dist: metadata.Distribution) -> Compatibility:
        """The verdict on ``dist``'s declared ember versions (once per distribution)."""
        key = normalize_name(dist.name)
        if key not in self._compat_cache:
            try:
                verdict = check_distribution(dist, installed_ember_version())
            except Exception as exc:  # unreadable metadata must not stop discovery
                verdict = Compatibility(
                    UNDECLARED, None, f"the metadata of {dist.name} could not be read: {exc}"
                )
            self._compat_cache[key] = verdict
        return self._compat_cache[key]

    def _compatible_enough(self, info: PluginInfo) -> bool:
        """Whether to load a plugin: one made for other ember versions is skipped under
        strict mode; otherwise it loads with a warning, in case it still works (most
        releases break little), and it fails like any plugin if it does not."""
        compat = info.compatibility
        if compat is None or compat.status != INCOMPATIBLE:
            return True
        if self.strict:
            info.status = "incompatible"
            info.error = f"{compat.reason} (skipped: EMBER_STRICT_PLUGINS=1)"
            return False
        warnings.warn(
            f"plugin {info.name!r} is incompatible: {compat.reason}. It is loaded anyway; "
            "EMBER_STRICT_PLUGINS=1 skips it",
            IncompatiblePluginWarning,
            stacklevel=4,
        )
        return True

    def _warn_unknown_blocks(self, seen: set[tuple[str | None, str]]) -> None:
        """Warn about blocked names that match no installed plugin (a typo blocks nothing)."""
        known: set[str] = set()
        for dist, name in seen:
            known |= self._candidates(name, dist)
        for name in sorted(self.blocked - known):
            hint = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            warnings.warn(
                f"EMBER_BLOCK_PLUGINS names {name!r}, which matches no installed plugin, so it "
                "blocks nothing"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + " (`ember plugins` lists the installed plugins)",
                PluginWarning,
                stacklevel=3,
            )

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> PluginInfo:
        """Register a plugin object or module from code (no entry point needed).

        Errors are raised at once, whatever the strict setting: the caller is right here.
        """
        self.load_entrypoints()
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name, distribution, version, entry_point=None)
        self._infos.append(info)
        if self._is_blocked(name, distribution):
            info.status = "blocked"
            return info
        try:
            self._register(plugin, info)
        except BaseException as exc:
            # a plugin that failed to register must not stay half active
            info.status = "failed"
            info.error = f"{type(exc).__name__}: {exc}"
            raise
        return info

    def _register(self, plugin: object, info: PluginInfo) -> None:
        """Register ``plugin`` with pluggy and collect its records; on any failure leave no
        trace of it (no hook implementation, no provider) and raise."""
        try:
            self._pm.register(plugin, name=f"{info.distribution}:{info.name}:{len(self._infos)}")
        except pluggy.PluginValidationError as exc:
            hint = ""
            if "'pl_module'" in str(exc):
                hint = (
                    "\nember's hooks call Lightning's pl_module 'module': rename the argument "
                    "to module (a Callback subclass may keep the name pl_module)"
                )
            raise PluginLoadError(f"plugin {info.name!r}: {exc}{hint}") from exc
        try:
            hooks = self._pm.get_hookcallers(plugin) or []
            unknown = [h.name for h in hooks if not h.has_spec()]
            if unknown:
                raise UnknownHookError(_unknown_hook_message(info.name, unknown[0]))
            records = self._collect_records(plugin, info)
        except BaseException:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            raise
        info.hooks = sorted(h.name for h in hooks if h.name in LIFECYCLE_HOOKS)
        self._objects[info.name] = plugin
        self._records_by_plugin[id(info)] = records
        self._registry = None
        info.provides = [(r.kind, r.name) for r in records]

    def _collect_records(self, plugin: object, info: PluginInfo) -> list[ProviderSpec]:
        records: list[ProviderSpec] = []
        for kind, hook_name in PROVIDER_HOOKS.items():
            func = getattr(plugin, hook_name, None)
            if func is None:
                continue
            try:
                produced = list(func() or ())
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin {info.name!r}: {hook_name}() raised {exc!r}"
                ) from exc
            for rec in produced:
                if not isinstance(rec, SPEC_TYPES[kind]):
                    raise PluginLoadError(
                        f"plugin {info.name!r}: {hook_name}() must yield "
                        f"{SPEC_TYPES[kind].__name__} records, got {type(rec).__name__}"
                    )
                records.append(rec.with_origin(info.distribution, info.version))
        return records

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        info.status = "failed"
        info.error = f"{type(exc).__name__}: {exc}"
        if self.strict:
            where = f"entry point '{info.entry_point}'" if info.entry_point else "registration"
            raise PluginLoadError(
                f"plugin {info.name!r} from distribution {info.distribution!r} failed to load "
                f"({where}): {info.error}\n"
                "EMBER_STRICT_PLUGINS=1 makes this fatal; fix or uninstall the plugin, or "
                f"block it with EMBER_BLOCK_PLUGINS={info.name}"
            ) from exc

    def _is_blocked(self, name: str, dist: str | None) -> bool:
        return bool(self._candidates(name, dist) & self.blocked)

    @staticmethod
    def _candidates(name: str, dist: str | None) -> set[str]:
        """The names that block a plugin: its own, its distribution's, without ``ember-``."""
        candidates = {normalize_name(name)}
        if dist:
            d = normalize_name(dist)
            candidates |= {d, d.removeprefix("ember_")}
        return candidates

    # ------------------------------------------------------------------ registry
    def _build_registry(self) -> dict[str, dict[str, ProviderSpec]]:
        self.load_entrypoints()
        if self._registry is not None:
            return self._registry
        registry: dict[str, dict[str, ProviderSpec]] = {kind: {} for kind in PROVIDER_HOOKS}
        conflicts: list[str] = []
        for info in self._infos:
            if info.status != "active":
                continue
            for rec in self._records_by_plugin.get(id(info), []):
                table = registry[rec.kind]
                for n in rec.keys:
                    other = table.get(n)
                    if other is not None and other is not rec:
                        conflicts.append(
                            f"two plugins provide a {rec.kind} named {other.name!r}: "
                            f"{_origin(other)} and {_origin(rec)}. "
                            "Uninstall one of them, or block one with "
                            "EMBER_BLOCK_PLUGINS=<plugin name>."
                        )
                        continue
                    table[n] = rec
        self._registry = registry
        self._conflicts = conflicts
        return registry

    def check(self) -> None:
        """Raise :class:`DuplicateProviderError` if two plugins claim one name."""
        self._build_registry()
        if self._conflicts:
            raise DuplicateProviderError("\n".join(self._conflicts))

    @property
    def conflicts(self) -> list[str]:
        """Messages for every name claimed by two plugins."""
        self._build_registry()
        return list(self._conflicts)

    def providers(self, kind: str) -> dict[str, ProviderSpec]:
        """Every provider of ``kind`` by canonical name (aliases excluded)."""
        _check_kind(kind)
        self.check()
        table = self._build_registry()[kind]
        return {rec.name: rec for key, rec in table.items() if rec.keys[0] == key}

    def get(self, kind: str, name: str) -> ProviderSpec:
        """The record of the ``kind`` provider called ``name`` (or one of its aliases)."""
        _check_kind(kind)
        self.check()
        table = self._build_registry()[kind]
        key = normalize_name(name)
        rec = table.get(key)
        if rec is not None:
            return rec
        raise UnknownProviderError(self._unknown_message(kind, name, key, table))

    def create(self, kind: str, config: str | Mapping[str, Any], **options: Any) -> Any:
        """Build a provider from a name or a ``{"name": ..., **options}`` mapping."""
        if isinstance(config, Mapping):
            if "name" not in config:
                raise UnknownProviderError(
                    f"a {kind} given as a mapping needs a 'name' key, got keys {sorted(config)}"
                )
            options = {**{k: v for k, v in config.items() if k != "name"}, **options}
            config = config["name"]
        return self.get(kind, config).create(**options)

    def _unknown_message(
        self, kind: str, name: str, key: str, table: Mapping[str, ProviderSpec]
    ) -> str:
        installed = sorted({rec.name for rec in table.values()})
        package = FIRST_PARTY.get((kind, key))
        if package:
            return (
                f"no {kind} named {name!r} is installed. It is provided by the package "
                f"{package}: pip install {package}"
            )
        msg = f"no {kind} named {name!r}."
        hint = difflib.get_close_matches(key, list(table), n=1, cutoff=0.6)
        if hint:
            msg += f" Did you mean {table[hint[0]].name!r}?"
        msg += f" Installed {kind} providers: {', '.join(installed) or 'none'}."
        blocked = [i.name for i in self._infos if i.status == "blocked"]
        if blocked:
            msg += f" Blocked plugins: {', '.join(blocked)}."
        return msg

    # ------------------------------------------------------------------ introspection
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, in load order, whatever its status."""
        self.load_entrypoints()
        return list(self._infos)

    def lifecycle_plugins(self) -> list[object]:
        """The active plugin objects that implement at least one lifecycle hook."""
        self.load_entrypoints()
        return [
            self._objects[i.name]
            for i in self._infos
            if i.status == "active" and i.hooks and i.name in self._objects
        ]


def _ep_order(ep: metadata.EntryPoint) -> tuple[int, str, str]:
    dist = normalize_name(ep.dist.name) if ep.dist is not None else ""
    return (0 if dist == CORE_DISTRIBUTION else 1, dist, ep.name)


def _origin(rec: ProviderSpec) -> str:
    if rec.distribution:
        return f"{rec.distribution} {rec.version or ''}".strip()
    return "code registered at run time"


def _check_kind(kind: str) -> None:
    if kind not in PROVIDER_HOOKS:
        raise ValueError(f"unknown provider kind {kind!r}; use one of {', '.join(PROVIDER_HOOKS)}")


def _unknown_hook_message(plugin: str, hook: str) -> str:
    hint = difflib.get_close_matches(hook, LIFECYCLE_HOOKS + tuple(PROVIDER_HOOKS.values()), n=1)
    msg = f"plugin {plugin!r} implements {hook!r}, which is not an ember hook."
    if hint:
        msg += f" Did you mean {hint[0]!r}?"
    return msg + " Run `ember hooks` for the list."


_default: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, discovering plugins on first use."""
    global _default
    if _default is None:
        _default = PluginManager()
        _default.load_entrypoints()
    return _default


def reset_plugin_manager() -> None:
    """Forget the process-wide manager so the next call rediscovers (tests, notebooks)."""
    global _default
    _default = None
