"""Lightning programs run on ember with only their imports changed print what they print
on Lightning.

Each file in ``programs/`` is a Lightning program (it runs as is on Lightning). The test
rewrites its ``from lightning... import`` lines to ember's modules (the mapping of
``docs/lightning-migration.md``), runs both versions in fresh processes, and compares
the lines they print that start with ``RESULT``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).parent / "programs"

#: Lightning module -> ember module
MODULES = {
    "lightning.pytorch": "ember.trainer",
    "lightning.pytorch.callbacks": "ember.trainer.callbacks",
    "lightning.pytorch.callbacks.early_stopping": "ember.trainer.callbacks",
    "lightning.pytorch.utilities": "ember.trainer.utilities",
    "lightning.pytorch.utilities.rank_zero": "ember.trainer.utilities",
    "lightning.pytorch.utilities.model_summary": "ember.trainer.utilities",
    "lightning.pytorch.utilities.seed": "ember.trainer.utilities",
}
#: Lightning name -> ember name, where they differ
NAMES = {"LightningModule": "EmberModule", "LightningDataModule": "EmberDataModule"}

_IMPORT = re.compile(r"^from (lightning[\w.]*) import (.+)$", re.MULTILINE)


def to_ember(source: str) -> str:
    """``source`` with every ``from lightning... import ...`` line pointed at ember."""

    def rewrite(match: re.Match[str]) -> str:
        module, names = match[1], [n.strip() for n in match[2].split(",")]
        if module not in MODULES:
            raise AssertionError(f"no ember counterpart listed for the module {module}")
        imported = [f"{NAMES[n]} as {n}" if n in NAMES else n for n in names]
        return f"from {MODULES[module]} import {', '.join(imported)}"

    converted = _IMPORT.sub(rewrite, source)
    left = re.search(r"^\s*(from|import) (lightning|pytorch_lightning)\b", converted, re.M)
    assert left is None, f"an import of Lightning was left: {left[0]!r}"
    return converted


def results(script: Path, workdir: Path) -> list[str]:
    """Run ``script`` in a fresh interpreter; return its ``RESULT`` lines."""
    workdir.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script), str(workdir)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    return [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]


def test_the_conversion_changes_only_imports() -> None:
    source = (PROGRAMS / "early_stopping.py").read_text()
    converted = to_ember(source)
    changed = [
        (a, b) for a, b in zip(source.splitlines(), converted.splitlines(), strict=True) if a != b
    ]
    assert changed and all(a.startswith("from lightning") for a, _ in changed)
    assert (
        "from ember.trainer import Callback, EmberModule as LightningModule, Trainer, "
        "seed_everything"
    ) in converted


@pytest.mark.slow
@pytest.mark.parametrize("program", sorted(p.name for p in PROGRAMS.glob("*.py")))
def test_same_printed_results_as_lightning(program: str, tmp_path: Path) -> None:
    pytest.importorskip("lightning.pytorch", reason="install ember[test] (it brings lightning)")
    source = PROGRAMS / program
    ember_script = tmp_path / f"ember_{program}"
    ember_script.write_text(to_ember(source.read_text()))
    on_lightning = results(source, tmp_path / "lightning")
    on_ember = results(ember_script, tmp_path / "ember")
    assert on_lightning, f"{program} printed no RESULT line on Lightning"
    assert on_ember == on_lightning
