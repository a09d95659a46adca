"""``ember fit | validate | test | predict --config FILE`` and ``ember config validate |
schema``. Registering the sub-commands imports nothing heavy; the validator, pydantic,
ember.trainer and torch load inside the command that needs them.

Exit codes: 0 success; 1 the run itself failed (its traceback is printed); 2 a command-line
usage error; 3 the run file or its overrides are invalid, building the run from them
failed, or the Trainer refused them (one line per problem, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

from ember.hub.config.errors import ConfigError, ConfigIssue
from ember.hub.errors import EmberPluginError

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID_CONFIG = 3
EXIT_INTERRUPTED = 130

_ENTRY_HELP = {
    "fit": "train (and validate) the run a run file describes",
    "validate": "run the validation loop once on the run file's model and data",
    "test": "run the test loop once on the run file's model and data",
    "predict": "run prediction on the run file's model and data",
}


def add_run_parsers(sub: Any) -> None:
    """Register ``fit``, ``validate``, ``test`` and ``predict``."""
    for entry, text in _ENTRY_HELP.items():
        p = sub.add_parser(entry, help=text, description=text + ".")
        p.add_argument(
            "-c", "--config", required=True, metavar="FILE", help="the run file (TOML or YAML)"
        )
        _add_set(p)
        p.add_argument(
            "--ckpt-path",
            metavar="last|best|PATH",
            help="checkpoint to resume (fit) or to load the weights from",
        )
        p.add_argument(
            "--print-config",
            action="store_true",
            help="print the resolved configuration (secrets redacted) and exit",
        )
        p.set_defaults(func=_cmd_run, entry=entry)


def add_config_parser(sub: Any) -> None:
    """Register ``config validate`` and ``config schema``."""
    p = sub.add_parser("config", help="check run files; export their JSON Schema")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    v = csub.add_parser(
        "validate", help="check a run file against the installed plugins; train nothing"
    )
    v.add_argument("file", metavar="FILE", help="the run file (TOML or YAML)")
    _add_set(v)
    v.set_defaults(func=_cmd_validate)
    s = csub.add_parser(
        "schema", help="write the run file's JSON Schema (from the installed plugins)"
    )
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    s.set_defaults(func=_cmd_schema)


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set trainer.max_epochs=3 or "
        "--set loggers[0].tracking_uri=sqlite:///runs.db (repeatable)",
    )


def report(exc: ConfigError, source: str | None = None, outcome: str = "nothing was run") -> int:
    """Print every problem of ``exc`` on stderr, one per line; return the exit code."""
    if source:
        exc = exc.with_source(source)
    print(exc.render(), file=sys.stderr)
    n = len(exc.issues)
    where = f" in {exc.source}" if exc.source else ""
    noun = "problem" if n == 1 else "problems"
    print(f"ember: {n} {noun}{where}; {outcome} (see docs/config.md)", file=sys.stderr)
    return EXIT_INVALID_CONFIG


def _engine() -> Any:
    from ember.hub.config.validation import Engine

    try:
        return Engine.load()
    except ImportError as exc:
        raise ConfigError(
            [
                ConfigIssue(
                    "",
                    f"the training engine cannot be imported ({exc}); install torch "
                    "(bash scripts/setup_env.sh) and see `ember doctor`",
                )
            ]
        ) from exc


def _load(path: str, overrides: list[str]) -> Any:
    from ember.hub.config.validation import load_config

    return load_config(path, overrides, engine=_engine())


def _cmd_run(args: argparse.Namespace) -> int:
    from ember.hub.config.files import dump_toml

    try:
        config = _load(args.config, args.set)
    except ConfigError as exc:
        return report(exc, args.config)
    if args.print_config:
        print(dump_toml(config.printable), end="")
        return EXIT_OK
    from ember.hub.config.runner import run
    from ember.trainer import MisconfigurationError

    try:
        result = run(args.entry, config, ckpt_path=args.ckpt_path)
    except ConfigError as exc:
        return report(exc, args.config)
    except MisconfigurationError as exc:  # the run file asks for something the Trainer refuses
        problem = ConfigError([ConfigIssue(args.entry, str(exc))])
        return report(problem, args.config, outcome="the Trainer refused the configuration")
    except KeyboardInterrupt:
        print(f"ember {args.entry}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        traceback.print_exc()
        print(f"ember {args.entry}: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    if args.entry == "predict" and isinstance(result, list):
        print(f"ember predict: {len(result)} prediction batches")
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = _load(args.file, args.set)
    except ConfigError as exc:
        return report(exc, args.file)
    loggers = (
        "csv (the default)"
        if config.loggers is None
        else ", ".join(e["name"] for e in config.loggers) or "none (journal only)"
    )
    data = config.data.class_path if config.data else ", ".join(config.loaders) or "the model's"
    print(f"{args.file}: valid")
    print(f"  model: {config.model.class_path}")
    print(f"  data: {data}")
    print(f"  loggers: {loggers}")
    print(f"  callbacks: {', '.join(c['name'] for c in config.callbacks) or 'none'}")
    return EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from ember.hub.config.export import run_file_schema
    from ember.hub.config.validation import plugin_manager_for

    try:
        schema = run_file_schema(plugin_manager_for(None, []), _engine())
    except ConfigError as exc:
        return report(exc, outcome="no schema was written")
    except EmberPluginError as exc:  # two plugins claim one name, or strict mode
        print(f"ember: {exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    text = json.dumps(schema, indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK
