"""The run file's JSON Schema, assembled from the installed plugins' option schemas and the
Trainer's flags, for editors (completion, checking as you type) and other tools.

It checks shapes, names and types. What needs Python to check (that a class path imports,
that init arguments fit the class) only ``ember config validate`` does.
"""

from __future__ import annotations

from typing import Any

from ember.hub.config.schema import provider_fields
from ember.hub.config.validation import (
    LIST_SECTIONS,
    LOADER_KEYS,
    PROVIDER_FLAGS,
    SECTIONS,
    Engine,
)
from ember.hub.manager import PluginManager
from ember.hub.records import ProviderSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_IMPORT_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*([:.][A-Za-z_][A-Za-z0-9_.]*)$"


def spellings(spec: ProviderSpec) -> list[str]:
    """Every name the registry resolves to ``spec``, as a user would write it: each name
    and alias, with ``_`` and with ``-`` (the registry treats them alike)."""
    out: list[str] = []
    for name in spec.names:
        out += [name, name.replace("_", "-"), name.replace("-", "_")]
    return list(dict.fromkeys(out))


def provider_entry(spec: ProviderSpec) -> dict[str, Any]:
    """``{"name": ..., **options}`` for one provider (records refuse an option called
    ``name``, so it always selects the provider)."""
    options = provider_fields(spec).json_schema()
    properties = {"name": {"enum": spellings(spec), "description": spec.description}}
    properties.update(options.get("properties", {}))
    schema: dict[str, Any] = {
        "type": "object",
        "title": f"{spec.kind} {spec.name}",
        "properties": properties,
        "required": ["name", *options.get("required", [])],
        "additionalProperties": bool(spec.allow_extra_options),
    }
    if spec.distribution:
        schema["description"] = f"{spec.description} (from {spec.distribution})".strip()
    return schema


def provider_choice(specs: list[ProviderSpec], auto: bool) -> dict[str, Any]:
    """A provider by name, or as a table with ``name`` and its options."""
    names = [n for spec in specs for n in spellings(spec)]
    if auto:
        names = ["auto", *names]
    alternatives: list[dict[str, Any]] = [{"type": "string", "enum": names}]
    alternatives += [provider_entry(spec) for spec in specs]
    if auto:
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": "auto"}},
                "required": ["name"],
                "additionalProperties": False,
            }
        )
    return {"oneOf": alternatives}


def _class_ref(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "class_path": {
                "type": "string",
                "pattern": _IMPORT_PATH,
                "description": "import path, 'package.module:ClassName'",
            },
            "init_args": {"type": "object", "description": "keyword arguments of the class"},
        },
        "required": ["class_path"],
        "additionalProperties": False,
    }


def run_file_schema(pm: PluginManager, engine: Engine) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a run file with what is installed now."""
    trainer = engine.trainer_fields().json_schema()
    defs = trainer.pop("$defs", {})
    trainer["description"] = SECTIONS["trainer"]
    props = trainer.setdefault("properties", {})
    for flag, kind in PROVIDER_FLAGS.items():
        if flag in props:
            specs = sorted(pm.providers(kind).values(), key=lambda s: s.name)
            choice = provider_choice(specs, auto=flag in ("accelerator", "strategy"))
            if kind == "precision":
                choice["oneOf"].insert(0, {"type": "integer", "enum": [16, 32, 64]})
            props[flag] = {
                **choice,
                "description": f"{kind} by name (installed: "
                + ", ".join(s.name for s in specs)
                + ")",
            }
    sections: dict[str, Any] = {
        "seed_everything": {
            "description": SECTIONS["seed_everything"],
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
                {"type": "boolean"},
            ],
        },
        "plugins": {
            "type": "object",
            "description": SECTIONS["plugins"],
            "properties": {
                "block": {"type": "array", "items": {"type": "string"}},
                "only": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "trainer": trainer,
        "model": _class_ref(SECTIONS["model"]),
        "data": {
            "description": SECTIONS["data"],
            "oneOf": [
                _class_ref("a datamodule"),
                {
                    "type": "object",
                    "properties": {k: _class_ref(f"the {k} loader") for k in LOADER_KEYS},
                    "minProperties": 1,
                    "additionalProperties": False,
                },
            ],
        },
    }
    for section, kind in LIST_SECTIONS.items():
        specs = sorted(pm.providers(kind).values(), key=lambda s: s.name)
        names = [n for spec in specs for n in spellings(spec)]
        sections[section] = {
            "type": "array",
            "description": SECTIONS[section],
            "items": {
                "oneOf": [
                    {"type": "string", "enum": names},
                    *(provider_entry(spec) for spec in specs),
                ]
            },
        }
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "title": "ember run file",
        "description": "A run fully described in one file: `ember fit --config FILE`.",
        "type": "object",
        "properties": sections,
        "required": ["model"],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return schema
