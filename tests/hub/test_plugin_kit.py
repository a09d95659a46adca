"""The plugin author's kit: ``ember plugin new`` (names, files, pins, never overwriting),
the install helper, the one-line messages of a suite missing what it needs, and, in one
slow test, a scaffolded plugin of every kind installed and passing its own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest
import tomllib
from ember.hub import __version__
from ember.hub.cli import main
from ember.hub.scaffold import KINDS, ScaffoldError, ember_requirement, scaffold, validate_name
from ember.hub.testing import fresh_venv, install_distribution

RUFF = Path(sys.executable).with_name("ruff")


def test_requirement_pins_the_compatible_versions() -> None:
    assert ember_requirement("0.1.0") == "ember>=0.1,<0.2"
    assert ember_requirement("0.12.3rc1") == "ember>=0.12,<0.13"
    assert ember_requirement("1.4.2") == "ember>=1.4,<2"
    assert ember_requirement("2") == "ember>=2.0,<3"


def test_names_derive_from_one_rule() -> None:
    names = validate_name("my-thing2", "callback")
    assert (names.distribution, names.package, names.camel) == (
        "ember-my-thing2",
        "ember_my_thing2",
        "MyThing2",
    )


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("My_Thing", "logger", "(e.g. 'my-thing')"),
        ("2fast", "logger", "starting with a letter"),
        ("double--hyphen", "logger", "single hyphens"),
        ("ember-foo", "logger", "leave out the 'ember-' prefix"),
        ("class", "callback", "Python keyword"),
        ("csv", "logger", "a built-in provider"),
        ("gpu", "accelerator", "a built-in provider"),
        ("bf16-mixed", "precision", "a built-in provider"),
        ("single-device", "strategy", "a built-in provider"),
        ("early-stopping", "callback", "a built-in provider"),
        ("tensorboard", "logger", "ember-tensorboard"),
        ("mlflow", "callback", "ember's first-party plugins"),
        ("foo", "tracker", "unknown kind 'tracker'"),
    ],
)
def test_bad_names_are_refused_with_the_reason(name: str, kind: str, message: str) -> None:
    with pytest.raises(ScaffoldError) as info:
        validate_name(name, kind)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    existing = tmp_path / "ember-mine"
    existing.mkdir()
    (existing / "work.py").write_text("precious = True\n")
    with pytest.raises(ScaffoldError, match="never overwrites"):
        scaffold("mine", "logger", tmp_path)
    assert [p.name for p in existing.iterdir()] == ["work.py"]


def test_plugin_new_writes_the_project_and_prints_next_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["plugin", "new", "jl", "--kind", "logger", "--dir", str(tmp_path), "--license", "MIT"]
    )
    out = capsys.readouterr().out
    assert code == 0
    root = tmp_path / "ember-jl"
    assert f"cd {root}" in out and 'pip install -e ".[test]"' in out and "pytest" in out
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ember-jl"
    assert project["dependencies"] == [ember_requirement(__version__)]
    assert project["entry-points"]["ember"] == {"jl": "ember_jl"}
    assert project["license"] == "MIT"
    assert (root / "LICENSE").read_text().startswith("MIT License")
    readme = (root / "README.md").read_text()
    assert "pip install ember-jl" in readme and '[[loggers]]\nname = "jl"' in readme
    assert "{{" not in "".join(p.read_text() for p in root.rglob("*") if p.is_file())


def test_plugin_new_reports_a_bad_name_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plugin", "new", "cpu", "--kind", "accelerator", "--dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ember plugin new: an accelerator named 'cpu' exists already")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("license", ["Apache-2.0", "BSD-3-Clause", "Proprietary"])
def test_license_choice(tmp_path: Path, license: str) -> None:
    root = scaffold("lic", "callback", tmp_path, license=license, author="Ada")
    text = (root / "LICENSE").read_text()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    first = {"Apache-2.0": "Apache License", "BSD-3-Clause": "BSD 3-Clause License"}
    assert first.get(license, "Copyright (c)") in text.splitlines()[0]
    if license == "Proprietary":
        assert project["classifiers"] == ["Private :: Do Not Upload"]
        assert "Ada" in text


def test_every_kind_is_lint_clean(tmp_path: Path) -> None:
    """What a newcomer starts from passes ruff's checks and formatting as generated."""
    roots = [scaffold(f"lint-{kind}", kind, tmp_path) for kind in KINDS]
    for root in roots:
        for args in (
            ["check", "--select", "E,F,W,I,B,UP,SIM,RUF", "--no-cache", "."],
            ["format", "--check", "--no-cache", "."],
        ):
            proc = subprocess.run(
                [str(RUFF), *args], cwd=root, capture_output=True, text=True, timeout=120
            )
            assert proc.returncode == 0, f"{root.name}: ruff {args[0]}\n{proc.stdout}{proc.stderr}"


