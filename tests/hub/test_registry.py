"""The registry and lookups, with plugins registered from code."""

from __future__ import annotations

import types

import pytest
from ember.hub import (
    LoggerSpec,
    Option,
    OptionsError,
    PluginManager,
    UnknownHookError,
    UnknownProviderError,
    hookimpl,
)


def _plugin(*records: LoggerSpec) -> types.SimpleNamespace:
    def ember_loggers():
        return list(records)

    return types.SimpleNamespace(ember_loggers=hookimpl(ember_loggers))


def _manager(*plugins: object) -> PluginManager:
    pm = PluginManager(autoload=False, block=[])
    for i, p in enumerate(plugins):
        pm.register(p, name=f"p{i}", distribution=f"dist-{i}", version="1.0")
    return pm


def test_lookup_normalises_names_and_aliases() -> None:
    pm = _manager(_plugin(LoggerSpec(name="My-Logger", factory=dict, aliases=("mine",))))
    assert pm.get("logger", "my_logger").name == "my_logger"
    assert pm.get("logger", "MY-LOGGER").name == "my_logger"
    assert pm.get("logger", "mine").name == "my_logger"
    assert list(pm.providers("logger")) == ["csv", "my_logger"]  # csv: ember's built-in


def test_did_you_mean_lists_installed() -> None:
    pm = _manager(_plugin(LoggerSpec(name="tracker_one", factory=dict)))
    with pytest.raises(UnknownProviderError) as err:
        pm.get("logger", "tracker_on")
    # installed plugin distributions (ember-tensorboard ...) are listed after this, as
    # blocked: autoload is off here
    assert str(err.value).startswith(
        "no logger named 'tracker_on'. Did you mean 'tracker_one'? "
        "Installed logger providers: csv, tracker_one."
    )


def test_first_party_name_names_the_package_to_install() -> None:
    pm = _manager()
    with pytest.raises(UnknownProviderError) as err:
        pm.get("logger", "wandb")
    assert str(err.value) == (
        "no logger named 'wandb' is installed. It is provided by the package ember-wandb: "
        "pip install ember-wandb"
    )


def test_duplicate_from_code_names_both_origins() -> None:
    pm = _manager(
        _plugin(LoggerSpec(name="same", factory=dict)),
        _plugin(LoggerSpec(name="same", factory=dict)),
    )
    with pytest.raises(Exception) as err:
        pm.get("logger", "same")
    assert type(err.value).__name__ == "DuplicateProviderError"
    assert "dist-0 1.0 and dist-1 1.0" in str(err.value)


def test_unknown_hook_registered_from_code_raises_at_once() -> None:
    def ember_on_trainn_start(trainer):
        pass

    pm = PluginManager(autoload=False, block=[])
    with pytest.raises(UnknownHookError) as err:
        pm.register(types.SimpleNamespace(ember_on_trainn_start=hookimpl(ember_on_trainn_start)))
    assert "Did you mean 'ember_on_train_start'?" in str(err.value)


def test_undecorated_module_functions_are_hooks_too() -> None:
    mod = types.ModuleType("plain_plugin")
    exec(
        "def ember_loggers():\n    return []\ndef ember_on_fit_strat(trainer):\n    pass",
        mod.__dict__,
    )
    with pytest.raises(UnknownHookError):
        PluginManager(autoload=False, block=[]).register(mod)


def test_record_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"invalid provider name 'bad name!'"):
        LoggerSpec(name="bad name!", factory=dict)
    with pytest.raises(ValueError, match=r"must look like 'package.module:attribute'"):
        LoggerSpec(name="x", factory="package.module")
    with pytest.raises(ValueError, match="description must be one line"):
        LoggerSpec(name="x", factory=dict, description="a\nb")


def test_options_schema() -> None:
    spec = LoggerSpec(
        name="x",
        factory=dict,
        options={
            "project": Option("str", required=True, description="the project"),
            "every": Option("int", default=10),
            "mode": Option("str", default="online", choices=("online", "offline")),
            "key": Option("str", secret=True),
        },
    )
    assert spec.create(project="p") == {"project": "p", "every": 10, "mode": "online"}
    assert spec.secret_options() == frozenset({"key"})
    with pytest.raises(OptionsError, match=r"logger 'x' needs option 'project' \(the project\)"):
        spec.create()
    with pytest.raises(OptionsError, match=r"option 'every' of 'x' must be int, got str '3'"):
        spec.create(project="p", every="3")
    with pytest.raises(OptionsError, match=r"option 'every' of 'x' must be int, got bool True"):
        spec.create(project="p", every=True)
    with pytest.raises(OptionsError, match=r"must be one of 'online', 'offline'; got 'cloud'"):
        spec.create(project="p", mode="cloud")


def test_factory_import_string_is_resolved_on_create() -> None:
    spec = LoggerSpec(name="od", factory="collections:OrderedDict")
    assert type(spec.create()).__name__ == "OrderedDict"


def test_create_from_mapping_needs_name() -> None:
    pm = _manager(_plugin(LoggerSpec(name="x", factory=dict, allow_extra_options=True)))
    assert pm.create("logger", {"name": "x", "a": 1}) == {"a": 1}
    with pytest.raises(UnknownProviderError, match="needs a 'name' key"):
        pm.create("logger", {"a": 1})


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown provider kind 'loggers'"):
        _manager().get("loggers", "csv")
