"""What experiment tracking costs a training step: ember's journal + CSV pipeline, a
tracker that takes 100 ms per call, and Lightning's CSVLogger, against a raw loop.

Every contender trains the benchmark MLP of ``harness.py`` with two ``self.log`` calls per
step (loss and batch accuracy, ``log_every_n_steps=50``), on the same pre-made batches,
in one process, in interleaved rounds; medians of steady-state µs/step. The raw loop
computes the same accuracy and keeps both detached tensors (no tracker at all): it is
the floor, and "overhead" is measured against it.

Contenders:

* ``ember (a) no logger``: ``logger=False``; ``self.log`` machinery only.
* ``ember journal only``: ``logger=[]``, the run journal without any logger, for
  information: it separates the journal's cost from the loggers'.
* ``ember (b) journal + csv``: ember's default tracking (no ``logger=`` argument): the
  run journal plus the CSV logger, written from ember's worker thread.
* ``ember (c) 100 ms logger``: ``logger=SlowLogger()``, a logger (subclass of
  ``ember.hub.tracking.Logger``) whose every call sleeps 100 ms, like a tracker behind a
  slow network. ember must not make training wait for it.
* ``lightning csv``: Lightning with its own ``CSVLogger`` (its defaults), everything else
  off; ``lightning no logger`` (``logger=False``) is shown for reference.

"fixed ms" is everything outside the steady steps (start-up, the end-of-run flush).

Targets: (c)/(a) <= 1.02 per step (ratio of the two medians), i.e. a slow tracker does
not slow training; and (b)'s overhead <= 1/10 of Lightning's CSVLogger overhead
measured in the same run.

Heavy mode (``--heavy``): 50 metrics logged on every step and flushed on every step
(``log_every_n_steps=1``), ember's default tracking (journal + CSV) against the same
module with ``logger=False``. Target: (b heavy)/(a heavy) <= 1.25 per step.

Trackers mode (``--trackers``): real trackers, with ``log_every_n_steps=1`` (every step
reaches the tracker): a real ``mlflow server`` started on 127.0.0.1 for the run, and
TensorBoard event files. Contenders: ember with no logger, ember with
``logger={"name": "mlflow", "tracking_uri": <server>}`` and with ``logger="tensorboard"``,
each delivered from threads (the default) and from ember's delivery process
(``logger_delivery="process"``, rows ending in ", process"); each run finished inside
the timed call, so draining the queue counts in "fixed ms";
and Lightning with no logger, with its ``MLFlowLogger`` on the same server and with its
``TensorBoardLogger``. Target: each ember tracker row within 5% of ember with no logger
per step (ratio of the medians); Lightning's rows are shown for comparison (its MLflow
logger sends every step from the training thread and waits for the server). For
information: ``ember journal only`` (``logger=[]``), and ``ember no logger, server load``:
no logger while ``mlflow_load.py`` keeps the server as busy as the MLflow row did, from a
process of its own. On a small machine the server competes with training for the CPU;
the MLflow row against this one is what ember's own process pays.

In every mode the ember rows (and the raw loop) run at least :data:`STEADY_STEPS` steps,
so that the journal's ingest and the loggers' deliveries (every 0.25 s) happen inside the
timed window rather than in the finish; Lightning's rows run ``--steps``, and in the
default mode their overhead is measured against a raw loop of as many steps.

Run: ``python benchmarks/logging_overhead.py [--heavy | --trackers] [--steps 1000]
[--rounds 7] [--json OUT]``; exit status 1 when a target fails. Lightning rows need
``pip install -e '.[benchmark]'``; the tracker rows need ``ember-mlflow[test]`` (the
server) and ``ember-tensorboard``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from ember.hub.tracking import Capabilities, Logger, MetricRecord, RunInfo
from harness import (
    LOG_EVERY_N_STEPS,
    LR,
    Batch,
    Runner,
    TimedBatches,
    check,
    ember_runner,
    interleaved,
    lightning_runner,
    make_net,
    module_class,
    parse_args,
    prepare,
    print_parity,
    print_table,
    raw_runner,
    summarize,
)
from torch import nn
from torch.nn import functional as F

SLOW_CALL_S = 0.1
TARGET_SLOW_RATIO = 1.02
TARGET_VS_LIGHTNING = 1 / 10
HEAVY_METRICS = 50
TARGET_HEAVY_RATIO = 1.25
TARGET_TRACKER_RATIO = 1.05
#: the fewest steps an ember run of ``--heavy`` and ``--trackers`` takes: the journal's
#: ingest and each logger's deliveries run every 0.25 s, so a run of 1000 steps of about
#: 0.25 ms ended before the first delivery and left it to the finish ("fixed ms"); about
#: 10 of them fall into the timed window of 10 000 such steps
STEADY_STEPS = 10_000
#: how long an ember run waits at the last warm-up step for its loggers to start
SETTLE_TIMEOUT_S = 120.0
#: the raw loop on Lightning's (fewer) batches, the baseline of Lightning's overhead
RAW_SHORT = "raw2"
#: ember with no logger while ``mlflow_load.py`` keeps the MLflow server busy
LOADED = "ember no logger, server load"
MLFLOW_ROW = "ember mlflow server"
#: the same, delivering from ember's delivery process (``logger_delivery="process"``)
MLFLOW_PROCESS_ROW = "ember mlflow server, process"
PROCESS = {"logger_delivery": "process"}
#: ember with the run journal and no logger (``logger=[]``)
JOURNAL = "ember journal only"


class SlowLogger(Logger):
    """A tracker that takes 100 ms for every call, and counts what it received."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        hyperparams=True, metrics=True, offline=True
    )
    name: ClassVar[str] = "slow"
    #: metric records received by every instance, over the whole benchmark
    received: ClassVar[int] = 0
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def open(self, run: RunInfo) -> str | None:
        time.sleep(SLOW_CALL_S)
        return None

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        time.sleep(SLOW_CALL_S)

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        time.sleep(SLOW_CALL_S)
        with SlowLogger._lock:
            SlowLogger.received += len(records)

    def finalize(self, status: str) -> None:
        time.sleep(SLOW_CALL_S)