def test_install_distribution_discovers_through_entry_points(tmp_path: Path) -> None:
    root = scaffold("kit-probe", "logger", tmp_path / "src")
    installed = install_distribution(root, tmp_path / "site")
    assert (installed.name, installed.version) == ("ember-kit-probe", "0.1.0")
    assert installed.entry_points == ("kit-probe",)
    assert not (root / "build").exists() and not list(root.glob("*.egg-info"))
    manager = installed.plugin_manager()
    (info,) = installed.plugins(manager)
    assert info.provides == [("logger", "kit-probe")]
    assert str(installed.site) not in sys.path

    listed = subprocess.run(
        [sys.executable, "-m", "ember.hub", "plugins", "--json"],
        env=installed.environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["kit-probe"]["distribution"] == "ember-kit-probe"

    (entry_points,) = installed.site.glob("*.dist-info/entry_points.txt")
    entry_points.write_text("[ember]\nkit-probe = ember_kit_probe_missing\n")
    with pytest.raises(AssertionError, match=r"ModuleNotFoundError.*ember_kit_probe_missing"):
        installed.plugin_manager()


def _probe_project(folder: Path) -> Path:
    """A tiny project with no dependencies: ``kit-venv-probe``."""
    folder.mkdir()
    (folder / "kit_venv_probe.py").write_text("VALUE = 1\n")
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "kit-venv-probe"
            version = "0.1"

            [tool.setuptools]
            py-modules = ["kit_venv_probe"]
            """
        )
    )
    return folder


def test_fresh_venvs_copied_from_one_cache_are_each_their_own(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = fresh_venv(tmp_path / "first", pins=[], cache=cache)
    second = fresh_venv(tmp_path / "second", pins=[], cache=cache)
    (base,) = cache.iterdir()
    site = "lib/python*/site-packages/pip/__init__.py"
    # a copy of hard links, not a second install
    assert next(second.path.glob(site)).stat().st_ino == next(base.glob(site)).stat().st_ino
    assert (first.path / "bin" / "pip").read_text().startswith(f"#!{first.path}/bin/python")
    assert second.constraints.read_text() == ""

    project = _probe_project(tmp_path / "probe")
    second.pip_install(project)
    assert sorted(p.name for p in project.iterdir()) == ["kit_venv_probe.py", "pyproject.toml"]
    assert "kit-venv-probe" in second.distributions()
    assert "kit-venv-probe" not in first.distributions()
    # the copied pip script runs its own environment's pip, not the cache's
    shown = subprocess.run(
        [first.path / "bin" / "pip", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"from {first.path}/lib/" in shown, shown
    third = fresh_venv(tmp_path / "third", pins=[], cache=cache)
    assert "kit-venv-probe" not in third.distributions(), "the cache was changed"

    with pytest.raises(RuntimeError, match=r"pip could not install .*no-such-dist"):
        third.pip_install("no-such-dist-anywhere==0.0.1", "--no-index")


def test_a_suite_missing_what_it_needs_says_so_in_one_line(tmp_path: Path) -> None:
    test_file = tmp_path / "test_incomplete.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import pytest
            from ember.hub.testing import LoggerConformance
            from ember.trainer.testing import CallbackConformance, PrecisionConformance

            class TestNoLogger(LoggerConformance):
                pass

            class TestNoReadBack(LoggerConformance):
                @pytest.fixture
                def make_logger(self):
                    from ember.hub.tracking.csv_logger import CSVLogger
                    return CSVLogger

            class TestNoPrecision(PrecisionConformance):
                pass

            class TestNoCallback(CallbackConformance):
                pass
            """
        )
    )
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf"),
            *("-k", "metrics_round_trip or trains_one_epoch or hook_names_are_hooks"),
            str(test_file),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "fixture 'make_logger' not found" not in out
    lines = out.splitlines()
    for expected in (
        "TestNoLogger must define a make_logger fixture: return a zero-argument callable",
        "TestNoReadBack must define read_back(self, logger, run) -> ReadBack",
        "TestNoPrecision must define precision: the name of the precision mode under test",
        "TestNoCallback must define callback: the callback's provider name",
    ):
        assert any(expected in line for line in lines), (expected, out[-3000:])


def _site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


@pytest.mark.slow
def test_scaffolded_plugins_of_every_kind_install_and_pass_their_own_tests(
    tmp_path: Path,
) -> None:
    """One plugin of each kind, scaffolded, installed (editable) into a fresh environment
    that sees this one's packages, listed by ``ember plugins`` with its distribution and
    version, and its own generated tests run there and pass."""
    started = time.monotonic()
    roots = [scaffold(f"kit-{kind}", kind, tmp_path / "src") for kind in KINDS]
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300
    )
    python = str(venv / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # this environment's packages (torch, ember, pip, pytest) behind the new one's own
    Path(purelib, "parent_env.pth").write_text(
        f"import site; site.addsitedir({_site_packages()!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBER_", "PYTHON"))}
    env["PIP_CONSTRAINT"] = ""
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
        ]
        + [arg for root in roots for arg in ("-e", str(root))],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    installed = time.monotonic()

    listed = subprocess.run(
        [python, "-m", "ember.hub", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    for kind in KINDS:
        entry = plugins[f"kit-{kind}"]
        assert (entry["distribution"], entry["version"], entry["status"]) == (
            f"ember-kit-{kind}",
            "0.1.0",
            "active",
        ), entry
        assert entry["provides"] == [{"kind": kind, "name": f"kit-{kind}"}]

    tests = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
            *(str(root / "tests") for root in roots),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-3000:]
    summary = tests.stdout.strip().splitlines()[-1]
    assert " passed" in summary and " failed" not in summary and " error" not in summary
    done = time.monotonic()
    print(
        f"\nscaffold+install {installed - started:.1f}s, listing and own tests "
        f"{done - installed:.1f}s: {summary}"
    )


def test_the_guide_counts_the_checks_of_each_suite() -> None:
    """docs/testing-plugins.md says how many checks each suite holds; keep it true."""
    from ember.hub.testing import LoggerConformance
    from ember.trainer import testing

    docs = (Path(__file__).resolve().parents[2] / "docs" / "testing-plugins.md").read_text()
    suites = [
        LoggerConformance,
        testing.AcceleratorConformance,
        testing.PrecisionConformance,
        testing.StrategyConformance,
        testing.CallbackConformance,
    ]
    for suite in suites:
        count = len([name for name in dir(suite) if name.startswith("test_")])
        row = next(line for line in docs.splitlines() if f".{suite.__name__}`" in line)
        assert f"| {count} " in row, (suite.__name__, count, row)
