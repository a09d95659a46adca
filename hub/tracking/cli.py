"""``ember runs`` and ``ember sync``: sub-commands registered on the ``ember`` parser.

Each handler returns the exit status: 0 done, 1 failed or incomplete (the message says
why). Neither command imports torch; ``ember runs plot`` imports matplotlib on use.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

from ember.hub.errors import EmberPluginError
from ember.hub.tracking.fanout import logger_report
from ember.hub.tracking.journal import KINDS, JournalError, JournalReader
from ember.hub.tracking.logger import flatten_params
from ember.hub.tracking.runs import find_runs, resolve_run, run_state, summarize, sync

_FAILURES = (JournalError, EmberPluginError, OSError, TypeError, ValueError)


# --------------------------------------------------------------------------- helpers


def _fail(message: object) -> int:
    print(f"ember: {message}", file=sys.stderr)
    return 1


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def _when(ts: float | None) -> str:
    return "-" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _root(args: argparse.Namespace) -> str:
    return args.root or getattr(args, "root_top", None) or "."


def parse_options(
    pairs: Sequence[str], provider: str, plugin_manager: Any = None
) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as options of ``provider``: text for ``str``/``path`` options,
    JSON (numbers, booleans, lists) for the others, text when it is not JSON."""
    from ember.hub.manager import get_plugin_manager

    spec = (plugin_manager or get_plugin_manager()).get("logger", provider)
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {pair!r}: write KEY=VALUE, e.g. --option project=demo")
        opt = spec.options.get(key)
        if opt is not None and opt.type in ("str", "path"):
            options[key] = raw
            continue
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


# --------------------------------------------------------------------------- ember sync


def add_sync_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``ember sync RUN_DIR --to NAME [--option KEY=VALUE ...]``."""
    p = subparsers.add_parser(
        "sync",
        help="deliver a run's journal to a logger (offline runs, outages, new trackers)",
        description="Replay a run journal into any installed logger, from where that "
        "logger stopped: running it twice delivers nothing twice.",
    )
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or run id / name under --root)")
    p.add_argument("--to", required=True, metavar="NAME", help="logger provider name")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="logger option (repeatable); secrets are better given through the environment",
    )
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--force", action="store_true", help="sync even if the run looks alive")
    p.add_argument("--root", default=None, help="where to look up a run id (default: .)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_sync)
    return p


def cmd_sync(args: argparse.Namespace) -> int:
    """Handler of ``ember sync``."""
    try:
        run_dir = resolve_run(args.run, _root(args))
        options = parse_options(args.option, args.to)
        target = {"name": args.to, **options}
        report = sync(run_dir, target, timeout=args.timeout, force=args.force)
    except _FAILURES as exc:
        return _fail(exc)
    if args.json:
        print(
            json.dumps(
                report.__dict__ | {"complete": report.complete, "run_dir": str(run_dir)}, indent=2
            )
        )
    elif report.state == "ok (already complete)":
        print(
            f"nothing to deliver: {report.label} already has all {report.delivered} "
            f"records of {run_dir}"
        )
    else:
        print(
            f"{report.label}: delivered {report.delivered}, pending {report.pending}, "
            f"failed {report.failed} ({report.state}) from {run_dir}"
        )
        if report.error and not report.complete:
            print(f"  last error: {report.error}")
    return 0 if report.complete else 1


# --------------------------------------------------------------------------- ember runs


def add_runs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``ember runs [list|show RUN|plot RUN METRIC... -o FILE.png]``."""
    p = subparsers.add_parser(
        "runs",
        help="list, show and plot the runs recorded under a root directory",
        description="Read run journals (also while a run is writing, or after it was killed).",
    )
    p.add_argument(
        "--root",
        dest="root_top",
        default=None,
        help="default_root_dir of the runs, its ember_runs folder, or a run (default: .)",
    )
    p.set_defaults(func=cmd_runs_list, json=False, root=None)
    sub = p.add_subparsers(dest="runs_command", metavar="ACTION")

    ls = sub.add_parser("list", help="one line per run (the default)")
    ls.add_argument("--root", default=None, help="where the runs are (default: .)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_runs_list)

    show = sub.add_parser("show", help="hyperparameters, last metrics, delivery per tracker")
    show.add_argument("run", metavar="RUN", help="run directory, id, id prefix or name")
    show.add_argument("--root", default=None, help="where to look up RUN (default: .)")
    show.add_argument("--config", action="store_true", help="also print the recorded config")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_runs_show)

    plot = sub.add_parser("plot", help="draw metrics against step into a PNG")
    plot.add_argument("run", metavar="RUN", help="run directory, id, id prefix or name")
    plot.add_argument("metrics", nargs="+", metavar="METRIC", help="metric names or globs")
    plot.add_argument("-o", "--output", required=True, metavar="FILE.png", help="image to write")
    plot.add_argument("--overlay", action="store_true", help="all metrics on one set of axes")
    plot.add_argument("--log-y", action="store_true", help="logarithmic value axis")
    plot.add_argument("--root", default=None, help="where to look up RUN (default: .)")
    plot.set_defaults(func=cmd_runs_plot)
    return p


