"""Overrides (`--set`, environment variables), YAML run files and `--print-config`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bad_cases import GOOD
from config_helpers import REPO_ROOT
from ember.hub import LoggerSpec, Option, get_plugin_manager, hookimpl
from ember.hub.config import read_run_file
from ember.hub.tracking.csv_logger import CSVLogger

BASE = GOOD + '[[loggers]]\nname = "csv"\n'


def _printed(ember_main, path: Path, *args: str) -> dict:
    code, out, err = ember_main("fit", "--config", str(path), "--print-config", *args)
    assert code == 0, err
    printed = path.parent / "printed.toml"
    printed.write_text(out)
    return read_run_file(printed)


@pytest.fixture
def run_file(tmp_path: Path, in_repo: Path) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(BASE)
    return path


def test_set_is_typed_by_the_schema(run_file: Path, ember_main) -> None:
    config = _printed(
        ember_main,
        run_file,
        "--set",
        "trainer.max_epochs=3",
        "--set",
        "trainer.fast_dev_run=true",
        "--set",
        "trainer.default_root_dir=2024",
        "--set",
        "trainer.max_time={hours = 1}",
        "--set",
        "model.init_args.lr=1e-2",
        "--set",
        "loggers[0].save_dir=123",
    )
    trainer = config["trainer"]
    assert trainer["max_epochs"] == 3
    assert trainer["fast_dev_run"] is True
    # a string-only flag keeps the text, though it reads as a number
    assert trainer["default_root_dir"] == "2024"
    assert trainer["max_time"] == {"hours": 1}
    assert config["model"]["init_args"] == {"lr": 0.01}
    # a path option keeps the text too
    assert config["loggers"] == [{"name": "csv", "save_dir": "123"}]


def test_environment_then_set(run_file: Path, ember_main, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_MAX_EPOCHS", "7")
    monkeypatch.setenv("EMBER_ACCELERATOR", "cpu")
    monkeypatch.setenv("EMBER_SEED", "11")
    config = _printed(ember_main, run_file)
    assert config["trainer"]["max_epochs"] == 7
    assert config["trainer"]["accelerator"] == "cpu"
    assert config["seed_everything"] == 11
    config = _printed(ember_main, run_file, "--set", "trainer.max_epochs=2")
    assert config["trainer"]["max_epochs"] == 2


def test_print_config_resolves_names_and_trains_nothing(
    tmp_path: Path, in_repo: Path, ember_main
) -> None:
    path = tmp_path / "run.toml"
    root = tmp_path / "out"
    path.write_text(
        f"[trainer]\nprecision = '32'\ndefault_root_dir = '{root}'\n"
        + GOOD
        + "[[callbacks]]\nname = 'lr-monitor'\n"
    )
    config = _printed(ember_main, path)
    spec = get_plugin_manager().get("precision", "32")
    assert config["trainer"]["precision"] == spec.name
    assert config["callbacks"][0]["name"] == "learning_rate_monitor"
    assert config["callbacks"][0]["log_momentum"] is False  # defaults filled in
    assert not root.exists()


class _VaultPlugin:
    """A tracker with a secret option read from the environment, registered in code."""

    @hookimpl
    def ember_loggers(self) -> Iterator[LoggerSpec]:
        yield LoggerSpec(
            name="vault",
            factory=lambda save_dir=None, api_key=None, project=None: CSVLogger(save_dir),
            description="CSV files, guarded by an API key",
            options={
                "save_dir": Option("path"),
                "project": Option("str"),
                "api_key": Option("str", required=True, secret=True, env="VAULT_API_KEY"),
            },
        )


@pytest.fixture
def vault(fresh_plugins: None) -> None:
    get_plugin_manager().register(_VaultPlugin(), "vault", distribution="ember-vault")


def test_print_config_redacts_secrets(
    vault: None, tmp_path: Path, in_repo: Path, ember_main, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.toml"
    path.write_text(GOOD + '[[loggers]]\nname = "vault"\napi_key = "s3cr3t-in-file"\n')
    code, out, _ = ember_main("fit", "--config", str(path), "--print-config")
    assert code == 0
    assert "s3cr3t-in-file" not in out
    assert 'api_key = "***"' in out
    # from the environment only: still redacted, and the required option counts as given
    path.write_text(GOOD + '[[loggers]]\nname = "vault"\nproject = "p"\n')
    code, _, err = ember_main("config", "validate", str(path))
    assert code == 3
    assert "loggers[0].api_key: required key 'api_key' is missing" in err
    monkeypatch.setenv("VAULT_API_KEY", "from-the-environment")
    code, out, err = ember_main("fit", "--config", str(path), "--print-config")
    assert code == 0, err
    assert "from-the-environment" not in out
    assert 'api_key = "***"' in out


def test_yaml_run_file_reads_like_toml(tmp_path: Path, in_repo: Path, ember_main) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("seed_everything = 3\n[trainer]\nmax_epochs = 2\n" + BASE)
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(
        "seed_everything: 3\n"
        "trainer: {max_epochs: 2}\n"
        "model: {class_path: 'examples.digits.model:DigitsClassifier'}\n"
        "data: {class_path: 'examples.digits.data:DigitsData'}\n"
        "loggers: [csv]\n"
    )
    assert _printed(ember_main, yaml_file) == _printed(ember_main, toml)


def test_yaml_without_pyyaml_names_the_package(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("trainer: {max_epochs: 1}\n")
    code = (
        "import sys; sys.modules['yaml'] = None\n"
        "from ember.hub.cli import main\n"
        f"sys.exit(main(['config', 'validate', {str(path)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"{path}: is a YAML file, and reading YAML needs the PyYAML package: pip install PyYAML "
        "(or pip install 'ember[yaml]'), or write the run file in TOML"
    )
