"""Every built-in provider runs its kind's conformance suite: the test classes that
subclass a suite are read from the test sources and compared with ember's own registry."""

from __future__ import annotations

import ast
from pathlib import Path

from ember.hub import get_plugin_manager

ROOT = Path(__file__).resolve().parents[1]

#: the class attribute that names the provider, per suite
SUITES = {
    "LoggerConformance": ("logger", "provider_name"),
    "AcceleratorConformance": ("accelerator", "accelerator"),
    "PrecisionConformance": ("precision", "precision"),
    "StrategyConformance": ("strategy", "strategy"),
}


def _covered() -> dict[str, set[str]]:
    """kind -> provider names some test class of the suite selects (by its attribute)."""
    covered: dict[str, set[str]] = {kind: set() for kind, _ in SUITES.values()}
    for path in [*(ROOT / "tests").rglob("test_*.py"), *(ROOT / "plugins").rglob("test_*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            }
            for suite in bases & set(SUITES):
                kind, attribute = SUITES[suite]
                for stmt in node.body:
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else []
                    for target in targets:
                        if isinstance(target, ast.Name) and target.id == attribute:
                            covered[kind].add(ast.literal_eval(stmt.value))
    return covered


def test_every_builtin_and_first_party_provider_runs_its_suite() -> None:
    covered = _covered()
    pm = get_plugin_manager()
    first_party = {"ember", "ember-tensorboard", "ember-mlflow", "ember-wandb", "ember-comet"}
    for kind in covered:
        ours = {n for n, spec in pm.providers(kind).items() if spec.distribution in first_party}
        assert ours, kind
        assert ours <= covered[kind], (
            f"{kind} providers without a conformance class: {ours - covered[kind]}"
        )
