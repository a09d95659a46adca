"""Import cost of ember next to torch's, measured in fresh interpreters.

Each snippet runs in its own new Python process (nothing cached in ``sys.modules``),
``--runs`` times, interleaved (run i of every snippet before run i+1 of any) so machine
drift hits all snippets alike; medians are reported. Import snippets time themselves
with ``time.perf_counter`` around the import, so interpreter start-up is left out; the
``ember plugins`` row is the wall time of the whole command as a user sees it, next to a
bare ``python -c pass`` for scale.

Bytecode: the subprocesses run with Python's bytecode cache on, in a private temporary
folder (``PYTHONPYCACHEPREFIX``; the checkout is not touched), even when the calling
environment sets ``PYTHONDONTWRITEBYTECODE``. One untimed round fills that cache and the
operating system's file cache first, so the figures are those of every import after the
first one on an installed machine. Without a bytecode cache every import compiles
ember's sources again (roughly 0.1 s more); ``--as-is`` measures the environment exactly
as inherited instead.

Target: ``from ember.trainer import Trainer, EmberModule`` on top of ``import torch``
costs at most 0.15 s more than ``import torch`` alone. That increment is timed inside
the same process, right after torch's import, since the difference between two
processes' totals drowns in the noise of torch's own import time. ``import ember.hub``
must not import torch at all (reported).

Run: ``python benchmarks/import_time.py [--runs 11] [--as-is] [--json OUT]``; exit status
1 when a target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_EXTRA_S = 0.15
TRAINER_ROW = "import torch + ember.trainer"
#: the ember part of TRAINER_ROW, timed in the same process
EMBER_PART = "  of which ember.trainer"

#: name -> code that prints the seconds its import took (and, for ember.hub, torch's presence)
SNIPPETS: dict[str, str] = {
    "import torch": (
        "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
    ),
    TRAINER_ROW: (
        "import time; t = time.perf_counter(); import torch; u = time.perf_counter(); "
        "from ember.trainer import Trainer, EmberModule; v = time.perf_counter(); "
        "print(v - t, v - u)"
    ),
    "import ember.hub": (
        "import sys, time; t = time.perf_counter(); import ember.hub; "
        "print(time.perf_counter() - t, 'torch' in sys.modules)"
    ),
}


def ember_command() -> list[str]:
    """The ``ember`` console script next to this interpreter, else the module entry point."""
    script = Path(sys.executable).with_name("ember")
    if script.exists():
        return [str(script)]
    found = shutil.which("ember")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from ember.hub.cli import main; sys.exit(main())"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``cmd`` to completion: (wall seconds, its standard output)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return elapsed, proc.stdout


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and the PASS/FAIL lines; 1 when a target fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="fresh processes per row (11)")
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="keep the inherited environment (e.g. PYTHONDONTWRITEBYTECODE) unchanged",
    )
    parser.add_argument("--json", metavar="OUT", help="also write all measurements to OUT")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    env = dict(os.environ)
    cache_dir = None
    if not args.as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cache_dir = tempfile.mkdtemp(prefix="ember-pycache-")
        env["PYTHONPYCACHEPREFIX"] = cache_dir

    commands: dict[str, list[str]] = {
        "python -c pass (wall)": [sys.executable, "-c", "pass"],
        "ember plugins (wall)": [*ember_command(), "plugins"],
    }
    names = [*SNIPPETS, *commands]
    names.insert(names.index(TRAINER_ROW) + 1, EMBER_PART)
    samples: dict[str, list[float]] = {name: [] for name in names}
    hub_pulls_torch = False
    try:
        for i in range(args.runs + 1):  # round 0 fills the caches and is not kept
            for name, code in SNIPPETS.items():
                fields = run([sys.executable, "-c", code], env)[1].split()
                if name == "import ember.hub":
                    hub_pulls_torch = hub_pulls_torch or fields[1] == "True"
                if i:
                    samples[name].append(float(fields[0]))
                    if name == TRAINER_ROW:
                        samples[EMBER_PART].append(float(fields[1]))
            for name, cmd in commands.items():
                seconds = run(cmd, env)[0]
                if i:
                    samples[name].append(seconds)
    finally:
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    bytecode = (
        "as inherited"
        if args.as_is
        else "bytecode cache on (private PYTHONPYCACHEPREFIX, filled by an untimed round)"
    )
    print(
        f"import time: {args.runs} fresh processes per row, interleaved, medians; "
        f"python {platform.python_version()} ({sys.executable}); {bytecode}"
    )
    for var in ("PYTHONDONTWRITEBYTECODE", "EMBER_DISABLE_PLUGIN_AUTOLOAD"):
        if env.get(var):
            print(f"note: {var}={env[var]} is set for the measured processes")
    print(f"  {'what':<32}{'median s':>10}{'min s':>9}{'max s':>9}")
    for name, values in samples.items():
        print(f"  {name:<32}{medians[name]:>10.3f}{min(values):>9.3f}{max(values):>9.3f}")
    extra = medians[EMBER_PART]
    print(f"\n  ember.trainer on top of torch (timed in the same process): {extra:+.3f} s")
    print(f"  import ember.hub imports torch: {'yes' if hub_pulls_torch else 'no'}")

    within = extra <= TARGET_EXTRA_S
    print("\ntargets:")
    print(
        f"  {'PASS' if within else 'FAIL'}  ember.trainer import within {TARGET_EXTRA_S} s of "
        f"torch: {extra:+.3f} s"
    )
    print(f"  {'FAIL' if hub_pulls_torch else 'PASS'}  import ember.hub does not import torch")
    ok = within and not hub_pulls_torch

    if args.json:
        payload = {
            "runs": args.runs,
            "python": platform.python_version(),
            "bytecode_cache": not args.as_is,
            "samples_s": samples,
            "medians_s": medians,
            "ember_trainer_extra_s": extra,
            "hub_imports_torch": hub_pulls_torch,
            "pass": ok,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
