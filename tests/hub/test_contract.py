"""The hub's contract is consistent with itself and with what other packages use: the
lifecycle facade matches the hookspecs, the typed views match the real trainer and module,
and every hub name imported elsewhere is exported publicly."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest
from ember import hub
from ember.hub import CALLBACK_HOOKS, Lifecycle, ModuleView, TrainerView, hookspecs

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = ("ember.hub", "ember.hub.tracking", "ember.hub.testing")


def _generator():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_lifecycle
    finally:
        sys.path.pop(0)
    return gen_lifecycle


def test_lifecycle_events_module_is_generated_from_the_hookspecs() -> None:
    gen = _generator()
    assert gen.TARGET.read_text() == gen.render(), (
        "hub/lifecycle_events.py is stale: run `python scripts/gen_lifecycle.py`"
    )


@pytest.mark.parametrize("short", sorted(CALLBACK_HOOKS))
def test_each_facade_method_has_its_hookspec_signature(short: str) -> None:
    spec = inspect.signature(getattr(hookspecs, CALLBACK_HOOKS[short]))
    method = inspect.signature(getattr(Lifecycle, short))
    params = list(method.parameters.values())[1:]  # without self
    assert [(p.name, p.annotation) for p in params] == [
        (p.name, p.annotation) for p in spec.parameters.values()
    ]


def test_facade_fires_the_hook_with_every_argument() -> None:
    seen: dict[str, dict] = {}

    class Recorder:
        def __getattr__(self, name: str):
            if not name.startswith("ember_"):
                raise AttributeError(name)
            return lambda **kw: seen.__setitem__(name, kw)

    facade = Lifecycle.__new__(Lifecycle)
    facade._hook = Recorder()
    for short, spec_name in CALLBACK_HOOKS.items():
        args = list(inspect.signature(getattr(hookspecs, spec_name)).parameters)
        getattr(facade, short)(**{a: a.upper() for a in args})
        assert seen[spec_name] == {a: a.upper() for a in args}


def test_real_trainer_and_module_satisfy_the_typed_views() -> None:
    from ember.trainer import EmberModule, Trainer

    class Model(EmberModule):
        pass

    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    module = Model()
    # a runtime-checkable Protocol checks that every member is present
    assert isinstance(trainer, TrainerView)
    assert isinstance(module, ModuleView)


def test_hookspecs_type_trainer_and_module_with_the_views() -> None:
    for spec_name in CALLBACK_HOOKS.values():
        params = inspect.signature(getattr(hookspecs, spec_name)).parameters
        assert params["trainer"].annotation == "TrainerView"
        assert params["module"].annotation == "ModuleView"


def _hub_imports(path: Path) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ember.hub"):
            found += [(node.module or "", alias.name) for alias in node.names]
    return found


def test_other_packages_import_only_exported_hub_names() -> None:
    import importlib

    sources = [*(ROOT / "trainer").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
    private = []
    for path in sources:
        for module, name in _hub_imports(path):
            if module not in PUBLIC_MODULES:
                private.append(f"{path.relative_to(ROOT)}: from {module} import {name}")
            elif name not in importlib.import_module(module).__all__:
                private.append(f"{path.relative_to(ROOT)}: {name} not in {module}.__all__")
    assert private == [], "use the public names of ember.hub:\n" + "\n".join(private)


def test_everything_exported_resolves() -> None:
    for name in hub.__all__:
        assert getattr(hub, name) is not None
