"""Per-step overhead of ember and PyTorch Lightning over a hand-written PyTorch loop.

All contenders train the same tiny MLP (32 -> 64 -> 10, SGD, batch 64) on CPU with one
thread, in one process, from the same initial weights, on the *same* iterable of
pre-made in-memory batches: loader cost is identical (nil) for everyone, and the only
difference left is what the framework does around the user's ``training_step``.

Fairness, point by point:

* Time per step is the steady state, stamped by the shared batch iterable (see
  ``harness.py``): no callback or hook is added to any framework. ``fit()`` start-up and
  tear-down are reported apart ("fixed ms"), not smeared into the per-step figure.
* Rounds are interleaved (each round runs every contender, in rotated order) after one
  untimed warm-up round; figures are medians over rounds, and overhead is the median of
  per-round differences against the raw loop of the same round.
* Mode "no logging": no ``self.log``. Both frameworks run with progress bar, model
  summary, checkpointing and loggers disabled (``logger=False``).
* Mode "2x self.log": the step also computes the batch accuracy and logs loss and
  accuracy with ``self.log`` (default flags: on step). Both frameworks keep
  ``logger=False``: the metrics reach no tracker, but their logging machinery (storing,
  reduction at the ``log_every_n_steps=50`` flushes, ``callback_metrics``) runs. The raw
  loop computes the same accuracy and appends both detached tensors to a list (how a
  hand-written loop keeps metrics without a device sync), so computing a metric is not
  counted as overhead: only the machinery around it is.
* Lightning is also run with ``barebones=True``, its own minimal-overhead mode (which
  forbids ``self.log``), in the no-logging mode, for information; the targets use the
  regular configuration above.
* Parity: the trained weights of every contender are compared with the raw loop's; all
  of them do exactly the same arithmetic.

Targets: without logging, ember's overhead <= 45 µs/step and <= 1/8 of Lightning's; with
logging, <= 1/10 of Lightning's.

Run: ``python benchmarks/overhead.py [--steps 1000] [--rounds 7] [--json OUT]``; exit
status 1 when a target fails. Lightning rows need the ``benchmark`` extra
(``pip install -e '.[benchmark]'``); without it they and their targets are skipped.
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any

import torch
from harness import (
    BATCH,
    CLASSES,
    HIDDEN,
    IN_FEATURES,
    LOG_EVERY_N_STEPS,
    Runner,
    check,
    ember_runner,
    interleaved,
    lightning_runner,
    parse_args,
    prepare,
    print_parity,
    print_table,
    raw_runner,
    summarize,
)

TARGET_NOLOG_US = 45.0
TARGET_NOLOG_VS_LIGHTNING = 1 / 8
TARGET_LOG_VS_LIGHTNING = 1 / 10


def contenders(log: bool, root: str, with_lightning: bool) -> dict[str, Runner]:
    """The runners of one mode, the raw loop first."""
    runners: dict[str, Runner] = {
        "raw": raw_runner(log),
        "ember": ember_runner(
            log,
            lambda: {
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "enable_checkpointing": False,
                "logger": False,
                "log_every_n_steps": LOG_EVERY_N_STEPS,
                "default_root_dir": root,
            },
        ),
    }
    if with_lightning:
        runners["lightning"] = lightning_runner(
            log,
            lambda: {
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "enable_checkpointing": False,
                "logger": False,
                "log_every_n_steps": LOG_EVERY_N_STEPS,
                "default_root_dir": root,
            },
        )
        if not log:
            # barebones turns all of the above off itself and refuses to be given them
            runners["lightning barebones"] = lightning_runner(
                log, lambda: {"barebones": True, "default_root_dir": root}
            )
    return runners


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables and PASS/FAIL lines; 1 when a target fails."""
    args = parse_args(__doc__.split("\n\n")[0], argv)
    batches, root, with_lightning = prepare(args.steps)

    print(
        f"ember overhead benchmark: {args.steps} steps per run, first {args.warmup} untimed; "
        f"{args.rounds} interleaved rounds; medians. MLP {IN_FEATURES}->{HIDDEN}->{CLASSES}, "
        f"batch {BATCH}, CPU, {torch.get_num_threads()} thread, torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )
    modes = {"no logging": False, "2x self.log": True}
    results: dict[str, Any] = {}
    for mode, log in modes.items():
        series, parity = interleaved(
            contenders(log, root, with_lightning), batches, args.warmup, args.rounds
        )
        summary = summarize(series, "raw")
        results[mode] = {"rounds": series, "summary": summary, "parity": parity}
        print(f"\nmode: {mode}  (overhead = µs/step over raw)")
        print_table(summary, "raw")
        print_parity(parity, "raw")

    print("\ntargets:")
    nolog = results["no logging"]["summary"]
    logged = results["2x self.log"]["summary"]
    verdicts = [
        check(
            "no logging: ember overhead <= 45 µs/step",
            nolog["ember"]["overhead_us_per_step"],
            TARGET_NOLOG_US,
            " µs",
        )
    ]
    if with_lightning:
        verdicts.append(
            check(
                "no logging: ember overhead <= 1/8 of Lightning's",
                nolog["ember"]["overhead_us_per_step"],
                nolog["lightning"]["overhead_us_per_step"] * TARGET_NOLOG_VS_LIGHTNING,
                " µs",
            )
        )
        verdicts.append(
            check(
                "2x self.log: ember overhead <= 1/10 of Lightning's",
                logged["ember"]["overhead_us_per_step"],
                logged["lightning"]["overhead_us_per_step"] * TARGET_LOG_VS_LIGHTNING,
                " µs",
            )
        )
    else:
        print("  SKIP  targets relative to Lightning (not installed)")

    if args.json:
        payload = {
            "config": {
                "steps": args.steps,
                "warmup": args.warmup,
                "rounds": args.rounds,
                "batch": BATCH,
                "model": [IN_FEATURES, HIDDEN, CLASSES],
                "torch": torch.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "modes": results,
            "targets": verdicts,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0 if all(v["pass"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
