"""The registry and lookups, with plugins registered from code."""

from __future__ import annotations

import pathlib
import types

import pytest
from ember.hub import (
    DuplicateProviderError,
    LoggerSpec,
    Option,
    OptionsError,
    OptionsSchema,
    PluginManager,
    UnknownHookError,
    UnknownProviderError,
    get_plugin_manager,
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
    assert pm.get("logger", "my_logger").name == "my-logger"
    assert pm.get("logger", "MY-LOGGER").name == "my-logger"
    assert pm.get("logger", "mine").name == "my-logger"
    assert list(pm.providers("logger")) == ["csv", "my-logger"]  # csv: ember's built-in


def test_one_canonical_name_in_listings_errors_and_the_built_provider() -> None:
    pm = _manager(_plugin(LoggerSpec(name="tracker-one", factory=dict)))
    assert pm.get("logger", "TRACKER_ONE").name == "tracker-one"
    assert ("logger", "tracker-one") in pm.plugins()[-1].provides
    with pytest.raises(UnknownProviderError, match=r"Did you mean 'tracker-one'\?"):
        pm.get("logger", "tracker_on")
    # the built-in precision's record and class carry the same name
    from ember.trainer.precision import Float32Precision

    rec = get_plugin_manager().get("precision", "32_true")
    assert rec.name == Float32Precision.name == "32-true"


def test_two_spellings_of_one_name_are_a_conflict() -> None:
    pm = _manager(
        _plugin(LoggerSpec(name="same-name", factory=dict)),
        _plugin(LoggerSpec(name="same_name", factory=dict)),
    )
    with pytest.raises(DuplicateProviderError, match="named 'same-name'"):
        pm.get("logger", "same-name")


def test_records_are_hashable_and_read_only() -> None:
    rec = LoggerSpec(
        name="h",
        factory=dict,
        options={
            "tags": Option("list", ["a", "b"]),
            "extra": Option("dict", {"k": [1]}),
            "mode": Option("str", "x", choices=["x", "y"]),
        },
    )
    same = LoggerSpec(
        name="h",
        factory=dict,
        options={
            "tags": Option("list", ["a", "b"]),
            "extra": Option("dict", {"k": [1]}),
            "mode": Option("str", "x", choices=("x", "y")),
        },
    )
    assert rec == same and hash(rec) == hash(same)
    assert {rec, same, rec.with_origin("d", "1")} == {rec, rec.with_origin("d", "1")}
    assert isinstance(rec.options, OptionsSchema)
    with pytest.raises(TypeError):
        rec.options["new"] = Option()  # type: ignore[index]


def test_path_options_accept_os_pathlike(tmp_path: pathlib.Path) -> None:
    rec = LoggerSpec(name="p", factory=dict, options={"save_dir": Option("path")})
    assert rec.validate_options({"save_dir": tmp_path}) == {"save_dir": str(tmp_path)}
    assert rec.validate_options({"save_dir": "rel/dir"}) == {"save_dir": "rel/dir"}
    with pytest.raises(OptionsError, match=r"must be str or os\.PathLike, got int 3"):
        rec.validate_options({"save_dir": 3})


def test_an_option_called_name_is_refused_because_name_selects_the_provider() -> None:
    # {"name": "tb", "name": "exp"} cannot exist: such an option could never be set
    with pytest.raises(ValueError, match=r"an option cannot be called 'name'.*run_name"):
        LoggerSpec(name="tb", factory=dict, options={"name": Option("str")})


def test_wrong_typed_secret_option_error_hides_the_value() -> None:
    rec = LoggerSpec(name="s", factory=dict, options={"api_key": Option("str", secret=True)})
    with pytest.raises(OptionsError) as err:
        rec.validate_options({"api_key": 1234567890})
    assert "1234567890" not in str(err.value)
    assert "<secret>" in str(err.value)


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


def test_a_plugin_whose_registration_failed_is_not_active(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from ember.hub import PluginLoadError, reset_plugin_manager
    from ember.trainer import EmberModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset

    fired: list[str] = []

    class HalfBroken:
        @hookimpl
        def ember_on_fit_start(self, trainer) -> None:
            fired.append("on_fit_start")

        @hookimpl
        def ember_loggers(self):
            raise RuntimeError("provider hook broke")

    class Model(EmberModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    reset_plugin_manager()
    try:
        pm = get_plugin_manager()
        with pytest.raises(PluginLoadError, match="provider hook broke"):
            pm.register(HalfBroken(), name="half_broken", distribution="half-broken")
        info = pm.plugins()[-1]
        assert (info.name, info.status) == ("half_broken", "failed")
        assert "provider hook broke" in (info.error or "")
        assert not any(isinstance(p, HalfBroken) for p in pm.lifecycle_plugins())
        trainer = Trainer(default_root_dir=tmp_path, max_steps=1, enable_progress_bar=False)
        trainer.fit(Model(), DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
    finally:
        reset_plugin_manager()
    assert fired == []
    header = [line for line in capsys.readouterr().out.splitlines() if "plugins:" in line]
    assert header and "half-broken" not in header[0]
