"""Shared pieces of ember's step-time benchmarks: the model, the data, the timing and
the tables, so every benchmark measures contenders in exactly the same way.

Timing: the one batch iterable every contender consumes stamps the clock when batch
``warmup`` is requested and again when the last batch is requested; the steady-state
time per step is the gap divided by the steps in it. Nothing is added to a framework's
hooks, and a framework that prefetches one batch (Lightning) shifts both stamps alike.
Everything else ``fit()`` costs (``Trainer(...)``, start-up, tear-down, final flushes) is
reported apart as "fixed ms".
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import io
import logging
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

IN_FEATURES, HIDDEN, CLASSES, BATCH = 32, 64, 10, 64
LR = 0.01
LOG_EVERY_N_STEPS = 50

Batch = tuple[torch.Tensor, torch.Tensor]
#: a contender trains the benchmark net on the given batches and returns the trained net
Runner = Callable[["TimedBatches"], nn.Module]


class TimedBatches:
    """The one batch iterable every contender consumes; stamps the steady-state window."""

    def __init__(self, batches: list[Batch], warmup: int) -> None:
        self.batches = batches
        self.warmup = warmup
        self.start_ns = 0
        self.end_ns = 0
        #: called when batch ``warmup`` is requested, before the window opens: a contender
        #: whose start-up goes on in the background (ember's loggers) waits for it there,
        #: so that it counts in "fixed ms" rather than in the steady-state steps
        self.settle: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        # The end stamp is taken when the last batch is requested, not at exhaustion: a
        # framework that knows the length (Lightning) never asks past the last batch.
        warmup, last = self.warmup, len(self.batches) - 1
        for i, batch in enumerate(self.batches):
            if i == warmup:
                if self.settle is not None:
                    self.settle()
                self.start_ns = time.perf_counter_ns()
            elif i == last:
                self.end_ns = time.perf_counter_ns()
            yield batch

    def us_per_step(self) -> float:
        """Mean time of the steps between the two stamps, in microseconds."""
        return (self.end_ns - self.start_ns) / 1e3 / (len(self.batches) - 1 - self.warmup)


def make_batches(steps: int, seed: int = 1234) -> list[Batch]:
    """``steps`` random (features, labels) batches, generated once, shared by everyone."""
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(BATCH, IN_FEATURES, generator=gen),
            torch.randint(0, CLASSES, (BATCH,), generator=gen),
        )
        for _ in range(steps)
    ]


def make_net() -> nn.Sequential:
    """The benchmark MLP, always with the same initial weights."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN_FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))


