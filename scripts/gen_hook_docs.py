"""Regenerate docs/hooks.md from the hookspecs' signatures and docstrings.

Run ``python scripts/gen_hook_docs.py`` after changing hub/hookspecs.py; the docs tests
fail while the page is out of date.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

from ember.hub import hookspecs
from ember.hub.manager import LIFECYCLE_HOOKS
from ember.hub.records import PROVIDER_HOOKS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"

INTRO = """\
# Hook reference

Every hook a plugin or a callback can implement. Provider hooks return registration
records; lifecycle hooks are events the trainer fires. A plugin implements a hook with
`@hookimpl` (or a plain module-level function with the same name) and may take only the
arguments it needs, by name. A `Callback` writes lifecycle hooks without the `ember_`
prefix (`on_train_batch_end`) and may take all arguments positionally, Lightning style:
see [Plugins](plugins.md). `ember hooks` prints this list.

The order in which the trainer fires lifecycle hooks is described in
[Hook order](hook-order.md). The fields of the records provider hooks return, and the
methods of the classes their factories build, are in the
[records and contracts reference](plugin-reference.md).

This page is generated from `hub/hookspecs.py` by `scripts/gen_hook_docs.py`.

<!-- invisible-code-block: python
from ember.hub import *  # the names the examples use (the docs tests run them)
-->
"""


def signature_text(name: str) -> str:
    """``ember_on_fit_start(trainer: Any, module: Any) -> None``."""
    return f"{name}{inspect.signature(getattr(hookspecs, name))}".replace("'", "")


def section(name: str) -> str:
    """One hook's section: heading, signature, description, parameters, example."""
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    text, _, example = doc.partition("Example::")
    body = []
    for line in text.strip().splitlines():
        if line.startswith(":param "):
            arg, _, desc = line.removeprefix(":param ").partition(":")
            body.append(f"- `{arg.strip()}`: {desc.strip().replace('``', '`')}")
        else:
            body.append(line.replace("``", "`"))
    # a signature is not code that runs: the docs tests skip it
    signature = ["<!-- skip: next -->", "```python", signature_text(name), "```"]
    parts = [f"### `{name}`", "", *signature, "", *body, ""]
    if example.strip():
        parts += ["Example:", "", "```python", textwrap.dedent(example).strip("\n"), "```", ""]
    return "\n".join(parts)


def render() -> str:
    """The whole page."""
    provider = [section(n) for n in PROVIDER_HOOKS.values()]
    lifecycle = [section(n) for n in vars(hookspecs) if n in LIFECYCLE_HOOKS]
    page = [INTRO, "## Provider hooks\n", *provider, "## Lifecycle hooks\n", *lifecycle]
    return "\n".join(page).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.write_text(render())
    sys.stdout.write(f"wrote {PAGE}\n")
