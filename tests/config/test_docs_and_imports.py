"""The run-file reference is generated from the schemas and current; the hub's import and
`ember plugins` stay free of the validator, pydantic and torch."""

from __future__ import annotations

import json
import subprocess
import sys

from config_helpers import REPO_ROOT


def test_run_file_reference_is_up_to_date() -> None:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import gen_config_docs
    finally:
        sys.path.pop(0)
    page = REPO_ROOT / "docs" / "config-reference.md"
    assert page.read_text() == gen_config_docs.render(), (
        "docs/config-reference.md is stale: run `python scripts/gen_config_docs.py`"
    )


def test_every_trainer_flag_is_in_the_reference() -> None:
    from ember.hub.config import Engine

    page = (REPO_ROOT / "docs" / "config-reference.md").read_text()
    for flag in Engine.load().trainer_fields().annotations:
        assert f"| `{flag}` |" in page, flag


def test_listing_plugins_loads_no_validator() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from ember.hub.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['plugins'])\n"
        "heavy = ('torch', 'pydantic', 'yaml', 'ember.trainer.trainer', "
        "'ember.hub.config.validation')\n"
        "print(__import__('json').dumps([m for m in heavy if m in sys.modules]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
