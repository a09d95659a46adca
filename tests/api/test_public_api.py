"""The public API of the plugin contract is listed in api/public-api.txt; a change to a
name, a signature, a field or a hookspec fails here until it is recorded in
docs/api-changes.md and the listing regenerated (scripts/gen_public_api.py)."""

from __future__ import annotations

import difflib
import importlib
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
try:
    import gen_public_api as gen
finally:
    sys.path.pop(0)

HOW = (
    "The public API changed. If that is intended: (1) record it under '## Unreleased' in "
    "docs/api-changes.md, naming each changed name in backticks with what changed and why; "
    "(2) run `python scripts/gen_public_api.py`, which regenerates api/public-api.txt once "
    "every change is recorded; (3) commit both. If it is not intended, undo the change."
)


def test_listing_is_current() -> None:
    listed = gen.LISTING.read_text()
    current = gen.render()
    if listed != current:
        changed = gen.changed_names(listed, current)
        diff = "".join(
            list(
                difflib.unified_diff(
                    listed.splitlines(keepends=True),
                    current.splitlines(keepends=True),
                    "api/public-api.txt",
                    "the code now",
                    n=0,
                )
            )[:60]
        )
        pytest.fail(f"{HOW}\nChanged names: {', '.join(changed)}\n{diff}", pytrace=False)


def test_listing_covers_hookspecs_records_and_contracts() -> None:
    entries = gen.parse(gen.LISTING.read_text())
    from ember.hub import hookspecs
    from ember.hub.manager import LIFECYCLE_HOOKS
    from ember.hub.records import PROVIDER_HOOKS

    for hook in [*PROVIDER_HOOKS.values(), *LIFECYCLE_HOOKS]:
        assert entries[f"ember.hub.hookspecs.{hook}"].startswith(f"hookspec def {hook}(")
    assert entries["ember.hub.hookspecs.ember_on_fit_start"] == (
        "hookspec def ember_on_fit_start(trainer: TrainerView, module: ModuleView) -> None"
    )
    assert len([q for q in entries if q.startswith("ember.hub.hookspecs.")]) == len(
        gen.hookspec_names(hookspecs)
    )
    assert (
        entries["ember.hub.LoggerSpec"] == "@dataclass(frozen=True) class LoggerSpec(ProviderSpec)"
    )
    assert entries["ember.hub.ProviderSpec.name"] == "field 0: name: str"
    assert entries["ember.hub.AcceleratorSpec.auto_priority"] == "field 8: auto_priority: int = 0"
    assert entries["ember.hub.Logger.open"] == "def open(self, run: RunInfo) -> str | None"
    assert entries["ember.hub.tracking.MetricRecord.seq"] == "field 4: seq: int = 0"
    assert "ember.trainer.plugins.Strategy.reduce" in entries
    assert "ember.hub.testing.LoggerConformance.test_metrics_round_trip" in entries


# ---------------------------------------------------------------------- __all__
PUBLIC_MODULES = [m for m in gen.MODULES if gen.MODULES[m] is None and m != "ember.hub.hookspecs"]


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_all_names_exist_once(modname: str) -> None:
    module = importlib.import_module(modname)
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"{modname}.__all__ lists a name twice"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{modname}.__all__ lists names the module lacks: {missing}"


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_every_public_name_is_in_all(modname: str) -> None:
    """A public name a module defines (or, for a package, re-exports from its own
    sub-modules) is in ``__all__``: otherwise it is public by accident, unlisted and
    unchecked. Helpers take a leading underscore."""
    module = importlib.import_module(modname)
    is_package = hasattr(module, "__path__")
    stray = []
    for name, obj in vars(module).items():
        if name.startswith("_") or isinstance(obj, types.ModuleType) or name == "annotations":
            continue
        home = getattr(obj, "__module__", None)
        if home is None and not callable(obj):
            continue  # a constant imported from elsewhere carries no home; see below
        ours = home == modname or (is_package and str(home).startswith(modname + "."))
        if ours and name not in module.__all__:
            stray.append(name)
    assert not stray, (
        f"{modname} has public names missing from __all__: {stray}. Add them to __all__ "
        "(and record the addition in docs/api-changes.md), or rename them with a leading "
        "underscore"
    )


# ---------------------------------------------------------------------- the recorded decision
OLD = """\
[ember.hub]
ember.hub.PluginInfo  @dataclass class PluginInfo
ember.hub.PluginInfo.name  field 0: name: str
ember.hub.reset_plugin_manager  def reset_plugin_manager() -> None
"""
NEW = """\
[ember.hub]
ember.hub.PluginInfo  @dataclass class PluginInfo
ember.hub.PluginInfo.name  field 0: name: str
ember.hub.PluginInfo.origin  field 1: origin: str
ember.hub.get_plugin_manager  def get_plugin_manager() -> PluginManager
"""


def test_changed_names_are_additions_removals_and_changes() -> None:
    assert gen.changed_names(OLD, NEW) == [
        "ember.hub.PluginInfo.origin",
        "ember.hub.get_plugin_manager",
        "ember.hub.reset_plugin_manager",
    ]


def test_a_change_must_be_named_under_unreleased() -> None:
    names = gen.changed_names(OLD, NEW)
    changes = (
        "# API changes\n\n## Unreleased\n\n"
        "- Added `ember.hub.PluginInfo.origin`: where the plugin came from.\n\n"
        "## 0.1.0\n\n- Removed `ember.hub.reset_plugin_manager`.\n"
    )
    # recorded only under an older release: still unrecorded
    assert gen.unrecorded(names, changes) == [
        "ember.hub.get_plugin_manager",
        "ember.hub.reset_plugin_manager",
    ]
    # naming the class covers its members; naming the module covers nothing
    assert not gen.unrecorded(
        ["ember.hub.PluginInfo.origin"], "## Unreleased\n`ember.hub.PluginInfo`"
    )
    assert gen.unrecorded(["ember.hub.PluginInfo.origin"], "## Unreleased\n`ember.hub`") == [
        "ember.hub.PluginInfo.origin"
    ]


def test_the_script_refuses_an_unrecorded_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The script's main() against a copy of the repository's listing with one entry
    altered: it refuses to write and names the entry, then writes once it is recorded."""
    listing = tmp_path / "public-api.txt"
    text = gen.LISTING.read_text().replace(
        "ember.hub.reset_plugin_manager  def reset_plugin_manager() -> None",
        "ember.hub.reset_plugin_manager  def reset_plugin_manager(hard: bool) -> None",
    )
    assert text != gen.LISTING.read_text()
    listing.write_text(text)
    changes = tmp_path / "api-changes.md"
    changes.write_text("# API changes\n\n## Unreleased\n\nNothing yet.\n")
    monkeypatch.setattr(gen, "LISTING", listing)
    monkeypatch.setattr(gen, "CHANGES", changes)

    assert gen.main([]) == 1
    assert "  ember.hub.reset_plugin_manager\n" in capsys.readouterr().err
    assert listing.read_text() == text  # not rewritten

    changes.write_text(
        "## Unreleased\n\n- `ember.hub.reset_plugin_manager` no longer takes `hard`.\n"
    )
    assert gen.main([]) == 0
    assert listing.read_text() == gen.render()


def test_the_changes_page_has_an_unreleased_section() -> None:
    """The script records decisions only under '## Unreleased'; without the section no
    change could ever be recorded."""
    assert gen.unreleased(gen.CHANGES.read_text()).startswith("## Unreleased")
