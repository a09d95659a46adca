"""`ember config schema`: a JSON Schema built from the installed plugins, checked with a
JSON Schema validator (not with the code that made it) against the examples and the
catalogue of bad run files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from bad_cases import CASES, Bad
from config_helpers import DIGITS
from ember.hub.config import read_run_file
from ember.hub.manager import get_plugin_manager


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from ember.hub.cli import main

    out = tmp_path_factory.mktemp("schema") / "ember-run.schema.json"
    assert main(["config", "schema", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def _validator(schema: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_schema_knows_the_installed_providers(schema: dict) -> None:
    trainer = schema["properties"]["trainer"]["properties"]
    assert trainer["max_epochs"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    names = trainer["precision"]["oneOf"][1]["enum"]
    assert "32-true" in names and "32_true" in names
    loggers = schema["properties"]["loggers"]["items"]["oneOf"]
    csv = next(e for e in loggers if e.get("title") == "logger csv")
    assert set(csv["properties"]) == {"name", "save_dir"}
    callbacks = schema["properties"]["callbacks"]["items"]["oneOf"]
    early = next(e for e in callbacks if e.get("title") == "callback early_stopping")
    assert "monitor" in early["required"]
    assert early["properties"]["mode"]["anyOf"][0]["enum"] == ["min", "max"]


def test_schema_accepts_the_examples(schema: dict) -> None:
    installed = set(get_plugin_manager().providers("logger"))
    validator = _validator(schema)
    checked = 0
    for path in sorted(DIGITS.glob("run*.toml")):
        data = read_run_file(path)
        names = {e["name"] for e in data.get("loggers", [])}
        errors = list(validator.iter_errors(data))
        if names <= installed:
            assert errors == [], (path, [e.message for e in errors])
            checked += 1
        else:  # a tracker that is not installed is not in the schema
            assert errors, path
    assert checked >= 1


SCHEMA_CASES = [c for c in CASES if c.schema_rejects]


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[c.id for c in SCHEMA_CASES])
def test_schema_rejects_bad_run_file(case: Bad, schema: dict, tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(case.text)
    assert not _validator(schema).is_valid(read_run_file(path))


def test_schema_accepts_a_yaml_shaped_run(schema: dict) -> None:
    """Loggers and callbacks may be bare names (handy in YAML lists)."""
    run = {
        "model": {"class_path": "pkg.mod:Net"},
        "trainer": {"accelerator": "auto", "precision": "32-true", "max_time": {"hours": 1}},
        "loggers": ["csv"],
        "callbacks": ["progress_bar", {"name": "early_stopping", "monitor": "val_loss"}],
        "data": {"train": {"class_path": "pkg.data.make_loader", "init_args": {"n": 3}}},
    }
    assert list(_validator(schema).iter_errors(run)) == []
