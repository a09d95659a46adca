"""`Option(env=...)`: an option read from the environment when it is not given."""

from __future__ import annotations

import pytest
from ember.hub import LoggerSpec, Option, OptionsError

SPEC = LoggerSpec(
    name="envy",
    factory="ember.hub.tracking.csv_logger:CSVLogger",
    options={
        "api_key": Option("str", required=True, secret=True, env="ENVY_API_KEY"),
        "retries": Option("int", 3, env="ENVY_RETRIES"),
        "offline": Option("bool", False, env="ENVY_OFFLINE"),
    },
)


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVY_API_KEY", "abcdef123")
    monkeypatch.setenv("ENVY_RETRIES", "7")
    monkeypatch.setenv("ENVY_OFFLINE", "true")
    assert SPEC.env_options() == {"api_key": "abcdef123", "retries": 7, "offline": True}
    assert SPEC.validate_options({}) == {"api_key": "abcdef123", "retries": 7, "offline": True}
    # a value given explicitly wins over the environment
    assert SPEC.validate_options({"retries": 1})["retries"] == 1


def test_a_missing_required_option_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVY_API_KEY", raising=False)
    with pytest.raises(OptionsError, match="or set the environment variable ENVY_API_KEY"):
        SPEC.validate_options({})


def test_a_badly_typed_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVY_API_KEY", "abcdef123")
    monkeypatch.setenv("ENVY_RETRIES", "many")
    with pytest.raises(OptionsError, match=r"ENVY_RETRIES='many' \(option 'retries'\) must be int"):
        SPEC.validate_options({})
