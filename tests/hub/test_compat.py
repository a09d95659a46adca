"""A plugin declares the ember versions it supports through its distribution's dependency
on ember; the hub marks, warns about or (strict mode) skips one made for other versions.
The fixture distributions are really installed with pip, so the verdicts come from real
``Requires-Dist`` metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ember.hub.compat import (
    COMPATIBLE,
    INCOMPATIBLE,
    UNDECLARED,
    check_requirements,
    installed_ember_version,
)
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
OLD = "ember-fixture-compat-old 1.0.0"


def _by_name(payload: dict) -> dict[str, dict]:
    return {p["name"]: p for p in payload["plugins"]}


# ---------------------------------------------------------------------- the verdict itself
@pytest.mark.parametrize(
    ("requires", "status", "requirement"),
    [
        (["ember>=0.1,<0.2"], COMPATIBLE, "ember<0.2,>=0.1"),
        (["Ember >= 0.1"], COMPATIBLE, "ember>=0.1"),
        (["ember>=0.2,<0.3"], INCOMPATIBLE, "ember<0.3,>=0.2"),
        (["ember<0.1"], INCOMPATIBLE, "ember<0.1"),
        # every ember requirement applies
        (["ember>=0.1", "ember!=0.1.0"], INCOMPATIBLE, "ember!=0.1.0,>=0.1"),
        # a requirement behind an extra or a marker that does not hold here does not count
        (["ember>=0.1", 'ember>=99; extra == "test"'], COMPATIBLE, "ember>=0.1"),
        (['ember<0.1; python_version < "3"', "ember>=0.1"], COMPATIBLE, "ember>=0.1"),
        (["torch>=2.1", "pluggy"], UNDECLARED, None),
        ([], UNDECLARED, None),
        (None, UNDECLARED, None),
        (["ember"], UNDECLARED, "ember"),
        (["ember[yaml]"], UNDECLARED, "ember"),
        # a line pip could not have installed names nothing
        (["ember>=>0.1", "ember>=0.1"], COMPATIBLE, "ember>=0.1"),
    ],
)
def test_verdict(requires, status, requirement) -> None:
    verdict = check_requirements("ember-x", "1.0", requires, "0.1.0")
    assert (verdict.status, verdict.requirement) == (status, requirement)
    assert (verdict.reason is None) == (status == COMPATIBLE)


def test_incompatible_reason_names_both_versions_and_the_way_out() -> None:
    verdict = check_requirements("ember-x", "2.0", ["ember>=0.2,<0.3"], "0.1.0")
    assert verdict.reason == (
        "installed ember 0.1.0 does not satisfy ember-x 2.0's requirement ember<0.3,>=0.2. "
        "Install a release of ember-x made for ember 0.1.0, or an ember that matches "
        "ember<0.3,>=0.2"
    )


def test_undeclared_reasons_say_what_the_author_should_add() -> None:
    none = check_requirements("ember-x", "1.0", ["pluggy"], "0.1.0")
    assert "its dependencies do not name ember" in none.reason
    assert "'ember>=0.1,<0.2'" in none.reason
    bare = check_requirements("ember-x", "1.0", ["ember"], "0.1.0")
    assert "depends on ember without a version range" in bare.reason


def test_a_development_release_of_ember_is_judged_by_its_version() -> None:
    assert check_requirements("x", "1", ["ember>=0.1"], "0.2.0.dev3").status == COMPATIBLE
    assert check_requirements("x", "1", ["ember<0.2"], "0.2.0.dev3").status == INCOMPATIBLE


# ---------------------------------------------------------------------- through discovery
@pytest.fixture(scope="module")
def compat_plugins(installed_plugins) -> list[Path]:
    return [installed_plugins[n] for n in ("compat_ok", "compat_old", "compat_none")]


def test_plugins_json_reports_each_verdict(compat_plugins, ember_plugins_json) -> None:
    plugins = _by_name(ember_plugins_json(plugins=compat_plugins))
    assert plugins["builtins"]["compatibility"] is None  # ember's own
    ok = plugins["fixture_compat_ok"]
    assert ok["status"] == "active"
    assert ok["compatibility"] == {"status": "compatible", "requires": "ember>=0.1", "reason": None}
    old = plugins["fixture_compat_old"]
    assert old["status"] == "active"  # not strict: loaded anyway
    assert old["compatibility"]["status"] == "incompatible"
    assert old["compatibility"]["requires"] == "ember<0.1,>=0.0.1"
    assert old["compatibility"]["reason"].startswith(
        f"installed ember {installed_ember_version()} does not satisfy {OLD}'s requirement"
    )
    none = plugins["fixture_compat_none"]
    assert none["status"] == "active"
    assert none["compatibility"]["status"] == "undeclared"
    assert none["compatibility"]["requires"] is None


def test_plugins_table_marks_incompatible_and_undeclared(compat_plugins, ember_cli) -> None:
    proc = ember_cli("plugins", plugins=compat_plugins)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "EMBER", "PROVIDES"]
    row = {ln.split()[0]: ln for ln in lines[1:]}
    cells = {name: [c.strip() for c in ln.split("  ") if c.strip()] for name, ln in row.items()}
    assert cells["fixture_compat_ok"][3:] == ["active", ">=0.1", "logger: compat_ok_logger"]
    assert cells["fixture_compat_old"][3:] == [
        "active",
        "INCOMPATIBLE (>=0.0.1,<0.1)",
        "logger: compat_old_logger",
    ]
    assert cells["fixture_compat_none"][3:5] == ["active", "undeclared"]
    assert cells["builtins"][4] == "-"
    version = installed_ember_version()
    assert proc.stderr.splitlines() == [  # in the table's order
        "warning: plugin 'fixture_compat_none': no declared compatibility: "
        "ember-fixture-compat-none 1.0.0 declares no compatible ember versions: its "
        "dependencies do not name ember. Its author should add a range such as "
        "'ember>=0.1,<0.2' to [project] dependencies",
        f"warning: plugin 'fixture_compat_old' is incompatible: installed ember {version} "
        f"does not satisfy {OLD}'s requirement ember<0.1,>=0.0.1. Install a release of "
        f"ember-fixture-compat-old made for ember {version}, or an ember that matches "
        "ember<0.1,>=0.0.1. It was loaded anyway; EMBER_STRICT_PLUGINS=1 skips it",
    ]


def test_loading_an_incompatible_plugin_warns_and_it_still_works(compat_plugins, ember_cli):
    code = (
        "import warnings, json\n"
        "from ember.hub import IncompatiblePluginWarning, get_plugin_manager\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    pm = get_plugin_manager()\n"
        "print(json.dumps({'warnings': [(w.category.__name__, str(w.message)) for w in caught],\n"
        "    'spec': pm.get('logger', 'compat_old_logger').distribution}))"
    )
    proc = ember_cli(code=code, plugins=compat_plugins)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["spec"] == "ember-fixture-compat-old"
    assert len(out["warnings"]) == 1  # neither the compatible nor the undeclared one warns
    category, message = out["warnings"][0]
    assert category == "IncompatiblePluginWarning"
    assert message.startswith("plugin 'fixture_compat_old' is incompatible: installed ember")
    assert message.endswith("It is loaded anyway; EMBER_STRICT_PLUGINS=1 skips it")


def test_strict_mode_skips_an_incompatible_plugin_without_importing_it(
    compat_plugins, ember_cli
) -> None:
    strict = {"EMBER_STRICT_PLUGINS": "1"}
    proc = ember_cli("plugins", "--json", plugins=compat_plugins, env=strict)
    assert proc.returncode == 0, proc.stderr
    plugins = _by_name(json.loads(proc.stdout))
    old = plugins["fixture_compat_old"]
    assert old["status"] == "incompatible"
    assert old["provides"] == []
    assert old["error"] == old["compatibility"]["reason"] + " (skipped: EMBER_STRICT_PLUGINS=1)"
    # strict mode does not punish a plugin that merely declares nothing
    assert plugins["fixture_compat_none"]["status"] == "active"
    assert plugins["fixture_compat_ok"]["status"] == "active"

    table = ember_cli("plugins", plugins=compat_plugins, env=strict)
    assert table.returncode == 0
    row = next(ln for ln in table.stdout.splitlines() if ln.startswith("fixture_compat_old"))
    assert "incompatible" in row and "(skipped: EMBER_STRICT_PLUGINS=1)" in row
    assert "error: plugin 'fixture_compat_old' skipped: installed ember" in table.stderr

    code = (
        "import sys\n"
        "from ember.hub import UnknownProviderError, get_plugin_manager\n"
        "try:\n    get_plugin_manager().get('logger', 'compat_old_logger')\n"
        "except UnknownProviderError as e:\n    print('unknown')\n"
        "print('ember_fixture_compat_old' in sys.modules)"
    )
    proc = ember_cli(code=code, plugins=compat_plugins, env=strict)
    assert proc.stdout.split() == ["unknown", "False"], proc.stderr


@pytest.mark.slow  # two `ember doctor` processes, each importing torch (about 12 s)
def test_doctor_reports_incompatible_as_a_problem_and_undeclared_as_a_warning(
    installed_plugins, ember_cli
) -> None:
    proc = ember_cli("doctor", plugins=[installed_plugins["compat_none"]])
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a warning, not a problem
    assert "    warning: no declared compatibility: ember-fixture-compat-none 1.0.0" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "ok"

    proc = ember_cli(
        "doctor", plugins=[installed_plugins["compat_ok"], installed_plugins["compat_old"]]
    )
    assert proc.returncode == 1
    assert "IncompatiblePluginWarning" not in proc.stderr  # said once, in the report
    lines = proc.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.strip().startswith("fixture_compat_old"))
    assert lines[at + 1].startswith("    INCOMPATIBLE: installed ember ")
    ok = next(i for i, ln in enumerate(lines) if ln.strip().startswith("fixture_compat_ok"))
    assert not lines[ok + 1].startswith("    ")  # a compatible plugin gets no remark
    assert lines[-1] == "PROBLEMS FOUND (see above)"


# ---------------------------------------------------------------------- first-party plugins
FIRST_PARTY = sorted((ROOT / "plugins").glob("*/pyproject.toml"))


@pytest.mark.parametrize("pyproject", FIRST_PARTY, ids=lambda p: p.parent.name)
def test_first_party_plugin_declares_a_bounded_range_holding_this_ember(pyproject: Path) -> None:
    project = tomllib.loads(pyproject.read_text())["project"]
    ember = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "ember"]
    assert len(ember) == 1, f"{pyproject}: depend on ember once, with a range"
    spec = ember[0].specifier
    assert any(s.operator in (">=", "~=") for s in spec), f"{pyproject}: no lower bound"
    assert any(s.operator in ("<", "~=") for s in spec), (
        f"{pyproject}: no upper bound; pin below the next minor release ('ember>=0.1,<0.2')"
    )
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert spec.contains(Version(root), prereleases=True), (
        f"{pyproject}: {ember[0]} excludes this ember ({root}); widen the range after "
        "checking the plugin against it"
    )


def test_installed_first_party_plugins_are_compatible(ember_plugins_json) -> None:
    plugins = ember_plugins_json()["plugins"]
    first_party = [p for p in plugins if (p["distribution"] or "").startswith("ember-")]
    assert {p["distribution"] for p in first_party} >= {
        f"ember-{p.parent.name}" for p in FIRST_PARTY
    }, "run `bash scripts/setup_env.sh` to install every first-party plugin"
    for p in first_party:
        assert p["compatibility"]["status"] == "compatible", p
