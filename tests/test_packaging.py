"""The distribution as a user installs it: every sub-package ships, and the metadata is
consistent."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_every_sub_package_and_the_entry_points(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("ember-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for top, dotted in (("hub", "ember/hub"), ("trainer", "ember/trainer")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.relative_to(ROOT / top).as_posix()
            assert f"{dotted}/{rel}" in names, f"{dotted}/{rel} is missing from the wheel"
    assert not any(n.startswith("ember/__init__") for n in names), "ember must stay a namespace"
    templates = ROOT / "hub" / "templates"
    for template in templates.rglob("*.tmpl"):
        rel = template.relative_to(ROOT / "hub").as_posix()
        assert f"ember/hub/{rel}" in names, f"the template {rel} is missing from the wheel"
    meta = next(n for n in names if n.endswith("entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(meta).decode()
    assert "[ember]\nbuiltins = ember.trainer.builtins" in entry_points
    assert "ember = ember.hub.cli:main" in entry_points


def test_version_is_single_valued() -> None:
    from importlib.metadata import version

    import tomllib
    from ember.hub import __version__

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == declared == version("ember")
