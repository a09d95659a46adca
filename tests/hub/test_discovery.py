"""Discovery through real entry points of really installed fixture distributions."""

from __future__ import annotations

import json

import pytest
from ember.hub import PluginManager, PluginSettingsError


def _by_name(payload: dict) -> dict[str, dict]:
    return {p["name"]: p for p in payload["plugins"]}


def test_builtins_come_through_the_core_distributions_entry_point(ember_plugins_json) -> None:
    plugins = _by_name(ember_plugins_json())
    builtins = plugins["builtins"]
    assert builtins["distribution"] == "ember"
    assert builtins["status"] == "active"
    assert builtins["entry_point"] == "builtins = ember.trainer.builtins"


def test_installed_plugin_is_listed_with_distribution_version_and_provides(
    installed_plugins, ember_plugins_json
):
    payload = ember_plugins_json(plugins=[installed_plugins["good"]])
    good = _by_name(payload)["fixture_good"]
    assert good["distribution"] == "ember-fixture-good"
    assert good["version"] == "1.2.3"
    assert good["status"] == "active"
    assert {"kind": "logger", "name": "fixture_logger"} in good["provides"]
    assert {"kind": "callback", "name": "fixture_callback"} in good["provides"]
    assert good["hooks"] == ["ember_on_fit_start"]


def test_broken_plugin_is_reported_failed_and_the_others_still_load(installed_plugins, ember_cli):
    proc = ember_cli(
        "plugins", "--json", plugins=[installed_plugins["good"], installed_plugins["broken"]]
    )
    assert proc.returncode == 0
    plugins = _by_name(json.loads(proc.stdout))
    broken = plugins["fixture_broken"]
    assert broken["status"] == "failed"
    assert broken["distribution"] == "ember-fixture-broken"
    assert broken["entry_point"] == "fixture_broken = ember_fixture_broken"
    assert broken["error"] == (
        "ImportError: ember_fixture_broken needs the package 'not-installed-sdk'"
    )
    assert plugins["fixture_good"]["status"] == "active"


def test_broken_plugin_in_the_table(installed_plugins, ember_cli):
    proc = ember_cli("plugins", plugins=[installed_plugins["broken"]])
    assert proc.returncode == 0
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("fixture_broken"))
    assert "ember-fixture-broken" in line and "0.4.0" in line and "failed" in line
    assert "needs the package 'not-installed-sdk'" in line


def test_strict_mode_makes_a_broken_plugin_fatal(installed_plugins, ember_cli):
    proc = ember_cli(
        "plugins", plugins=[installed_plugins["broken"]], env={"EMBER_STRICT_PLUGINS": "1"}
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "ember: plugin 'fixture_broken' from distribution 'ember-fixture-broken' failed to load "
        "(entry point 'fixture_broken = ember_fixture_broken'): ImportError: "
        "ember_fixture_broken needs the package 'not-installed-sdk'\n"
        "EMBER_STRICT_PLUGINS=1 makes this fatal; fix or uninstall the plugin, or block it "
        "with EMBER_BLOCK_PLUGINS=fixture_broken"
    )


def test_blocked_plugin_is_listed_and_never_imported(installed_plugins, ember_cli):
    code = (
        "import sys, json; from ember.hub import get_plugin_manager\n"
        "pm = get_plugin_manager()\n"
        "print(json.dumps({'status': [i.status for i in pm.plugins() if i.name == 'fixture_good'],"
        " 'imported': 'ember_fixture_good' in sys.modules}))"
    )
    for block in ("fixture_good", "ember-fixture-good", "fixture-good", "other,fixture_good"):
        proc = ember_cli(
            code=code, plugins=[installed_plugins["good"]], env={"EMBER_BLOCK_PLUGINS": block}
        )
        assert proc.stdout.strip() == '{"status": ["blocked"], "imported": false}', block


def test_blocked_broken_plugin_is_not_fatal_under_strict(installed_plugins, ember_cli):
    proc = ember_cli(
        "plugins",
        plugins=[installed_plugins["broken"]],
        env={"EMBER_STRICT_PLUGINS": "1", "EMBER_BLOCK_PLUGINS": "fixture_broken"},
    )
    assert proc.returncode == 0
    assert "blocked" in proc.stdout