def contenders(root: str, with_lightning: bool) -> dict[str, Runner]:
    """Every runner of this benchmark, the raw loop first."""
    common = {
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "log_every_n_steps": LOG_EVERY_N_STEPS,
        "default_root_dir": root,
    }
    runners: dict[str, Runner] = {
        "raw": raw_runner(log=True),
        "ember (a) no logger": ember_runner(True, lambda: {**common, "logger": False}),
        JOURNAL: ember_runner(True, lambda: {**common, "logger": []}),
        "ember (b) journal + csv": ember_runner(True, lambda: common),
        "ember (c) 100 ms logger": ember_runner(True, lambda: {**common, "logger": SlowLogger()}),
    }
    if with_lightning:
        from lightning.pytorch.loggers import CSVLogger

        runners["lightning csv"] = lightning_runner(
            True, lambda: {**common, "logger": CSVLogger(save_dir=root)}
        )
        runners["lightning no logger"] = lightning_runner(True, lambda: {**common, "logger": False})
    return runners


def heavy_runner(make_flags: Callable[[], dict[str, Any]]) -> Runner:
    """The benchmark net trained by ember with a module that logs ``HEAVY_METRICS``
    metrics per step (the loss under 50 names: the logging, not the maths, is measured)."""
    from ember.trainer import EmberModule, Trainer

    names = ["train_loss", *(f"metric_{i:02d}" for i in range(1, HEAVY_METRICS))]

    class Heavy(EmberModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_net()

        def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            for name in names:
                self.log(name, loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=LR)

    def run(data: TimedBatches) -> nn.Module:
        model = Heavy()
        trainer = Trainer(accelerator="cpu", max_epochs=1, **make_flags())
        trainer.fit(model, data)
        trainer.run.finish()  # in the fixed time, like every ember contender
        return model.net

    return run


def heavy_main(args: argparse.Namespace) -> int:
    """``--heavy``: 50 metrics flushed every step, journal + CSV against no logger."""
    steps = max(args.steps, STEADY_STEPS)
    batches, root, _ = prepare(steps)
    common = {
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "log_every_n_steps": 1,
        "default_root_dir": root,
    }
    runners: dict[str, Runner] = {
        "raw": raw_runner(log=True),
        "ember (a) heavy, no logger": heavy_runner(lambda: {**common, "logger": False}),
        "ember heavy, journal only": heavy_runner(lambda: {**common, "logger": []}),
        "ember (b) heavy, journal+csv": heavy_runner(lambda: common),
    }
    series, parity = interleaved(runners, batches, args.warmup, args.rounds)
    summary = summarize(series, "raw")
    a = statistics.median(series["ember (a) heavy, no logger"]["us_per_step"])
    b = statistics.median(series["ember (b) heavy, journal+csv"]["us_per_step"])
    print(
        f"ember logging overhead, heavy mode: {HEAVY_METRICS} metrics logged and flushed "
        f"every step; {steps} steps per run, first {args.warmup} untimed; {args.rounds} "
        f"interleaved rounds; medians; MLP hidden width {args.hidden}; torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread, python "
        f"{platform.python_version()}"
    )
    print("\n(overhead = µs/step over raw, which logs 2 metrics without a tracker)")
    print_table(summary, "raw")
    print_parity(parity, "raw")
    print(f"  (b)/(a) per step: {b / a:.3f} (medians)")
    print("\ntargets:")
    verdicts = [
        check("(b) heavy journal+csv / (a) heavy no logger, per step", b / a, TARGET_HEAVY_RATIO)
    ]
    if args.json:
        payload = {
            "config": {
                "steps": steps,
                "rounds": args.rounds,
                "heavy": HEAVY_METRICS,
                "hidden": args.hidden,
            },
            "rounds": series,
            "summary": summary,
            "heavy_ratio": b / a,
            "targets": verdicts,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0 if all(v["pass"] for v in verdicts) else 1


def finished_ember_runner(make_flags: Callable[[], dict[str, Any]]) -> Runner:
    """Like ``harness.ember_runner``, and the run is finished inside the timed call: the
    loggers' drain and finalize count (in "fixed ms"), and no worker of this run is still
    delivering while the next contender is timed. A run whose loggers did not receive
    everything is an error, not a fast row.

    The loggers start in the background (importing the SDK, opening the tracker run;
    with ``logger_delivery="process"`` in a fresh interpreter, every run): at the last
    warm-up step the run waits until they hold what was logged so far, so that their
    start-up counts in "fixed ms", as Lightning's, made before its first step, does."""
    from ember.trainer import EmberModule, Trainer

    module_cls = module_class(EmberModule)

    def run(data: TimedBatches) -> Any:
        model = module_cls(True)
        trainer = Trainer(accelerator="cpu", max_epochs=1, **make_flags())

        def settle() -> None:
            if trainer.run.enabled and not trainer.run.flush(timeout=SETTLE_TIMEOUT_S).complete:
                raise RuntimeError("the loggers did not start within the warm-up")

        data.settle = settle
        trainer.fit(model, data)
        if trainer.run.enabled:
            report = trainer.run.finish("success")
            if not report.complete:
                raise RuntimeError(f"a logger did not receive everything:\n{report}")
        return model.net

    return run


def ember_has_logger(name: str) -> bool:
    """Whether a logger plugin providing ``name`` is installed."""
    from ember.hub import get_plugin_manager

    try:
        get_plugin_manager().get("logger", name)
    except Exception:
        return False
    return True


class ServerLoad:
    """The MLflow server's side of a run, without ember: ``mlflow_load.py`` in a process of
    its own posts metrics at a rate that gives the server as much CPU per training step as
    the ember MLflow row's runs gave it (their median). Each loaded run corrects the rate
    from what the last one measured; the first (in the untimed warm-up round) starts
    from two metrics per step of ``ember no logger``."""

    def __init__(self, server: Any, run_id: str) -> None:
        self.server = server
        self.run_id = run_id
        #: server CPU µs per step, per row, per round
        self.cpu: dict[str, list[float]] = {}
        #: µs per step of each row's last run
        self.step_us: dict[str, float] = {}
        #: metrics per training step the load posts
        self.per_step = 2.0

    def measured(self, name: str, runner: Runner) -> Runner:
        """``runner``, noting its step time and the server's CPU per step."""

        def run(data: TimedBatches) -> Any:
            before = self.server.cpu_seconds()
            out = runner(data)
            used = self.server.cpu_seconds() - before
            self.cpu.setdefault(name, []).append(used * 1e6 / len(data.batches))
            self.step_us[name] = data.us_per_step()
            if name == LOADED and self.cpu.get(MLFLOW_ROW):
                wanted = statistics.median(self.cpu[MLFLOW_ROW])
                self.per_step *= min(4.0, max(0.25, wanted / max(self.cpu[name][-1], 1.0)))
            return out

        return run

    def loaded(self, runner: Runner) -> Runner:
        """``runner`` while the load process keeps the server as busy as ember's row."""

        def run(data: TimedBatches) -> Any:
            step_us = self.step_us.get(LOADED) or self.step_us.get("ember no logger")
            if not step_us:
                raise RuntimeError("ember with no logger must run before the loaded row")
            script = Path(__file__).with_name("mlflow_load.py")
            load = subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    self.server.uri,
                    self.run_id,
                    str(self.per_step * 1e6 / step_us),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                if load.stdout is None or load.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"mlflow_load.py did not start (status {load.wait()})")
                return runner(data)
            finally:
                load.terminate()
                load.wait()

        return run


def tracker_contenders(
    root: str, server: Any, load: ServerLoad, with_lightning: bool
) -> dict[str, Runner]:
    """The ``--trackers`` runners: every step to a real MLflow server and to TensorBoard."""
    uri = server.uri
    common = {
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "log_every_n_steps": 1,
        "default_root_dir": root,
    }
    mlflow = {"name": "mlflow", "tracking_uri": uri, "experiment_name": "ember-bench"}
    no_logger = finished_ember_runner(lambda: {**common, "logger": False})
    runners: dict[str, Runner] = {
        "raw": raw_runner(log=True),
        # the loaded row's first rate (the warm-up round runs in this order)
        "ember no logger": load.measured("ember no logger", no_logger),
        JOURNAL: finished_ember_runner(lambda: {**common, "logger": []}),
        MLFLOW_ROW: load.measured(
            MLFLOW_ROW, finished_ember_runner(lambda: {**common, "logger": mlflow})
        ),
        LOADED: load.measured(LOADED, load.loaded(no_logger)),
    }
    # the same loggers delivering from ember's delivery process instead of threads
    runners[MLFLOW_PROCESS_ROW] = load.measured(
        MLFLOW_PROCESS_ROW,
        finished_ember_runner(lambda: {**common, "logger": mlflow, **PROCESS}),
    )
    if ember_has_logger("tensorboard"):
        runners["ember tensorboard"] = finished_ember_runner(
            lambda: {**common, "logger": "tensorboard"}
        )
        runners["ember tensorboard, process"] = finished_ember_runner(
            lambda: {**common, "logger": "tensorboard", **PROCESS}
        )
    else:
        print("ember-tensorboard is not installed: its row is skipped\n")
    if with_lightning:
        from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

        runners["lightning no logger"] = lightning_runner(True, lambda: {**common, "logger": False})
        runners["lightning mlflow server"] = lightning_runner(
            True,
            lambda: {
                **common,
                "logger": MLFlowLogger(experiment_name="lightning-bench", tracking_uri=uri),
            },
        )
        runners["lightning tensorboard"] = lightning_runner(
            True, lambda: {**common, "logger": TensorBoardLogger(save_dir=root, name="tb")}
        )
    return runners


def per_round(series: dict[str, Any], name: str, base: str) -> str:
    """The median and range of ``name``'s step time over ``base``'s within each round."""
    paired = [
        a / b for a, b in zip(series[name]["us_per_step"], series[base]["us_per_step"], strict=True)
    ]
    return f"{statistics.median(paired):.3f} [{min(paired):.2f}-{max(paired):.2f}]"


def main_trackers(args: argparse.Namespace) -> int:
    """``--trackers``: real trackers, every step; 1 when a target fails."""
    from ember_mlflow.testing import MlflowServer

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    steps = max(args.steps, STEADY_STEPS)
    batches, root, with_lightning = prepare(steps)
    server = MlflowServer(Path(root) / "mlflow-server").start()
    try:
        from mlflow import MlflowClient

        client = MlflowClient(server.uri)
        run_id = client.create_run(client.create_experiment("server-load")).info.run_id
        load = ServerLoad(server, run_id)
        runners = tracker_contenders(root, server, load, with_lightning)
        # Lightning sends every step from the training thread: its cost is the same from
        # the first step, and its MLflow row takes 10 ms or more per step
        short = batches[: args.steps]
        lightning = {n: short for n in runners if "lightning" in n and len(short) < len(batches)}
        series, parity = interleaved(runners, batches, args.warmup, args.rounds, lightning)
    finally:
        server.stop()
    summary = summarize(series, "raw")
    medians = {name: statistics.median(s["us_per_step"]) for name, s in series.items()}

    print(
        f"ember tracker overhead: every step to a real MLflow server ({server.uri}) and to "
        f"TensorBoard; {steps} steps per run ({args.steps} for Lightning), first "
        f"{args.warmup} untimed; "
        f"{args.rounds} interleaved rounds; medians; two self.log per step, "
        f"log_every_n_steps=1; MLP hidden width {args.hidden}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread, python {platform.python_version()}"
    )
    print("\n(overhead = µs/step over raw)")
    print_table(summary, "raw")
    print_parity(parity, "raw")

    ratios: dict[str, float] = {}
    print(
        "\nper step, against the same framework with no logger (ratio of medians; then the "
        "ratio within each round, which a machine whose speed drifts between rounds moves "
        "less):"
    )
    for framework in ("ember", "lightning"):
        base = medians.get(f"{framework} no logger")
        for name, value in medians.items():
            if base and name.startswith(framework) and "no logger" not in name:
                ratios[name] = value / base
                print(
                    f"  {name:<26} {value / base:6.3f}  ({value - base:+.1f} µs/step)   "
                    f"per round {per_round(series, name, f'{framework} no logger')}"
                )

    journal = medians[JOURNAL]
    print(
        "\nthe same rows against ember journal only, which every tracked run pays (the "
        "journal's cost taken out: what each tracker adds on top of it):"
    )
    beyond_journal: dict[str, float] = {}
    for name in ratios:
        if name.startswith("ember") and name != JOURNAL:
            beyond_journal[name] = medians[name] / journal
            print(
                f"  {name:<26} {medians[name] / journal:6.3f}  "
                f"({medians[name] - journal:+.1f} µs/step)   "
                f"per round {per_round(series, name, JOURNAL)}"
            )

    own = medians[MLFLOW_ROW] / medians[LOADED]
    print(
        f"\nthe MLflow server shares this machine: ember with no logger while another process "
        f"keeps the server as busy\n  costs {medians[LOADED] / medians['ember no logger']:.3f}x "
        f"ember with no logger; against it, ember's MLflow row is {own:.3f} "
        f"(per round {per_round(series, MLFLOW_ROW, LOADED)}): what ember's own process pays"
    )
    own_process = medians[MLFLOW_PROCESS_ROW] / medians[LOADED]
    print(
        f"  and its MLflow row delivering from the delivery process is {own_process:.3f} "
        f"(per round {per_round(series, MLFLOW_PROCESS_ROW, LOADED)})"
    )
    for name in (MLFLOW_ROW, MLFLOW_PROCESS_ROW, LOADED):
        cpu = load.cpu[name]
        print(f"  mlflow server CPU, {name}: {statistics.median(cpu):.0f} µs per step (median)")

    print("\ntargets:")
    verdicts = [
        check(f"{name} / ember no logger, per step", ratios[name], TARGET_TRACKER_RATIO)
        for name in ratios
        if name.startswith("ember") and name != JOURNAL
    ]
    if args.json:
        payload = {
            "config": {
                "mode": "trackers",
                "hidden": args.hidden,
                "steps": steps,
                "lightning_steps": args.steps,
                "warmup": args.warmup,
                "rounds": args.rounds,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "rounds": series,
            "summary": summary,
            "ratios_vs_no_logger": ratios,
            "ratios_vs_journal_only": beyond_journal,
            "mlflow_vs_no_logger_with_server_load": own,
            "mlflow_process_vs_no_logger_with_server_load": own_process,
            "server_cpu_us_per_step": load.cpu,
            "parity": parity,
            "targets": verdicts,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0 if all(v["pass"] for v in verdicts) else 1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and PASS/FAIL lines; 1 when a target fails."""
    switches = {
        "--heavy": f"{HEAVY_METRICS} metrics flushed every step (journal + CSV)",
        "--trackers": "log every step to a real local MLflow server and to TensorBoard",
    }
    args = parse_args(__doc__.split("\n\n")[0], argv, switches, hidden=True)
    if args.heavy:
        return heavy_main(args)
    if args.trackers:
        return main_trackers(args)
    steps = max(args.steps, STEADY_STEPS)
    batches, root, with_lightning = prepare(steps)

    runners = contenders(root, with_lightning)
    short = batches[: args.steps]
    lightning_rows: dict[str, list[Batch]] = {}
    if with_lightning and len(short) < len(batches):
        # Lightning's rows run --steps; their overhead is measured against a raw loop of
        # as many steps (a longer run of the same loop settles to a faster step)
        runners[RAW_SHORT] = raw_runner(log=True)
        lightning_rows = {n: short for n in runners if n.startswith("lightning") or n == RAW_SHORT}
    series, parity = interleaved(runners, batches, args.warmup, args.rounds, lightning_rows)
    summary = summarize(series, "raw")
    lightning_base = RAW_SHORT if lightning_rows else "raw"
    lightning_summary = summarize(
        {n: series[n] for n in series if n.startswith("lightning") or n == lightning_base},
        lightning_base,
    )
    a = series["ember (a) no logger"]["us_per_step"]
    c = series["ember (c) 100 ms logger"]["us_per_step"]
    # Ratio of the two medians: both rows run ember's identical hot path, and with seven
    # contenders per round the pairing of (a) and (c) within a round is loose, so the
    # median of per-round ratios mostly adds the noise of both runs.
    slow_ratio = statistics.median(c) / statistics.median(a)
    best_ratio = min(c) / min(a)

    print(
        f"ember logging overhead: {steps} steps per run ({args.steps} for Lightning), first "
        f"{args.warmup} untimed; "
        f"{args.rounds} interleaved rounds; medians; two self.log per step, "
        f"log_every_n_steps={LOG_EVERY_N_STEPS}; MLP hidden width {args.hidden}; torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread, python "
        f"{platform.python_version()}"
    )
    print("\n(overhead = µs/step over raw)")
    # Lightning's rows (and the raw loop on their batches) have a table of their own
    print_table(
        {n: v for n, v in summary.items() if not n.startswith(("lightning", RAW_SHORT))}, "raw"
    )
    if with_lightning:
        print(
            f"\nLightning, {len(short)} steps per run (overhead = µs/step over "
            f"{lightning_base}: the raw loop on the same {len(short)} batches)"
        )
        print_table(lightning_summary, lightning_base)
    print_parity(parity, "raw")
    print(f"  the 100 ms logger received {SlowLogger.received} metric records in all runs")
    print(f"  (c)/(a) per step: {slow_ratio:.3f} (medians), {best_ratio:.3f} (fastest runs)")

    print("\ntargets:")
    verdicts = [check("(c) 100 ms logger / (a) no logger, per step", slow_ratio, TARGET_SLOW_RATIO)]
    if with_lightning:
        verdicts.append(
            check(
                "(b) journal + csv overhead <= 1/10 of Lightning CSVLogger's",
                summary["ember (b) journal + csv"]["overhead_us_per_step"],
                lightning_summary["lightning csv"]["overhead_us_per_step"] * TARGET_VS_LIGHTNING,
                " µs",
            )
        )
    else:
        print("  SKIP  target relative to Lightning (not installed)")

    if args.json:
        payload = {
            "config": {
                "steps": steps,
                "lightning_steps": len(short),
                "warmup": args.warmup,
                "rounds": args.rounds,
                "hidden": args.hidden,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "rounds": series,
            "summary": summary,
            "slow_over_none_ratio": slow_ratio,
            "slow_over_none_best_run_ratio": best_ratio,
            "parity": parity,
            "targets": verdicts,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0 if all(v["pass"] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