def batch_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The fraction of the batch classified correctly, as a tensor (no device sync)."""
    return (logits.argmax(dim=1) == y).float().mean()


def raw_runner(log: bool) -> Runner:
    """The reference: a hand-written PyTorch loop; with ``log``, it keeps the two metrics
    as detached tensors (no device sync) and averages them once at the end."""

    def run(data: TimedBatches) -> nn.Module:
        net = make_net()
        optimizer = torch.optim.SGD(net.parameters(), lr=LR)
        kept: list[torch.Tensor] = []
        for x, y in data:
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            if log:
                kept.append(loss.detach())
                kept.append(batch_accuracy(logits, y))
            loss.backward()
            optimizer.step()
            # Clearing after the step (not before backward) lets the allocator reuse the
            # freed gradients for the next forward: the faster of the two usual orders.
            optimizer.zero_grad()
        if kept:
            torch.stack(kept).view(-1, 2).mean(dim=0)
        return net

    return run


def module_class(base: type) -> type:
    """The benchmark module, written once against a Lightning-style base class."""

    class TinyMLP(base):  # type: ignore[misc, valid-type]
        def __init__(self, log: bool) -> None:
            super().__init__()
            self.net = make_net()
            self.log_metrics = log

        def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
            x, y = batch
            logits = self.net(x)
            loss = F.cross_entropy(logits, y)
            if self.log_metrics:
                self.log("train_loss", loss)
                self.log("train_acc", batch_accuracy(logits, y))
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=LR)

    return TinyMLP


def ember_runner(log: bool, make_flags: Callable[[], dict[str, Any]]) -> Runner:
    """Train the benchmark module with ember's ``Trainer(**make_flags())`` (called per
    run, so a logger object is fresh every time)."""
    from ember.trainer import EmberModule, Trainer

    module_cls = module_class(EmberModule)

    def run(data: TimedBatches) -> nn.Module:
        model = module_cls(log)
        trainer = Trainer(accelerator="cpu", max_epochs=1, **make_flags())
        trainer.fit(model, data)
        # finalize now (a later stage would share the run): in the fixed time, not later
        # in the background of another contender's run
        trainer.run.finish()
        return model.net

    return run


def lightning_available() -> bool:
    """Whether PyTorch Lightning can be imported (the ``benchmark`` extra)."""
    try:
        import lightning.pytorch  # noqa: F401
    except ImportError:
        return False
    return True


LIGHTNING_MISSING = (
    "PyTorch Lightning is not installed: its rows and targets are skipped. Install the "
    "benchmark extra with: pip install -e '.[benchmark]'"
)


def lightning_runner(log: bool, make_flags: Callable[[], dict[str, Any]]) -> Runner:
    """Train the benchmark module with ``lightning.pytorch.Trainer(**make_flags())``
    (called per run, so a logger object is fresh every time)."""
    import lightning.pytorch as pl

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    module_cls = module_class(pl.LightningModule)

    def run(data: TimedBatches) -> nn.Module:
        model = module_cls(log)
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, **make_flags())
        trainer.fit(model, data)
        return model.net

    return run


def timed_run(runner: Runner, batches: list[Batch], warmup: int) -> tuple[float, float, nn.Module]:
    """One training run: (steady µs/step, fixed ms outside the steady steps, trained net).

    The framework's console output is captured (and shown only if the run fails), the
    same way for every contender.
    """
    data = TimedBatches(batches, warmup)
    torch.set_num_threads(1)
    gc.collect()
    sink = io.StringIO()
    begin = time.perf_counter_ns()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            net = runner(data)
    except BaseException:
        sys.stderr.write(sink.getvalue())
        raise
    total_ns = time.perf_counter_ns() - begin
    if not data.end_ns:
        raise RuntimeError("the contender stopped before reaching the last batch")
    per_step = data.us_per_step()
    fixed_ms = (total_ns / 1e3 - per_step * len(batches)) / 1e3
    return per_step, fixed_ms, net


def max_weight_diff(a: nn.Module, b: nn.Module) -> float:
    """The largest absolute difference between two nets' parameters."""
    return max(
        (pa.detach() - pb.detach()).abs().max().item()
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True)
    )


