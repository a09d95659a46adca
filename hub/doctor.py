"""``ember doctor``: what this environment can run. Python, torch and its devices, every
plugin and its status, and for each tracker whether the credentials it declares are
present in the environment (never their values). Exits 1 when something is broken (torch
missing, a plugin failed to load or was made for other ember versions, two plugins claim
one name); a plugin that declares no ember versions gets a warning."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any

from ember.hub import __version__
from ember.hub.compat import COMPATIBLE, INCOMPATIBLE
from ember.hub.errors import EmberPluginError, IncompatiblePluginWarning
from ember.hub.manager import FIRST_PARTY, get_plugin_manager


def add_doctor_parser(sub: Any) -> None:
    """Register ``ember doctor``."""
    p = sub.add_parser("doctor", help="check Python, torch, devices, plugins and credentials")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_doctor)


def _torch() -> dict[str, Any]:
    start = time.perf_counter()
    try:
        import torch
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    info: dict[str, Any] = {
        "ok": True,
        "version": torch.__version__,
        "import_seconds": round(time.perf_counter() - start, 2),
        "cuda": {
            "built": torch.version.cuda,
            "available": torch.cuda.is_available(),
            "devices": [],
        },
        "mps": {"available": False},
    }
    if info["cuda"]["available"]:
        info["cuda"]["devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        info["mps"] = {"available": bool(mps.is_available())}
    return info


def _credentials(spec: Any) -> list[dict[str, Any]]:
    """Each secret (or required) option of a logger that declares an environment variable."""
    out = []
    for key, option in spec.options.items():
        if not (option.secret or option.required):
            continue
        entry: dict[str, Any] = {"option": key, "secret": option.secret, "env": option.env}
        entry["present"] = bool(option.env and os.environ.get(option.env, "").strip())
        out.append(entry)
    return out


def collect() -> dict[str, Any]:
    """Everything ``ember doctor`` reports, as plain data."""
    import platform

    report: dict[str, Any] = {
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "ok": sys.version_info >= (3, 10),
        },
        "ember": __version__,
        "torch": _torch(),
    }
    try:
        with warnings.catch_warnings():  # the report says it, with the reason
            warnings.simplefilter("ignore", IncompatiblePluginWarning)
            pm = get_plugin_manager()
        report["plugins"] = [i.as_dict() for i in pm.plugins()]
        report["conflicts"] = pm.conflicts
        loggers = pm.providers("logger") if not pm.conflicts else {}
    except EmberPluginError as exc:
        report["plugins"], report["conflicts"], loggers = [], [str(exc)], {}
    trackers = []
    for name, spec in sorted(loggers.items()):
        trackers.append(
            {
                "name": name,
                "installed": True,
                "distribution": spec.distribution,
                "version": spec.version,
                "credentials": _credentials(spec),
            }
        )
    for (kind, name), package in sorted(FIRST_PARTY.items()):
        if kind == "logger" and name not in loggers:
            trackers.append({"name": name, "installed": False, "package": package})
    report["trackers"] = trackers
    report["ok"] = bool(
        report["python"]["ok"]
        and report["torch"]["ok"]
        and not report["conflicts"]
        and all(p["status"] != "failed" for p in report["plugins"])
        and not any(_compat(p) == INCOMPATIBLE for p in report["plugins"])
    )
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as `ember doctor` prints it."""
    lines = [
        f"python   {report['python']['version']} ({report['python']['executable']})",
        f"ember    {report['ember']}",
    ]
    t = report["torch"]
    if not t["ok"]:
        lines.append(f"torch    MISSING: {t['error']} (run: bash scripts/setup_env.sh)")
    else:
        lines.append(f"torch    {t['version']} (import {t['import_seconds']:.2f} s)")
        cuda = t["cuda"]
        if cuda["available"]:
            lines.append(f"cuda     {len(cuda['devices'])} device(s): {', '.join(cuda['devices'])}")
        elif cuda["built"]:
            lines.append(f"cuda     not available (torch built for CUDA {cuda['built']})")
        else:
            lines.append("cuda     not available (a CPU build of torch)")
        lines.append("mps      " + ("available" if t["mps"]["available"] else "not available"))
    lines.append("plugins")
    for p in report["plugins"]:
        where = " ".join(filter(None, (p["distribution"], p["version"]))) or "code"
        detail = f": {p['error']}" if p["status"] != "active" and p["error"] else ""
        lines.append(f"  {p['name']:<16} {p['status']:<8} {where}{detail}")
        lines += compat_lines(p)
    for message in report["conflicts"]:
        lines.append(f"  CONFLICT: {message}")
    lines.append("trackers")
    for tr in report["trackers"]:
        if not tr["installed"]:
            lines.append(f"  {tr['name']:<16} not installed (pip install {tr['package']})")
            continue
        creds = []
        for c in tr["credentials"]:
            if c["env"]:
                state = "set" if c["present"] else "not set"
                creds.append(f"{c['option']} from ${c['env']}: {state}")
            else:
                creds.append(f"{c['option']}: give it in the run file")
        lines.append(
            f"  {tr['name']:<16} installed; credentials: "
            + ("; ".join(creds) if creds else "none declared")
        )
    lines.append("ok" if report["ok"] else "PROBLEMS FOUND (see above)")
    return "\n".join(lines)


def _compat(plugin: dict[str, Any]) -> str | None:
    compat = plugin.get("compatibility")
    return compat["status"] if compat else None


def compat_lines(plugin: dict[str, Any]) -> list[str]:
    """What the report says under a plugin about the ember versions it supports: an
    incompatible plugin is a problem (it is skipped under strict mode, and may break
    otherwise); one that declares no versions gets a warning."""
    compat = plugin.get("compatibility")
    if not compat or compat["status"] == COMPATIBLE:
        return []
    if compat["status"] == INCOMPATIBLE:
        return [f"    INCOMPATIBLE: {compat['reason']}"]
    return [f"    warning: no declared compatibility: {compat['reason']}"]


def _cmd_doctor(args: argparse.Namespace) -> int:
    report = collect()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["ok"] else 1
