"""The docs site builds strictly, and every hook is documented with its exact signature."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from ember.hub import hookspecs
from ember.hub.manager import LIFECYCLE_HOOKS
from ember.hub.records import PROVIDER_HOOKS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def signature_text(name: str) -> str:
    """``ember_on_fit_start(trainer: Any, module: Any) -> None``, as the docs show it."""
    return f"{name}{inspect.signature(getattr(hookspecs, name))}".replace("'", "")


@pytest.mark.parametrize("name", [*PROVIDER_HOOKS.values(), *LIFECYCLE_HOOKS])
def test_every_hookspec_is_documented_with_its_exact_signature(name: str) -> None:
    text = (DOCS / "hooks.md").read_text()
    assert f"### `{name}`" in text, f"docs/hooks.md has no section for {name}"
    assert signature_text(name) in text, (
        f"docs/hooks.md does not show the signature {signature_text(name)}"
    )


def test_hooks_page_has_no_stale_hooks() -> None:
    documented = {
        line.removeprefix("### `").removesuffix("`")
        for line in (DOCS / "hooks.md").read_text().splitlines()
        if line.startswith("### `ember_")
    }
    assert documented == set(PROVIDER_HOOKS.values()) | set(LIFECYCLE_HOOKS)


def test_hooks_page_is_up_to_date() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_hook_docs
    finally:
        sys.path.pop(0)
    assert (DOCS / "hooks.md").read_text() == gen_hook_docs.render(), (
        "docs/hooks.md is stale: run `python scripts/gen_hook_docs.py`"
    )


def test_docs_build_strictly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "index.html").exists()
