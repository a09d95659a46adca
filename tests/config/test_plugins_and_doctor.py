"""`[plugins]` block and only lists, and `ember doctor`, with a plugin distribution really
installed with pip (the tracking tests' fixture trackers) and one registered in code."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bad_cases import GOOD
from config_helpers import REPO_ROOT, run_ember
from ember.hub import LoggerSpec, Option, get_plugin_manager, hookimpl
from ember.hub.doctor import collect, format_report

FIXTURE_SRC = REPO_ROOT / "tests" / "tracking" / "fixtures" / "trackers"
RECORDER = GOOD + "[[loggers]]\nname = 'recorder'\npath = 'calls.jsonl'\ntoken = 'tok-123456'\n"


@pytest.fixture(scope="module")
def trackers_env(tmp_path_factory: pytest.TempPathFactory, pip_install_target) -> dict[str, str]:
    site = pip_install_target(FIXTURE_SRC, tmp_path_factory.mktemp("trackers") / "site")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path}


def _validate(path: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = run_ember("config", "validate", str(path), env=env)
    return proc.returncode, proc.stdout + proc.stderr


def test_block_and_only(trackers_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(RECORDER)
    code, out = _validate(path, trackers_env)
    assert code == 0, out
    assert "loggers: recorder" in out

    path.write_text("[plugins]\nblock = ['fixture-trackers']\n" + RECORDER)
    code, out = _validate(path, trackers_env)
    assert code == 3, out
    assert f"{path}: loggers[0].name: no logger named 'recorder'." in out
    assert "Blocked plugins: fixture_trackers" in out

    path.write_text("[plugins]\nonly = ['ember-fixture-trackers']\n" + RECORDER)
    code, out = _validate(path, trackers_env)
    assert code == 0, out

    path.write_text("[plugins]\nonly = ['fixture_trackerz']\n" + RECORDER)
    code, out = _validate(path, trackers_env)
    assert code == 3, out
    assert (
        f"{path}: plugins.only[0]: no installed plugin is called 'fixture_trackerz'; "
        "did you mean 'fixture_trackers'?" in out
    )
    assert "Traceback" not in out


def test_doctor_lists_plugins_and_trackers(trackers_env: dict[str, str]) -> None:
    proc = run_ember("doctor", "--json", env=trackers_env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["torch"]["ok"] and report["torch"]["version"].startswith("2.")
    assert report["torch"]["cuda"]["available"] in (True, False)
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["fixture_trackers"]["status"] == "active"
    assert plugins["fixture_trackers"]["distribution"] == "ember-fixture-trackers"
    trackers = {t["name"]: t for t in report["trackers"]}
    assert trackers["csv"]["installed"] and trackers["csv"]["credentials"] == []
    token = next(c for c in trackers["recorder"]["credentials"] if c["option"] == "token")
    assert token == {"option": "token", "secret": True, "env": None, "present": False}
    assert trackers["wandb"]["installed"] and trackers["wandb"]["distribution"] == "ember-wandb"

    text = run_ember("doctor", env=trackers_env).stdout
    assert "recorder         installed; credentials: " in text


def test_doctor_names_the_package_of_a_tracker_that_is_not_installed(
    uninstalled_tracker: str,
) -> None:
    report = collect()
    tracker = next(t for t in report["trackers"] if t["name"] == uninstalled_tracker)
    assert tracker == {"name": "neptune", "installed": False, "package": "ember-neptune"}
    assert "neptune          not installed (pip install ember-neptune)" in format_report(report)


class _KeyedPlugin:
    @hookimpl
    def ember_loggers(self) -> Iterator[LoggerSpec]:
        yield LoggerSpec(
            name="keyed",
            factory="ember.hub.tracking.csv_logger:CSVLogger",
            options={"api_key": Option("str", secret=True, env="KEYED_API_KEY")},
        )


def test_doctor_says_whether_credentials_are_set_never_their_value(
    fresh_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    get_plugin_manager().register(_KeyedPlugin(), "keyed", distribution="ember-keyed")
    monkeypatch.delenv("KEYED_API_KEY", raising=False)
    assert "api_key from $KEYED_API_KEY: not set" in format_report(collect())
    monkeypatch.setenv("KEYED_API_KEY", "value-that-must-not-show")
    report = collect()
    assert "api_key from $KEYED_API_KEY: set" in format_report(report)
    assert "value-that-must-not-show" not in format_report(report) + json.dumps(report)
