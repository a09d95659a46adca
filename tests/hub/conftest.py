"""Fixture plugin distributions, really built and installed with pip into folders that
subprocesses put on ``sys.path``: discovery is exercised through real entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def installed_plugins(
    tmp_path_factory: pytest.TempPathFactory, pip_install_target
) -> dict[str, Path]:
    """Install each fixture distribution into its own target folder; name -> folder."""
    root = tmp_path_factory.mktemp("plugins")
    return {
        src.name: pip_install_target(src, root / src.name)
        for src in sorted(p for p in FIXTURES.iterdir() if (p / "pyproject.toml").exists())
    }


@pytest.fixture
def ember_cli():
    """Runs the ``ember`` command (or Python code) in a subprocess; see :func:`run_ember`."""
    return run_ember


@pytest.fixture
def ember_plugins_json():
    """``ember plugins --json`` in a subprocess, parsed."""
    return plugins_json


def run_ember(
    *args: str,
    plugins: list[Path] = (),
    env: dict[str, str] | None = None,
    code: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ember.hub ARGS`` (or ``python -c CODE``) with plugins on sys.path."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}
    full_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in plugins)
    full_env.update(env or {})
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "ember.hub", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=60)


def plugins_json(*, plugins: list[Path] = (), env: dict[str, str] | None = None) -> dict:
    proc = run_ember("plugins", "--json", plugins=plugins, env=env)
    assert proc.returncode in (0, 2), proc.stderr
    return json.loads(proc.stdout)