def interleaved(
    contenders: dict[str, Runner],
    batches: list[Batch],
    warmup: int,
    rounds: int,
    own_batches: dict[str, list[Batch]] | None = None,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """Run every contender ``rounds`` times, rotating the order each round, after one
    untimed warm-up round; return the per-round series and the parity of each contender's
    trained weights against the first contender's trained on the same batches.
    ``own_batches``: the contenders that train on other batches than ``batches`` (fewer
    steps, for a contender whose every step is slow)."""
    names = list(contenders)
    data = {name: (own_batches or {}).get(name, batches) for name in names}
    warm = {name: timed_run(contenders[name], data[name], warmup)[2] for name in names}
    references: dict[int, nn.Module] = {id(batches): warm[names[0]]}
    parity = {}
    for name in names[1:]:
        key = id(data[name])
        if key not in references:
            references[key] = timed_run(contenders[names[0]], data[name], warmup)[2]
        parity[name] = max_weight_diff(references[key], warm[name])
    series: dict[str, dict[str, list[float]]] = {
        name: {"us_per_step": [], "fixed_ms": []} for name in names
    }
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            per_step, fixed_ms, _ = timed_run(contenders[name], data[name], warmup)
            series[name]["us_per_step"].append(per_step)
            series[name]["fixed_ms"].append(fixed_ms)
    return series, parity


def summarize(
    series: dict[str, dict[str, list[float]]], baseline: str
) -> dict[str, dict[str, float]]:
    """Medians per contender; overhead and ratio are medians of per-round pairs with the
    baseline's run of the same round, which cancels drift between rounds. The best-run
    overhead compares each contender's fastest run with the baseline's fastest: noise
    from other processes only ever adds time, so the fastest runs are the least
    disturbed (information; the targets use the medians)."""
    base = series[baseline]["us_per_step"]
    out: dict[str, dict[str, float]] = {}
    for name, s in series.items():
        steps = s["us_per_step"]
        out[name] = {
            "us_per_step": statistics.median(steps),
            "overhead_us_per_step": statistics.median(
                a - b for a, b in zip(steps, base, strict=True)
            ),
            "ratio": statistics.median(a / b for a, b in zip(steps, base, strict=True)),
            "best_overhead_us_per_step": min(steps) - min(base),
            "min_us_per_step": min(steps),
            "max_us_per_step": max(steps),
            "fixed_ms": statistics.median(s["fixed_ms"]),
        }
    return out


def print_table(summary: dict[str, dict[str, float]], baseline: str, indent: str = "  ") -> None:
    """The result table: one row per contender."""
    print(
        f"{indent}{'contender':<26}{'µs/step':>9}{'overhead':>10}{'x ' + baseline:>9}"
        f"{'min-max µs/step':>18}{'best-run overhead':>19}{'fixed ms':>10}"
    )
    for name, row in summary.items():
        over = "-" if name == baseline else f"{row['overhead_us_per_step']:+.1f}"
        best = "-" if name == baseline else f"{row['best_overhead_us_per_step']:+.1f}"
        spread = f"{row['min_us_per_step']:.1f}-{row['max_us_per_step']:.1f}"
        print(
            f"{indent}{name:<26}{row['us_per_step']:>9.1f}{over:>10}{row['ratio']:>9.3f}"
            f"{spread:>18}{best:>19}{row['fixed_ms']:>10.1f}"
        )


def print_parity(parity: dict[str, float], baseline: str, indent: str = "  ") -> None:
    """How far each contender's trained weights are from the baseline's."""
    for name, diff in parity.items():
        print(f"{indent}max |w_{baseline} - w_{name}| = {diff:.1e}")


def check(label: str, value: float, limit: float, unit: str = "") -> dict[str, Any]:
    """Print one PASS/FAIL line for ``value <= limit`` and return it as a record."""
    ok = value <= limit
    print(f"  {'PASS' if ok else 'FAIL'}  {label}: {value:.3f}{unit} (limit {limit:.3f}{unit})")
    return {"target": label, "value": value, "limit": limit, "pass": ok}


def parse_args(
    description: str,
    argv: list[str] | None,
    switches: dict[str, str] | None = None,
    *,
    hidden: bool = False,
) -> argparse.Namespace:
    """The options every step benchmark takes: --steps, --rounds, --warmup, --json, plus
    a benchmark's own on/off ``switches`` (``{"--heavy": "help text"}``); with ``hidden``,
    ``--hidden N`` too, which widens the benchmark MLP (sets :data:`HIDDEN`) for a longer
    step."""
    parser = argparse.ArgumentParser(description=description)
    for flag, text in (switches or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    if hidden:
        add_hidden_option(parser)
    parser.add_argument("--steps", type=int, default=1000, help="training steps per run (1000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds (7)")
    parser.add_argument(
        "--warmup", type=int, default=50, help="first steps of each run left out of timing (50)"
    )
    parser.add_argument("--json", metavar="OUT", help="also write all measurements to OUT")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup + 1:
        parser.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup}) + 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if hidden:
        use_hidden_option(parser, args)
    return args


def add_hidden_option(parser: argparse.ArgumentParser) -> None:
    """``--hidden N``: the MLP's hidden width, for a longer step (see :func:`parse_args`)."""
    parser.add_argument(
        "--hidden",
        type=int,
        default=HIDDEN,
        help=f"hidden width of the MLP ({HIDDEN}; 4096 makes a step of about 1.6 ms)",
    )


def use_hidden_option(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check ``--hidden`` and make it the width of every net built from now on."""
    global HIDDEN
    if args.hidden < 1:
        parser.error("--hidden must be at least 1")
    HIDDEN = args.hidden


def prepare(steps: int) -> tuple[list[Batch], str, bool]:
    """One thread, quiet warnings, the batches, a scratch folder removed at exit, and
    whether Lightning is installed (printing how to install it when it is not)."""
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    with_lightning = lightning_available()
    if not with_lightning:
        print(LIGHTNING_MISSING + "\n")
    root = tempfile.mkdtemp(prefix="ember-bench-")
    # run directories and CSV files the frameworks write are scratch
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return make_batches(steps), root, with_lightning
