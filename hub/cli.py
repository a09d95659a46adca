"""The ``ember`` command. Sub-commands register themselves on one argparse parser; the
listing commands import neither torch nor any tracker SDK."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence

from ember.hub import __version__
from ember.hub.compat import COMPATIBLE, INCOMPATIBLE
from ember.hub.errors import EmberPluginError, IncompatiblePluginWarning
from ember.hub.manager import PluginInfo, PluginManager, get_plugin_manager
from ember.hub.records import PROVIDER_HOOKS


def _provides_text(provides: list[tuple[str, str]]) -> str:
    by_kind: dict[str, list[str]] = {}
    for kind, name in provides:
        by_kind.setdefault(kind, []).append(name)
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in by_kind.items())


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


def compat_cell(info: PluginInfo) -> str:
    """The EMBER column of ``ember plugins``: the ember versions the plugin supports,
    marked when the installed ember is not among them."""
    compat = info.compatibility
    if compat is None:
        return "-"
    if compat.status == COMPATIBLE:
        return specifier_text(compat.requirement)
    if compat.status == INCOMPATIBLE:
        return f"INCOMPATIBLE ({specifier_text(compat.requirement)})"
    return "undeclared"


def compat_notes(infos: list[PluginInfo]) -> list[str]:
    """One line per plugin whose compatibility needs a word: why an incompatible plugin
    does not fit (an error when strict mode skipped it, a warning when it was loaded
    anyway), and which plugins declare no ember versions at all."""
    lines = []
    for info in infos:
        compat = info.compatibility
        if compat is None or compat.status == COMPATIBLE or info.status == "blocked":
            continue
        if compat.status == INCOMPATIBLE:
            if info.status == "incompatible":
                lines.append(f"error: plugin {info.name!r} skipped: {compat.reason}")
            else:
                lines.append(
                    f"warning: plugin {info.name!r} is incompatible: {compat.reason}. It was "
                    "loaded anyway; EMBER_STRICT_PLUGINS=1 skips it"
                )
        else:
            lines.append(
                f"warning: plugin {info.name!r}: no declared compatibility: {compat.reason}"
            )
    return lines


def specifier_text(requirement: str | None) -> str:
    """``ember<0.2,>=0.1`` as people write it: ``>=0.1,<0.2`` (lower bounds first)."""
    from packaging.requirements import Requirement

    if not requirement:
        return "-"
    order = {">": 0, ">=": 0, "~=": 1, "==": 1, "===": 1, "!=": 2, "<=": 3, "<": 3}
    specs = sorted(Requirement(requirement).specifier, key=lambda s: (order[s.operator], s.version))
    return ",".join(str(s) for s in specs)


def load_quietly() -> PluginManager:
    """The plugin manager, without the incompatibility warnings a listing shows itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompatiblePluginWarning)
        return get_plugin_manager()


def _cmd_plugins(args: argparse.Namespace) -> int:
    try:
        pm = load_quietly()
    except EmberPluginError as exc:  # strict mode turns a broken plugin into this
        print(f"ember: {exc}", file=sys.stderr)
        return 1
    infos = pm.plugins()
    if args.kind:
        infos = [i for i in infos if any(k == args.kind for k, _ in i.provides)]
    if args.hook:
        infos = [i for i in infos if args.hook in i.hooks or f"ember_{args.hook}" in i.hooks]
    conflicts = pm.conflicts
    if args.json:
        payload = {
            "ember_version": __version__,
            "plugins": [i.as_dict() for i in infos],
            "conflicts": conflicts,
        }
        print(json.dumps(payload, indent=2))
    else:
        rows = []
        for i in infos:
            detail = i.error if i.status != "active" and i.error else _provides_text(i.provides)
            if i.status == "active" and i.hooks:
                hooks = ", ".join(h.removeprefix("ember_") for h in i.hooks)
                detail = f"{detail}; hooks: {hooks}" if detail else f"hooks: {hooks}"
            row = [i.name, i.distribution or "-", i.version or "-", i.status]
            rows.append([*row, compat_cell(i), detail])
        header = ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "EMBER", "PROVIDES"]
        print(_table(rows, header) if rows else "no plugins found")
        for line in compat_notes(infos):
            print(line, file=sys.stderr)
        for message in conflicts:
            print(f"error: {message}", file=sys.stderr)
    return 2 if conflicts else 0


def _cmd_hooks(args: argparse.Namespace) -> int:
    from ember.hub.lifecycle import CALLBACK_HOOKS, hook_signature

    for kind, name in PROVIDER_HOOKS.items():
        print(f"{name}()  -> {kind} records")
    for short in CALLBACK_HOOKS:
        print(f"ember_{hook_signature(short)}")
    return 0


def _cmd_plugin_new(args: argparse.Namespace) -> int:
    from ember.hub.scaffold import ScaffoldError, next_steps, scaffold

    try:
        root = scaffold(args.name, args.kind, args.dir, license=args.license, author=args.author)
    except ScaffoldError as exc:
        print(f"ember plugin new: {exc}", file=sys.stderr)
        return 2
    print(next_steps(root, args.kind))
    return 0


def _add_plugin_parser(sub: argparse._SubParsersAction) -> None:
    from ember.hub.scaffold import KINDS, LICENSES

    p = sub.add_parser("plugin", help="create a plugin: `ember plugin new NAME --kind KIND`")
    actions = p.add_subparsers(dest="plugin_command", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new",
        help="scaffold a plugin distribution that passes ember's conformance suite",
        description="Create DIR/ember-NAME/: pyproject.toml with the ember entry point and "
        "a compatible-versions pin, the package ember_NAME with a working implementation, "
        "tests that run the conformance suite of KIND, a README and a LICENSE.",
    )
    new.add_argument("name", help="the plugin's name: lower-case letters, digits, hyphens")
    new.add_argument("--kind", required=True, choices=list(KINDS), help="what it provides")
    new.add_argument("--dir", default=".", help="where to create ember-NAME/ (default: here)")
    new.add_argument(
        "--license", default="Apache-2.0", choices=list(LICENSES), help="the LICENSE file"
    )
    new.add_argument("--author", default=None, help="copyright holder (default: your user)")
    new.set_defaults(func=_cmd_plugin_new)


def build_parser() -> argparse.ArgumentParser:
    """The full ``ember`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="ember", description="ember: a PyTorch training engine built as a plugin hub."
    )
    parser.add_argument("--version", action="version", version=f"ember {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="list installed plugins and what they provide")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--kind", choices=sorted(PROVIDER_HOOKS), help="only plugins providing KIND")
    p.add_argument("--hook", help="only plugins implementing this lifecycle hook")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("hooks", help="list every hook a plugin or callback can implement")
    p.set_defaults(func=_cmd_hooks)

    _add_plugin_parser(sub)

    from ember.hub.config.cli import add_config_parser, add_run_parsers
    from ember.hub.doctor import add_doctor_parser
    from ember.hub.tracking.cli import add_runs_parser, add_sync_parser

    add_run_parsers(sub)
    add_config_parser(sub)
    add_runs_parser(sub)
    add_sync_parser(sub)
    add_doctor_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ember`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # `ember runs show RUN | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


__all__ = ["build_parser", "main"]