def test_autoload_off_keeps_builtins_and_skips_third_party(installed_plugins, ember_plugins_json):
    payload = ember_plugins_json(
        plugins=[installed_plugins["good"], installed_plugins["broken"]],
        env={"EMBER_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    plugins = _by_name(payload)
    assert plugins["builtins"]["status"] == "active"
    for name in ("fixture_good", "fixture_broken"):
        assert plugins[name]["status"] == "blocked"
        assert plugins[name]["error"] == "autoload disabled (EMBER_DISABLE_PLUGIN_AUTOLOAD=1)"


def test_duplicate_name_is_an_error_naming_both_distributions(installed_plugins, ember_cli):
    proc = ember_cli("plugins", plugins=[installed_plugins["good"], installed_plugins["dup"]])
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: two plugins provide a logger named 'fixture-logger': ember-fixture-dup 2.0.0 "
        "and ember-fixture-good 1.2.3. Uninstall one of them, or block one with "
        "EMBER_BLOCK_PLUGINS=<plugin name>."
    )
    code = (
        "from ember.hub import get_plugin_manager\n"
        "try:\n    get_plugin_manager().get('logger', 'csv')\n"
        "except Exception as e:\n    print(type(e).__name__)"
    )
    proc = ember_cli(code=code, plugins=[installed_plugins["good"], installed_plugins["dup"]])
    assert proc.stdout.strip() == "DuplicateProviderError"


def test_implementing_an_unknown_hook_fails_the_plugin(installed_plugins, ember_plugins_json):
    plugins = _by_name(ember_plugins_json(plugins=[installed_plugins["typo"]]))
    typo = plugins["fixture_typo"]
    assert typo["status"] == "failed"
    assert typo["error"] == (
        "UnknownHookError: plugin 'fixture_typo' implements 'ember_on_trian_start', which is "
        "not an ember hook. Did you mean 'ember_on_train_start'? Run `ember hooks` for the list."
    )


def test_lookup_by_name_builds_lazily_and_checks_options(installed_plugins, ember_cli):
    code = (
        "import sys\n"
        "from ember.hub import get_plugin_manager\n"
        "pm = get_plugin_manager()\n"
        "rec = pm.get('logger', 'Fixture-Logger')\n"
        "print(rec.distribution, rec.version, 'ember_fixture_good.heavy' in sys.modules)\n"
        "obj = pm.create('logger', {'name': 'fixture_logger', 'project': 'p'})\n"
        "print(type(obj).__name__, obj.project, 'ember_fixture_good.heavy' in sys.modules)\n"
        "try:\n    pm.create('logger', 'fixture_logger', projct='x')\n"
        "except Exception as e:\n    print(e)\n"
    )
    proc = ember_cli(code=code, plugins=[installed_plugins["good"]])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "ember-fixture-good 1.2.3 False",
        "FixtureLogger p True",
        "unknown option 'projct' for logger 'fixture_logger'; did you mean 'project'? "
        "Known options: api_key, project",
    ]


def test_plugin_lifecycle_hook_is_offered_to_the_trainer(installed_plugins, ember_cli):
    code = (
        "from ember.hub import get_plugin_manager, Lifecycle\n"
        "import ember_fixture_good as g\n"
        "hooks = Lifecycle(plugins=get_plugin_manager().lifecycle_plugins())\n"
        "hooks.on_fit_start(trainer='T', module='M')\n"
        "print(g.FIT_STARTS, hooks.implemented('on_fit_start'), hooks.implemented('on_fit_end'))"
    )
    proc = ember_cli(code=code, plugins=[installed_plugins["good"]])
    assert proc.stdout.strip() == "['T'] True False", proc.stderr


def test_no_heavy_module_is_imported_by_the_hub_or_the_listing(installed_plugins, ember_cli):
    heavy = (
        "torch",
        "wandb",
        "comet_ml",
        "mlflow",
        "tensorboard",
        "numpy",
        "ember.trainer.trainer",
    )
    code = (
        "import sys\n"
        "import ember.hub\n"
        "from ember.hub.cli import main\n"
        "after_import = [m for m in HEAVY if m in sys.modules]\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['plugins'])\n"
        "    main(['plugins', '--json'])\n"
        "after_listing = [m for m in HEAVY if m in sys.modules]\n"
        "print(after_import, after_listing)\n"
    ).replace("HEAVY", repr(heavy))
    proc = ember_cli(code=code, plugins=[installed_plugins["good"]])
    assert proc.stdout.strip() == "[] []", proc.stderr


def test_version_flag(ember_cli):
    from ember.hub import __version__

    proc = ember_cli("--version")
    assert proc.stdout.strip() == f"ember {__version__}"


def test_a_closed_pipe_ends_quietly(installed_plugins):
    """`ember ... | head`: the reader is gone before ember writes; no traceback."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ember.hub", "hooks"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EMBER_DISABLE_PLUGIN_AUTOLOAD", "maybe"),
        ("EMBER_STRICT_PLUGINS", "2"),
        ("EMBER_STRICT_PLUGINS", "enabled"),
    ],
)
def test_a_yes_no_setting_with_another_value_is_rejected(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(PluginSettingsError) as err:
        PluginManager()
    assert str(err.value) == (
        f"{variable}={value!r} is not a yes/no value: set {variable}=1 (or true, yes, on) to "
        f"turn it on, {variable}=0 (or false, no, off) or leave it unset to turn it off"
    )


@pytest.mark.parametrize("value", ["1", "TRUE", " yes ", "on", "0", "false", "No", "off", ""])
def test_yes_no_settings_accept_the_usual_spellings(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBER_STRICT_PLUGINS", value)
    monkeypatch.setenv("EMBER_DISABLE_PLUGIN_AUTOLOAD", value)
    pm = PluginManager()
    on = value.strip().lower() in ("1", "true", "yes", "on")
    assert pm.strict is on and pm.autoload is not on


def test_a_pattern_in_the_block_list_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_BLOCK_PLUGINS", "*")
    with pytest.raises(PluginSettingsError, match="set EMBER_DISABLE_PLUGIN_AUTOLOAD=1"):
        PluginManager()


def test_a_blocked_name_matching_no_plugin_warns(installed_plugins, ember_cli) -> None:
    proc = ember_cli(
        "plugins",
        plugins=[installed_plugins["good"]],
        env={"EMBER_BLOCK_PLUGINS": "fixture_god,fixture_good"},
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "EMBER_BLOCK_PLUGINS names 'fixture_god', which matches no installed plugin, so it "
        "blocks nothing; did you mean 'fixture_good'?"
    ) in proc.stderr
    assert "'fixture_good', which" not in proc.stderr


def test_the_cli_reports_a_bad_setting_in_one_line(ember_cli) -> None:
    proc = ember_cli("plugins", env={"EMBER_STRICT_PLUGINS": "2"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("ember: EMBER_STRICT_PLUGINS='2' is not a yes/no value")
    assert "Traceback" not in proc.stderr
