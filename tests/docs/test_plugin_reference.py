"""Nothing a plugin author relies on is undocumented: every hookspec, every field of the
registration records, every public method and attribute of the Logger, Accelerator,
Precision and Strategy contracts has documentation of its own and appears in the docs."""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from ember.hub import hookspecs
from ember.hub.manager import LIFECYCLE_HOOKS
from ember.hub.records import PROVIDER_HOOKS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "scripts"))
try:
    import gen_plugin_reference as ref
finally:
    sys.path.pop(0)

HOW = (
    "document it (a docstring for a method or property, a `#:` comment above a field or "
    "class attribute), then run `python scripts/gen_plugin_reference.py`"
)


@pytest.mark.parametrize("name", [*PROVIDER_HOOKS.values(), *LIFECYCLE_HOOKS])
def test_every_hookspec_has_a_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert doc.strip(), f"hub/hookspecs.py: {name} has no docstring"


def test_nothing_in_the_records_and_contracts_is_undocumented() -> None:
    missing = ref.undocumented()
    assert not missing, f"undocumented: {', '.join(missing)}; {HOW}"


def test_reference_page_is_up_to_date() -> None:
    assert (DOCS / "plugin-reference.md").read_text() == ref.render(), (
        "docs/plugin-reference.md is stale: run `python scripts/gen_plugin_reference.py`"
    )


def _classes() -> list[tuple[str, type, bool]]:
    import importlib

    out = []
    for _, modname, names, _ in ref.SECTIONS:
        module = importlib.import_module(modname)
        out += [(n, getattr(module, n), n in ref.FIELD_DOCS_REQUIRED) for n in names]
    return out


@pytest.mark.parametrize(("name", "cls", "records"), _classes(), ids=lambda v: str(v))
def test_every_field_and_member_appears_in_the_reference(name, cls, records) -> None:
    page = (DOCS / "plugin-reference.md").read_text()
    section = page.split(f"### `{name}`\n", 1)[1].split("\n### ", 1)[0]
    for field_name, shown in ref.fields_of(cls):
        assert f"- `{shown}`" in section, f"{name}.{field_name} is not in the reference"
    for member, _, _ in ref.members_of(cls):
        assert f"#### `{name}.{member}`" in section, f"{name}.{member} is not in the reference"


def test_the_records_cover_every_kind() -> None:
    from ember.hub.records import SPEC_TYPES

    documented = set(ref.FIELD_DOCS_REQUIRED)
    assert {cls.__name__ for cls in SPEC_TYPES.values()} <= documented


# ---------------------------------------------------------------------- the check itself
@dataclass(frozen=True)
class _HalfDocumented:
    """A record with one documented field and one that is not."""

    #: documented
    good: int = 0
    bad: int = 0
    #: documented attribute
    flag: ClassVar[bool] = False
    other: ClassVar[bool] = False

    def documented(self) -> None:
        """Says what it does."""

    def silent(self) -> None:
        pass


def test_the_check_finds_an_undocumented_field_attribute_and_method() -> None:
    assert ref.gaps(_HalfDocumented, "X", fields_required=True) == [
        "X.bad (field: a #: comment above it)",
        "X.other",
        "X.silent",
    ]
