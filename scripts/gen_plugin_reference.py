"""Regenerate docs/plugin-reference.md: the registration records a provider hook returns
(every field) and the contracts a provider's factory builds (every public method and
attribute of ``Logger``, ``Accelerator``, ``Precision`` and ``Strategy``), from their
docstrings and ``#:`` field comments.

Run ``python scripts/gen_plugin_reference.py`` after changing one of them; the docs tests
fail while the page is out of date, and while a field, a method or an attribute lacks its
documentation.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "plugin-reference.md"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_public_api import annotation, signature, value_text  # noqa: E402

#: (section title, module, class names, intro)
SECTIONS: list[tuple[str, str, tuple[str, ...], str]] = [
    (
        "Registration records",
        "ember.hub",
        (
            "ProviderSpec",
            "LoggerSpec",
            "AcceleratorSpec",
            "PrecisionSpec",
            "StrategySpec",
            "CallbackSpec",
            "Option",
        ),
        "What a provider hook returns or yields (`from ember.hub import LoggerSpec, ...`): "
        "one frozen record per named thing. Every kind of record has the fields of "
        "`ProviderSpec`.",
    ),
    (
        "The logger contract",
        "ember.hub.tracking",
        ("Logger", "Capabilities", "RunInfo", "MetricRecord"),
        "What a tracker plugin's factory builds: a subclass of `ember.hub.Logger`, and the "
        "plain data it receives. See [Writing a logger](writing-a-logger.md).",
    ),
    (
        "The torch-side contracts",
        "ember.trainer.plugins",
        ("Accelerator", "Precision", "Strategy"),
        "What an accelerator, precision or strategy plugin's factory builds. See "
        "[Writing a torch-side plugin](writing-torch-plugins.md).",
    ),
]

#: the classes whose fields (dataclass or named tuple) each need a ``#:`` comment
FIELD_DOCS_REQUIRED: tuple[str, ...] = SECTIONS[0][2]

INTRO = """\
# Records and contracts reference

Every field of the registration records a plugin returns, and every public method and
attribute of the contracts a plugin implements, with their exact signatures. For the
hooks themselves see the [Hook reference](hooks.md); for what a version of ember
promises about these names, [Public API and its changes](api-changes.md).

This page is generated from the docstrings and `#:` field comments of `hub/records.py`,
`hub/tracking/logger.py` and `trainer/plugins/` by `scripts/gen_plugin_reference.py`.
"""

_ROLE = re.compile(r":(?:meth|class|attr|func|data|mod|exc):`~?([^`]+)`")


def markdown(doc: str) -> str:
    """A reST-flavoured docstring as Markdown: roles and double backticks become code,
    ``Example::`` blocks become fenced text."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            out.append(line.rstrip()[:-2].rstrip() + ":" if line.strip() != "::" else "")
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            code = inspect.cleandoc("\n".join(block))
            out += ["", "```text", code, "```", ""]
            continue
        out.append(_ROLE.sub(r"`\1`", line).replace("``", "`"))
        i += 1
    return "\n".join(out).strip()


def field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comments written just above each annotated name of ``cls``."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return comments
    for line in source.splitlines()[1:]:
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        match = re.match(r"^    (\w+)\s*(?::|=)", line)
        if match and pending:
            comments.setdefault(match.group(1), " ".join(pending))
        pending = []
    return comments


def fields_of(cls: type) -> list[tuple[str, str]]:
    """``(name, "name: type = default")`` for the fields ``cls`` itself declares."""
    own = vars(cls).get("__annotations__", {})
    out = []
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            if f.name not in own:
                continue
            if f.default is not dataclasses.MISSING:
                default = f" = {value_text(f.default)}"
            elif f.default_factory is not dataclasses.MISSING:
                default = f" = {f.default_factory.__name__}()"
            else:
                default = ""
            out.append((f.name, f"{f.name}: {annotation(f.type)}{default}"))
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
        defaults = cls._field_defaults
        for name in cls._fields:
            default = f" = {value_text(defaults[name])}" if name in defaults else ""
            out.append((name, f"{name}: {annotation(own.get(name, 'Any'))}{default}"))
    return out


