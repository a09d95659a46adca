"""Per-step overhead of ember and PyTorch Lightning over a hand-written DDP loop:
2 processes, gloo, CPU.

Every contender runs under ``torchrun --nproc-per-node 2`` (the same launcher for all,
so start-up differences do not enter the per-step figure) and trains the benchmark MLP of
``harness.py`` wrapped in ``DistributedDataParallel``; each process iterates its own
pre-made in-memory batches (no ``DataLoader``, so no sampler is inserted by anyone).

* raw DDP: ``init_process_group("gloo")``, ``DistributedDataParallel(net)``, the loop.
* ember: ``Trainer(accelerator="cpu", devices=2, strategy="ddp")`` joins torchrun's
  processes; progress bar, model summary, checkpointing and loggers off.
* Lightning: ``lightning.pytorch.Trainer(accelerator="cpu", devices=2, strategy="ddp")``
  with the same switches off.

Timing is rank zero's steady state, stamped by the shared batch iterable (see
``harness.py``); rounds are interleaved (rotated order) after an untimed warm-up round,
and overheads are medians of per-round differences against the raw loop. Parity: rank
zero's trained weights are compared with the raw loop's.

Target: ember's overhead over the raw DDP loop <= 1/10 of Lightning's.

Run: ``python benchmarks/ddp_overhead.py [--steps 600] [--rounds 3] [--json OUT]``; exit
status 1 when the target fails. Lightning needs the ``benchmark`` extra
(``pip install -e '.[benchmark]'``); without it its row and the target are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from harness import (
    LR,
    TimedBatches,
    check,
    lightning_available,
    make_batches,
    make_net,
    module_class,
    print_table,
    summarize,
    timed_run,
)
from torch.nn import functional as F

TARGET_VS_LIGHTNING = 1 / 10
QUIET = {
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "enable_checkpointing": False,
    "logger": False,
}


# --------------------------------------------------------------------------- in each process
def raw_ddp(data: TimedBatches) -> torch.nn.Module:
    """The reference: a hand-written DDP loop."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    net = make_net()
    model = DistributedDataParallel(net)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for x, y in data:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return net


def ember_ddp(data: TimedBatches) -> torch.nn.Module:
    from ember.trainer import EmberModule, Trainer

    model = module_class(EmberModule)(False)
    Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, **QUIET).fit(model, data)
    return model.net


def lightning_ddp(data: TimedBatches) -> torch.nn.Module:
    import logging

    import lightning.pytorch as pl

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model = module_class(pl.LightningModule)(False)
    pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, **QUIET).fit(model, data)
    return model.net


CONTENDERS = {"raw DDP": raw_ddp, "ember": ember_ddp, "Lightning": lightning_ddp}


def worker(name: str, steps: int, warmup: int, out: Path) -> None:
    """One contender in one of torchrun's processes; rank zero writes its timing."""
    rank = int(os.environ["RANK"])
    batches = make_batches(steps, seed=1234 + rank)
    per_step, fixed_ms, net = timed_run(CONTENDERS[name], batches, warmup)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if rank == 0:
        weights = torch.cat([p.detach().flatten() for p in net.parameters()]).tolist()
        out.write_text(json.dumps({"us_per_step": per_step, "fixed_ms": fixed_ms, "w": weights}))


# --------------------------------------------------------------------------- the driver
def run_once(name: str, steps: int, warmup: int, scratch: Path, port: int) -> dict[str, Any]:
    out = scratch / f"{name.replace(' ', '_')}.json"
    out.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        __file__,
        "--worker",
        name,
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{name} failed (status {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="steps per process per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds")
    parser.add_argument("--warmup", type=int, default=50, help="steps left out of timing")
    parser.add_argument("--json", metavar="OUT", help="also write all measurements to OUT")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps, args.warmup, Path(args.out))
        return 0

    from ember.trainer.distributed.environments import free_port

    names = ["raw DDP", "ember"] + (["Lightning"] if lightning_available() else [])
    if "Lightning" not in names:
        print("PyTorch Lightning is not installed: its row and the target are skipped.\n")
    print(
        f"2-process DDP, gloo, CPU, 1 thread per process; torch {torch.__version__}; "
        f"{args.steps} steps per run ({args.warmup} warm-up), {args.rounds} rounds"
    )
    series: dict[str, dict[str, list[float]]] = {
        n: {"us_per_step": [], "fixed_ms": []} for n in names
    }
    with tempfile.TemporaryDirectory(prefix="ember-ddp-bench-") as scratch:
        warm = {n: run_once(n, args.steps, args.warmup, Path(scratch), free_port()) for n in names}
        for r in range(args.rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                result = run_once(name, args.steps, args.warmup, Path(scratch), free_port())
                series[name]["us_per_step"].append(result["us_per_step"])
                series[name]["fixed_ms"].append(result["fixed_ms"])
    summary = summarize(series, "raw DDP")
    print_table(summary, "raw DDP")
    reference = torch.tensor(warm["raw DDP"]["w"])
    for name in names[1:]:
        diff = (torch.tensor(warm[name]["w"]) - reference).abs().max().item()
        print(f"  max |w_raw - w_{name}| = {diff:.1e}")
    records = []
    if "Lightning" in summary:
        ember_over = summary["ember"]["overhead_us_per_step"]
        lightning_over = summary["Lightning"]["overhead_us_per_step"]
        ratio = ember_over / lightning_over if lightning_over > 0 else float("inf")
        records.append(check("ember overhead / Lightning overhead", ratio, TARGET_VS_LIGHTNING))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"series": series, "summary": summary, "targets": records}, indent=2)
        )
    return 0 if all(r["pass"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
