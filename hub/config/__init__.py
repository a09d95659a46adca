"""ember.hub.config: run files. A run is described by one TOML (or YAML) file: trainer
flags, the model and data classes, loggers and callbacks by provider name with their
options, validated against the installed plugins' schemas before anything trains.

Only the error types load eagerly; the validator (and pydantic) load on first use, so
``import ember.hub`` stays cheap. See docs/config.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ember.hub.config.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from ember.hub.config.export import run_file_schema
    from ember.hub.config.files import ENV_OVERRIDES, dump_toml, read_run_file
    from ember.hub.config.runner import run, seed_everything
    from ember.hub.config.validation import ClassRef, Engine, RunConfig, load_config, validate

_LAZY = {
    "ENV_OVERRIDES": "files",
    "dump_toml": "files",
    "read_run_file": "files",
    "ClassRef": "validation",
    "Engine": "validation",
    "RunConfig": "validation",
    "load_config": "validation",
    "validate": "validation",
    "run_file_schema": "export",
    "run": "runner",
    "seed_everything": "runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ember.hub.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ember.hub.config.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ENV_OVERRIDES",
    "ClassRef",
    "ConfigError",
    "ConfigIssue",
    "Engine",
    "RunConfig",
    "dump_toml",
    "load_config",
    "read_run_file",
    "run",
    "run_file_schema",
    "seed_everything",
    "validate",
]
