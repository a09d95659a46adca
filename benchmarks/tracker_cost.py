"""What logging every step to a tracker costs a training step, measured in alternating
windows of one fit, so that the machine's drift between fits does not swamp it.

``logging_overhead.py --trackers`` compares separate fits, and on a shared 2-core machine
the same contender's step moves by 10 to 30% from one fit to the next: more than the 5%
its target allows. Here each contender trains once with its logger attached, and every
``--window`` steps what the two ``self.log`` calls of a step reach alternates:

* **on:** the real ``Run.log_metrics``: the journal, and through it the logger, which
  delivers every step (``log_every_n_steps=1``) from its worker thread, or from ember's
  delivery process (``logger_delivery="process"``, rows ending in ", process");
* **off:** ``Run.log_metrics`` returns at once, which is what a run with ``logger=False``
  does (the module still calls ``self.log``; ember still reduces the values).

Each timed window comes after ``--lead`` untimed steps in the same state, longer than the
0.5 s a record takes to reach a logger (the journal's ingest and the worker's linger,
0.25 s each): an ``on`` window pays for its own steps' deliveries in steady state, and an
``off`` window none of them. Each ``on`` window is paired with the ``off`` window right
after it; the median of the pairs' ratios is the contender's cost. The first pair is left
out (the logger starts during it; the run also waits for it before the first window).

The MLflow rows post to a real ``mlflow server`` on 127.0.0.1, which shares the machine:
its CPU for every step logged (about 0.3 ms, more than the step) competes with training
for the second core, and counts here, as it would not with a remote server.

Run: ``python benchmarks/tracker_cost.py [--pairs 8] [--window 5000] [--lead 3000]
[--hidden 64] [--only NAME ...] [--json OUT]``. Prints, per contender, the step time
with nothing logged, the cost of logging (µs and ratio, median and range over pairs) and
a PASS/FAIL line against the 5% target; exit status 1 when a target fails. The middle
half of the pairs' ratios and the range of the ``off`` windows say how steady the
machine was: where they are wider than 5%, so is the verdict's uncertainty.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from ember.hub.tracking import Run
from harness import (
    Batch,
    add_hidden_option,
    check,
    make_batches,
    module_class,
    prepare,
    use_hidden_option,
)
from logging_overhead import PROCESS, SETTLE_TIMEOUT_S, TARGET_TRACKER_RATIO, ember_has_logger

#: distinct batches; the windows cycle through them
DISTINCT_BATCHES = 2000
JOURNAL_ONLY = "journal only"


class Windows:
    """The batches of one fit, cycled, in pairs of (lead, timed window) ``on`` then
    ``off``; :attr:`state` says which, and each timed window's µs per step is kept."""

    def __init__(self, batches: list[Batch], lead: int, window: int, pairs: int) -> None:
        self.batches = batches
        self.lead = lead
        self.window = window
        self.pairs = pairs
        self.state = "on"
        self.times: dict[str, list[float]] = {"on": [], "off": []}
        #: called once, just before the first timed window: waits for the loggers to start
        self.settle: Callable[[], None] | None = None

    def __len__(self) -> int:
        return self.pairs * 2 * (self.lead + self.window)

    def __iter__(self) -> Iterator[Batch]:
        half = self.lead + self.window
        started = 0.0
        for i in range(len(self)):
            at = i % half
            self.state = "on" if (i // half) % 2 == 0 else "off"
            if at == self.lead:
                if self.settle is not None:
                    self.settle()
                    self.settle = None
                started = time.perf_counter()
            elif at == 0 and i:
                self._close(i - 1, started)
            yield self.batches[i % len(self.batches)]
        self._close(len(self) - 1, started)

    def _close(self, last: int, started: float) -> None:
        """Keep the window that ended at step ``last`` (its state is that step's)."""
        state = "on" if (last // (self.lead + self.window)) % 2 == 0 else "off"
        self.times[state].append((time.perf_counter() - started) * 1e6 / self.window)


def measure(flags: dict[str, Any], batches: list[Batch], args: argparse.Namespace) -> dict:
    """One fit with ``flags``, windows alternating on/off; per-pair step times."""
    from ember.trainer import EmberModule, Trainer

    data = Windows(batches, args.lead, args.window, args.pairs)
    log_metrics = Run.log_metrics

    def windowed(self: Run, metrics: Any, step: int, **kwargs: Any) -> None:
        if data.state == "on":
            log_metrics(self, metrics, step, **kwargs)

    trainer = Trainer(
        accelerator="cpu",
        max_epochs=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **flags,
    )

    def settle() -> None:
        if not trainer.run.flush(timeout=SETTLE_TIMEOUT_S).complete:
            raise RuntimeError("the loggers did not start before the first window")

    data.settle = settle
    Run.log_metrics = windowed  # type: ignore[method-assign]
    sink = io.StringIO()  # what ember and the SDKs print; shown if the fit fails
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            trainer.fit(module_class(EmberModule)(True), data)
            report = trainer.run.finish("success")
    except BaseException:
        sys.stderr.write(sink.getvalue())
        raise
    finally:
        Run.log_metrics = log_metrics  # type: ignore[method-assign]
    if not report.complete:
        raise RuntimeError(f"a logger did not receive everything:\n{report}")
    # the first pair holds the loggers' start-up
    on, off = data.times["on"][1:], data.times["off"][1:]
    return {"on_us": on, "off_us": off, "ratios": [a / b for a, b in zip(on, off, strict=True)]}


def contenders(root: str, server_uri: str | None) -> dict[str, dict[str, Any]]:
    """The Trainer flags of each contender (each run in a folder of its own)."""
    out: dict[str, dict[str, Any]] = {JOURNAL_ONLY: {"logger": []}}
    if server_uri is not None:
        mlflow = {"name": "mlflow", "tracking_uri": server_uri, "experiment_name": "windows"}
        out["mlflow server"] = {"logger": mlflow}
        out["mlflow server, process"] = {"logger": mlflow, **PROCESS}
    if ember_has_logger("tensorboard"):
        out["tensorboard"] = {"logger": "tensorboard"}
        out["tensorboard, process"] = {"logger": "tensorboard", **PROCESS}
    for flags in out.values():
        flags["default_root_dir"] = root
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="on/off pairs per fit (8)")
    parser.add_argument("--window", type=int, default=5000, help="timed steps per window")
    parser.add_argument("--lead", type=int, default=3000, help="untimed steps before each")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these contenders (default: all)"
    )
    parser.add_argument("--json", metavar="OUT", help="also write every measurement to OUT")
    add_hidden_option(parser)
    args = parser.parse_args(argv)
    use_hidden_option(parser, args)
    if args.pairs < 2:
        parser.error("--pairs must be at least 2 (the first pair is left out)")
    _, root, _ = prepare(0)
    batches = make_batches(DISTINCT_BATCHES)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    wanted = set(args.only or ())
    needs_server = not wanted or any(name.startswith("mlflow") for name in wanted)
    server = None
    if needs_server and ember_has_logger("mlflow"):
        from ember_mlflow.testing import MlflowServer

        server = MlflowServer(Path(root) / "mlflow-server").start()
    try:
        runs = contenders(root, server.uri if server else None)
        unknown = wanted - set(runs)
        if unknown:
            parser.error(f"--only: no contender {sorted(unknown)}; there are {sorted(runs)}")
        print(
            f"logging every step (two self.log), windows of {args.window} steps after "
            f"{args.lead} untimed, {args.pairs - 1} pairs timed per fit; MLP hidden width "
            f"{args.hidden}; torch {torch.__version__}, python {platform.python_version()}"
        )
        results = {}
        for name, flags in runs.items():
            if wanted and name not in wanted:
                continue
            r = results[name] = measure(flags, batches, args)
            off = statistics.median(r["off_us"])
            cost = statistics.median(a - b for a, b in zip(r["on_us"], r["off_us"], strict=True))
            low, _, high = statistics.quantiles(r["ratios"], n=4)
            print(
                f"  {name:<24} off {off:6.1f} µs/step; on {cost:+6.1f} µs "
                f"x{statistics.median(r['ratios']):.3f} (middle half of the pairs "
                f"{low:.3f}-{high:.3f}; off windows {min(r['off_us']):.0f}-"
                f"{max(r['off_us']):.0f} µs/step)"
            )
    finally:
        if server is not None:
            server.stop()
    print("\ntargets (median over pairs of the on window over the off window after it):")
    verdicts = [
        check(
            f"{name} / nothing logged, per step",
            statistics.median(r["ratios"]),
            TARGET_TRACKER_RATIO,
        )
        for name, r in results.items()
        if name != JOURNAL_ONLY
    ]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "results": results, "targets": verdicts}, fh, indent=2)
        print(f"wrote {args.json}")
    return 0 if all(v["pass"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