def cmd_runs_list(args: argparse.Namespace) -> int:
    """Handler of ``ember runs`` / ``ember runs list``."""
    root = _root(args)
    summaries = []
    for run_dir in find_runs(root):
        try:
            with JournalReader(run_dir) as reader:
                summaries.append(summarize(reader))
        except JournalError as exc:
            print(f"ember: skipping {run_dir}: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps([s.as_dict() for s in summaries], indent=2))
        return 0
    if not summaries:
        print(f"no runs under {root} (runs live in <default_root_dir>/ember_runs/)")
        return 0
    rows = []
    for s in summaries:
        items = list(s.last_metrics.items())
        shown = " ".join(f"{k}={_num(v)}" for k, (_, v) in items[:4])
        if len(items) > 4:
            shown += f" (+{len(items) - 4})"
        name = "" if s.name == s.id else s.name
        rows.append([s.id, name, s.status, _when(s.started_at), _duration(s.duration), shown])
    print(_table(["RUN", "NAME", "STATUS", "START", "DURATION", "FINAL METRICS"], rows))
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    """Handler of ``ember runs show RUN``."""
    try:
        run_dir = resolve_run(args.run, _root(args))
        with JournalReader(run_dir) as reader:
            data = _show_data(reader)
    except _FAILURES as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    s = data["summary"]
    print(f"run       {s['id']}" + ("" if s["name"] == s["id"] else f"  ({s['name']})"))
    print(f"dir       {s['dir']}")
    print(f"status    {s['status']}")
    print(f"started   {_when(s['started_at'])}   duration {_duration(s['duration'])}")
    if data["resumes"]:
        # no step: a later entry point (test after fit) continued where the run was
        points = ", ".join("the last step" if r is None else f"step {r}" for r in data["resumes"])
        print(f"resumed   {len(data['resumes'])} time(s), from {points}")
    counts = data["records"]
    print("records   " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none"))

    print("\nhyperparameters")
    flat = flatten_params(data["hyperparams"])
    if flat:
        width = max(len(k) for k in flat)
        for key, value in flat.items():
            shown = value if isinstance(value, str) else json.dumps(value)
            print(f"  {key.ljust(width)}  {shown}")
    else:
        print("  none logged")

    print("\nmetrics")
    metrics = data["metrics"]
    if metrics:
        rows = [
            [n, _num(m["last"]), str(m["step"]), str(m["count"]), _num(m["min"]), _num(m["max"])]
            for n, m in metrics.items()
        ]
        print(
            _indent(_table(["NAME", "LAST", "STEP", "COUNT", "MIN", "MAX"], rows, (1, 2, 3, 4, 5)))
        )
    else:
        print("  none logged")

    if data["texts"]:
        print(f"\ntexts ({len(data['texts'])}, newest last)")
        for t in data["texts"][-5:]:
            first = t["text"].splitlines()[0] if t["text"] else ""
            print(f"  step {t['step']}  {t['key']}: {first[:70]}")
    if data["images"]:
        print(f"\nimages ({len(data['images'])}, newest last)")
        rows = [[i["key"], str(i["step"]), i["path"]] for i in data["images"][-5:]]
        print(_indent(_table(["KEY", "STEP", "PATH"], rows)))
    if data["artifacts"]:
        print("\nartifacts")
        rows = [[a["kind"], a["name"], str(a["step"]), a["path"]] for a in data["artifacts"]]
        print(_indent(_table(["KIND", "NAME", "STEP", "PATH"], rows)))

    print("\ntrackers")
    if data["trackers"]:
        rows = [
            [
                t["logger"],
                t["state"] or "-",
                str(t["delivered"]),
                str(t["pending"]),
                str(t["failed"]),
                t["tracker_ref"] or "-",
            ]
            for t in data["trackers"]
        ]
        print(
            _indent(
                _table(
                    ["LOGGER", "STATE", "DELIVERED", "PENDING", "FAILED", "TRACKER RUN"],
                    rows,
                    (2, 3, 4),
                )
            )
        )
    else:
        print("  none: the journal is the only record")
    if data["plugins"]:
        line = ", ".join(
            f"{p['distribution'] or p['name']} {p['version'] or ''}".strip()
            for p in data["plugins"]
            if p["status"] == "active"
        )
        print(f"\nplugins   {line}")
    if args.config:
        print("\nconfig (secrets redacted)")
        print(_indent(json.dumps(data["config"], indent=2, default=str)))
    return 0


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _show_data(reader: JournalReader) -> dict[str, Any]:
    summary = summarize(reader).as_dict()
    trackers = []
    for key, cur in reader.cursors().items():
        figures = logger_report(
            reader,
            key=key,
            label=key,
            kinds=cur["kinds"].split(",") if cur["kinds"] else KINDS,
            cursor=cur["seq"],
            skipped=cur["skipped"],
            failed_batch=cur["failed"],
            state=cur["state"] or "-",
            error=cur["error"],
        )
        trackers.append(
            {
                "logger": key,
                "state": figures.state,
                "delivered": figures.delivered,
                "pending": figures.pending,
                "failed": figures.failed,
                "tracker_ref": cur["tracker_ref"],
                "finalized": cur["finalized"],
                "error": cur["error"],
            }
        )
    config = reader.last_event("config")
    plugins = reader.last_event("plugins")
    return {
        "summary": summary,
        "resumes": [s["from_step"] for s in reader.segments()[1:]],
        "records": reader.counts_by_kind(),
        "hyperparams": reader.hyperparams(),
        "metrics": reader.metric_summary(),
        "texts": [
            {"key": r.name, "step": r.step, "text": r.data["text"]} for r in reader.records("text")
        ],
        "images": [
            {"key": r.name, "step": r.step, "path": r.data["path"]} for r in reader.records("image")
        ],
        "artifacts": [
            {"name": r.name, "step": r.step, **r.data} for r in reader.records("artifact")
        ],
        "trackers": trackers,
        "plugins": plugins["data"] if plugins else [],
        "config": config["data"] if config else None,
        "state": run_state(reader),
    }


def cmd_runs_plot(args: argparse.Namespace) -> int:
    """Handler of ``ember runs plot``."""
    from ember.hub.tracking.plot import plot_run

    try:
        run_dir = resolve_run(args.run, _root(args))
        out = plot_run(run_dir, args.metrics, args.output, overlay=args.overlay, log_y=args.log_y)
    except _FAILURES as exc:
        return _fail(exc)
    print(f"wrote {out}")
    return 0