def members_of(cls: type) -> list[tuple[str, str, str]]:
    """``(name, shown signature, docs)`` for every public method, property and class
    attribute ``cls`` itself defines (fields excluded)."""
    own = vars(cls)
    field_names = {n for n, _ in fields_of(cls)}
    comments = field_comments(cls)
    hints = own.get("__annotations__", {})
    out = []
    for name in sorted(n for n in own if not n.startswith("_") and n not in field_names):
        member = own[name]
        if isinstance(member, property):
            ret = inspect.signature(member.fget).return_annotation
            shown = f"{name}" + ("" if ret is inspect.Signature.empty else f" -> {annotation(ret)}")
            out.append((name, f"property {shown}", inspect.getdoc(member) or ""))
        elif isinstance(member, (classmethod, staticmethod)) or inspect.isfunction(member):
            prefix = "classmethod " if isinstance(member, classmethod) else ""
            func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            out.append((name, f"{prefix}{name}{signature(func)}", inspect.getdoc(func) or ""))
        elif not callable(member):
            hint = hints.get(name)
            shown = f"{name}: {annotation(hint)}" if hint is not None else name
            comment = comments.get(name, "")
            out.append((name, f"{shown} = {value_text(member)}", comment[:1].upper() + comment[1:]))
    return out


def gaps(cls: type, label: str, fields_required: bool) -> list[str]:
    """What of ``cls`` has no documentation of its own: the class docstring, a ``#:``
    comment per field (when ``fields_required``) and per class attribute, a docstring per
    method and property."""
    missing = []
    if not (inspect.getdoc(cls) or "").strip():
        missing.append(f"{label} (class docstring)")
    if fields_required:
        comments = field_comments(cls)
        missing += [
            f"{label}.{n} (field: a #: comment above it)"
            for n, _ in fields_of(cls)
            if not comments.get(n)
        ]
    for name, _, doc in members_of(cls):
        if not doc.strip():
            missing.append(f"{label}.{name}")
    return missing


def undocumented() -> list[str]:
    """Every field, method and attribute of the documented classes that has no
    documentation of its own."""
    missing = []
    for _, modname, names, _ in SECTIONS:
        module = importlib.import_module(modname)
        for cname in names:
            label = f"{modname}.{cname}"
            missing += gaps(getattr(module, cname), label, cname in FIELD_DOCS_REQUIRED)
    return missing


def class_section(modname: str, cls: type) -> Iterator[str]:
    yield f"### `{cls.__name__}`"
    yield ""
    bases = [b.__name__ for b in cls.__bases__ if b.__module__.startswith("ember.")]
    yield f"`{modname}.{cls.__name__}`" + (f", a `{bases[0]}`" if bases else "")
    yield ""
    yield markdown(inspect.getdoc(cls) or "")
    yield ""
    fields = fields_of(cls)
    if fields:
        comments = field_comments(cls)
        yield "Fields:"
        yield ""
        for name, shown in fields:
            text = markdown(comments.get(name, ""))
            yield f"- `{shown}`" + (f": {text}" if text else "")
        yield ""
    for name, shown, doc in members_of(cls):
        yield f"#### `{cls.__name__}.{name}`"
        yield ""
        yield f"`{shown}`"
        yield ""
        if doc:
            yield markdown(doc)
            yield ""


def render() -> str:
    """The whole page."""
    parts = [INTRO]
    for title, modname, names, intro in SECTIONS:
        module = importlib.import_module(modname)
        parts += [f"## {title}", "", intro, ""]
        for cname in names:
            parts += list(class_section(modname, getattr(module, cname)))
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    missing = undocumented()
    if missing:
        sys.stderr.write("document these first:\n" + "".join(f"  {m}\n" for m in missing))
        sys.exit(1)
    PAGE.write_text(render())
    sys.stdout.write(f"wrote {PAGE}\n")
