"""Regenerate hub/lifecycle_events.py, the typed methods of the lifecycle facade, from the
hookspecs' signatures.

Run ``python scripts/gen_lifecycle.py`` after changing a lifecycle hook in
hub/hookspecs.py; tests/hub/test_lifecycle.py fails while the file is out of date.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from ember.hub import hookspecs
from ember.hub.manager import LIFECYCLE_HOOKS

TARGET = Path(__file__).resolve().parents[1] / "hub" / "lifecycle_events.py"
LINE_LENGTH = 100

HEADER = '''\
"""The typed methods of :class:`ember.hub.Lifecycle`, one per lifecycle hookspec.

Generated from hub/hookspecs.py by scripts/gen_lifecycle.py: do not edit by hand (a test
fails when this file and the hookspecs disagree).
"""

from __future__ import annotations

from typing import Any

from ember.hub.views import ModuleView, TrainerView


class LifecycleEvents:
    """Fire each lifecycle hook through ``self._hook`` (a pluggy hook relay)."""

    _hook: Any
'''


def _wrapped(head: str, items: list[str], tail: str, indent: str) -> list[str]:
    """``head(items)tail`` on one line when it fits, else one item per line with a trailing
    comma (the layout ``ruff format`` keeps)."""
    line = f"{indent}{head}({', '.join(items)}){tail}"
    if len(line) <= LINE_LENGTH:
        return [line]
    inner = indent + "    "
    return [f"{indent}{head}(", *(f"{inner}{item}," for item in items), f"{indent}){tail}"]


def method(spec_name: str) -> list[str]:
    """The facade method that fires ``spec_name``."""
    params = inspect.signature(getattr(hookspecs, spec_name)).parameters.values()
    typed = ["self", *(f"{p.name}: {p.annotation}" for p in params)]
    short = spec_name.removeprefix("ember_")
    call = [f"{p.name}={p.name}" for p in params]
    return [
        "",
        *_wrapped(f"def {short}", typed, " -> None:", "    "),
        f'        """Fire ``{spec_name}``."""',
        *_wrapped(f"self._hook.{spec_name}", call, "", "        "),
    ]


def render() -> str:
    """The whole module."""
    lines = [HEADER.rstrip("\n")]
    for name in vars(hookspecs):
        if name in LIFECYCLE_HOOKS:
            lines += method(name)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    sys.stdout.write(f"wrote {TARGET}\n")
