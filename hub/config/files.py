"""Reading run files (TOML, or YAML when PyYAML is installed), applying ``--set`` and
environment overrides, and writing a configuration back out as TOML.

Nothing here knows what the keys mean; :mod:`ember.hub.config.validate` does.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ember.hub.config.errors import ConfigError, ConfigIssue

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: environment variables that override the common settings (file < environment < --set)
ENV_OVERRIDES: dict[str, str] = {
    "EMBER_ACCELERATOR": "trainer.accelerator",
    "EMBER_DEVICES": "trainer.devices",
    "EMBER_PRECISION": "trainer.precision",
    "EMBER_STRATEGY": "trainer.strategy",
    "EMBER_MAX_EPOCHS": "trainer.max_epochs",
    "EMBER_DEFAULT_ROOT_DIR": "trainer.default_root_dir",
    "EMBER_SEED": "seed_everything",
}

_YAML_SUFFIXES = (".yaml", ".yml")


def read_run_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The run file at ``path`` as plain data; a :class:`ConfigError` when it cannot be read."""
    p = Path(path)
    name = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue("", "no such file")], source=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("", f"cannot be read: {exc}")], source=name) from None
    if p.suffix.lower() in _YAML_SUFFIXES:
        data = _parse_yaml(text, name)
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([ConfigIssue("", f"is not valid TOML: {exc}")], source=name) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue("", f"must hold a table of sections, got {type(data).__name__}")],
            source=name,
        )
    return data


def _parse_yaml(text: str, name: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            [
                ConfigIssue(
                    "",
                    "is a YAML file, and reading YAML needs the PyYAML package: "
                    "pip install PyYAML (or pip install 'ember[yaml]'), or write the run "
                    "file in TOML",
                )
            ],
            source=name,
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue("", f"is not valid YAML: {exc}")], source=name) from None


def parse_value(text: str) -> Any:
    """A command-line value as TOML would read it (``3``, ``true``, ``1e-3``, ``[1, 2]``,
    ``{hours = 1}``); anything that is not a TOML value stays the string it is."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_key(key: str) -> list[str | int]:
    """``"loggers.0.project"`` -> ``["loggers", 0, "project"]``."""
    parts: list[str | int] = []
    for part in key.split("."):
        parts.append(int(part) if part.isdigit() else part)
    return parts


def apply_override(
    config: dict[str, Any],
    key: str,
    raw: str,
    string_only: Callable[[list[str | int]], bool],
    origin: str,
) -> None:
    """Set ``key`` (dotted, list positions as numbers) to ``raw`` parsed as a TOML value,
    or kept as text where ``string_only`` says the schema wants a string there."""
    path = split_key(key)
    if not key or any(p == "" for p in path):
        raise ConfigError(
            [ConfigIssue(key, f"{origin}: the key is empty; write SECTION.KEY=VALUE")]
        )
    value: Any = raw if string_only(path) else parse_value(raw)
    node: Any = config
    for depth, part in enumerate(path[:-1]):
        where = ".".join(map(str, path[: depth + 1]))
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ConfigError(
                    [
                        ConfigIssue(
                            where,
                            f"{origin}: there is no entry {part} here "
                            f"(the file has {size}; positions count from 0)",
                        )
                    ]
                )
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise ConfigError([ConfigIssue(where, f"{origin}: this is not a table")])
            node = node.setdefault(part, {})
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError([ConfigIssue(key, f"{origin}: there is no entry {last} here")])
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError([ConfigIssue(key, f"{origin}: the parent is not a table")])


def parse_assignment(text: str) -> tuple[str, str]:
    """``"trainer.max_epochs=3"`` -> ``("trainer.max_epochs", "3")``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            [
                ConfigIssue(
                    "",
                    f"--set {text!r}: write --set SECTION.KEY=VALUE, e.g. --set "
                    "trainer.max_epochs=3",
                )
            ]
        )
    return key.strip(), value.strip()


def env_overrides(env: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """``(dotted key, value, variable)`` for each set variable of :data:`ENV_OVERRIDES`."""
    env = os.environ if env is None else env
    return [
        (key, env[var].strip(), var)
        for var, key in ENV_OVERRIDES.items()
        if env.get(var, "").strip()
    ]


# ---------------------------------------------------------------------- writing TOML
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value if v is not None) + "]"
    if isinstance(value, Mapping):
        items = (f"{_key(str(k))} = {_scalar(v)}" for k, v in value.items() if v is not None)
        return "{ " + ", ".join(items) + " }" if value else "{}"
    return json.dumps(str(value))


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def dump_toml(config: Mapping[str, Any]) -> str:
    """``config`` as TOML text (``None`` values left out: TOML has no null)."""
    lines: list[str] = []

    def table(prefix: str, data: Mapping[str, Any], header: str | None) -> None:
        plain = [
            (k, v)
            for k, v in data.items()
            if v is not None and not isinstance(v, Mapping) and not _is_table_list(v)
        ]
        nested = [(k, v) for k, v in data.items() if isinstance(v, Mapping) or _is_table_list(v)]
        if header is not None:
            if lines:
                lines.append("")
            lines.append(header)
        lines.extend(f"{_key(str(k))} = {_scalar(v)}" for k, v in plain)
        for k, v in nested:
            name = f"{prefix}{_key(str(k))}"
            if isinstance(v, Mapping):
                table(f"{name}.", v, f"[{name}]")
            else:
                for item in v:
                    table(f"{name}.", item, f"[[{name}]]")

    table("", config, None)
    return "\n".join(lines) + "\n"
