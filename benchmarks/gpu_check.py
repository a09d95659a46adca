"""One script to run on a CUDA machine (a few minutes): ember's GPU paths work, and the
step loop makes no host-device synchronisation between flush points.

1. Training on one GPU in ``32-true``, ``16-mixed`` and ``bf16-mixed`` (bf16 only where
   the GPU has it): the loss falls, the weights stay float32, and µs per step next to a
   raw loop doing the same (autocast, plus ``GradScaler`` for ``16-mixed``).
2. The step loop under ``torch.cuda.set_sync_debug_mode("error")`` from the start of each
   batch to its end (forward, two ``self.log`` calls, backward, optimizer step, zero
   grad): any synchronising CUDA call raises. Flush points (every ``log_every_n_steps``
   and epoch ends) are outside the window: they read metrics back once, by design.
   ``16-mixed`` is left out: ``GradScaler.step`` itself reads the overflow flag on the
   host at every step (in any framework).
3. DDP over all visible GPUs (``torchrun --nproc-per-node <GPUs>``, nccl): every rank ends
   with the same weights and the loss falls; µs per step of rank zero.

Run: ``python benchmarks/gpu_check.py [--steps 400] [--json OUT]``. Prints a table and one
PASS/FAIL line per check; exit status 1 when a check fails, 2 without a CUDA device.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

FEATURES, HIDDEN, CLASSES, BATCH, WARMUP = 512, 2048, 16, 256, 20
QUIET = {
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "enable_checkpointing": False,
    "logger": False,
}


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(FEATURES, HIDDEN),
        nn.GELU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.GELU(),
        nn.Linear(HIDDEN, CLASSES),
    )


def make_batches(steps: int, device: torch.device, seed: int = 0) -> list[tuple[Any, Any]]:
    """Batches made once, already on the GPU (no loader, no copy in the timed loop)."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(FEATURES, CLASSES, generator=g)
    out = []
    for _ in range(steps):
        x = torch.randn(BATCH, FEATURES, generator=g)
        out.append((x.to(device), (x @ teacher).argmax(1).to(device)))
    return out


class Timed:
    """The batch iterable; stamps (after a CUDA synchronize) the steady-state window."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches, self.start, self.end = batches, 0.0, 0.0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Any:
        for i, batch in enumerate(self.batches):
            if i == WARMUP:
                torch.cuda.synchronize()
                self.start = time.perf_counter()
            elif i == len(self.batches) - 1:
                torch.cuda.synchronize()
                self.end = time.perf_counter()
            yield batch

    def us_per_step(self) -> float:
        return (self.end - self.start) * 1e6 / (len(self.batches) - 1 - WARMUP)


def module_class() -> type:
    from ember.trainer import Callback, EmberModule

    class Net(EmberModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_net()
            self.losses: list[torch.Tensor] = []

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y)
            self.log("train_loss", loss)
            self.log("train_acc", (logits.argmax(1) == y).float().mean())
            self.losses.append(loss.detach())
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    class SyncGuard(Callback):
        """Any host-device synchronisation inside a batch raises (after the warm-up)."""

        def on_train_batch_start(self, batch_idx: int) -> None:
            if batch_idx >= WARMUP:
                torch.cuda.set_sync_debug_mode("error")

        def on_train_batch_end(self, *args: Any) -> None:
            torch.cuda.set_sync_debug_mode("default")

    Net.SyncGuard = SyncGuard  # type: ignore[attr-defined]
    return Net


def raw_loop(batches: list[Any], precision: str) -> tuple[float, list[float]]:
    """A hand-written loop in ``precision``: µs/step and first/last loss."""
    net = make_net().cuda()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "16-mixed")
    data = Timed(batches)
    losses = []
    for x, y in data:
        context = torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()
        with context:
            loss = F.cross_entropy(net(x).float(), y)
        losses.append(loss.detach())
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    return data.us_per_step(), [float(losses[0]), float(losses[-1])]


def ember_run(batches: list[Any], precision: str, guard: bool, **flags: Any) -> dict[str, Any]:
    from ember.trainer import Trainer

    net_cls = module_class()
    module = net_cls()
    data = Timed(batches)
    callbacks = [net_cls.SyncGuard()] if guard else []
    trainer = Trainer(
        accelerator="cuda",
        precision=precision,
        max_epochs=1,
        log_every_n_steps=100,
        callbacks=callbacks,
        **{**QUIET, **flags},
    )
    error = None
    try:
        trainer.fit(module, data)
    except RuntimeError as exc:  # the sync guard's error, or a real failure
        error = str(exc).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    losses = [float(module.losses[0]), float(module.losses[-1])] if module.losses else []
    return {
        "trainer": trainer,
        "module": module,
        "us_per_step": data.us_per_step() if data.end else float("nan"),
        "losses": losses,
        "error": error,
    }


# --------------------------------------------------------------------------- DDP worker
def ddp_worker(steps: int, out: Path) -> None:
    """One of torchrun's processes: DDP over every GPU through ember."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    result = ember_run(
        make_batches(steps, device, seed=rank), "32-true", False, devices=world, strategy="ddp"
    )
    module, trainer = result["module"], result["trainer"]
    flat = torch.cat([p.detach().flatten() for p in module.parameters()]).cuda()
    gathered = trainer.strategy.all_gather(flat)  # the group is kept after fit
    same = bool(all(torch.equal(gathered[0], g) for g in gathered))
    if rank == 0:
        out.write_text(
            json.dumps(
                {
                    "world_size": world,
                    "strategy": type(trainer.strategy).__name__,
                    "us_per_step": result["us_per_step"],
                    "losses": result["losses"],
                    "same_weights": same,
                    "error": result["error"],
                }
            )
        )


def run_ddp(steps: int) -> dict[str, Any]:
    from ember.trainer.distributed.environments import free_port

    gpus = torch.cuda.device_count()
    with tempfile.TemporaryDirectory(prefix="ember-gpu-check-") as scratch:
        out = Path(scratch) / "ddp.json"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(gpus),
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
            __file__, "--ddp-worker", "--steps", str(steps), "--out", str(out),
        ]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not out.exists():
            return {"error": f"status {proc.returncode}: {proc.stderr[-3000:]}"}
        return json.loads(out.read_text())


# --------------------------------------------------------------------------- the checks
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="steps per run (400)")
    parser.add_argument("--json", metavar="OUT", help="also write the results to OUT")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        ddp_worker(args.steps, Path(args.out))
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device is visible: this check needs one (see docs/distributed.md)")
        return 2
    device = torch.device("cuda", 0)
    print(
        f"{torch.cuda.get_device_name(device)} x{torch.cuda.device_count()}, torch "
        f"{torch.__version__}, CUDA {torch.version.cuda}; {args.steps} steps per run"
    )
    batches = make_batches(args.steps, device)
    modes = ["32-true", "16-mixed"] + (["bf16-mixed"] if torch.cuda.is_bf16_supported() else [])
    checks: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []

    def record(name: str, ok: bool, detail: str = "") -> None:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}")
        checks.append({"check": name, "pass": ok, "detail": detail})

    for precision in modes:
        raw_us, raw_losses = raw_loop(batches, precision)
        run = ember_run(batches, precision, guard=False)
        weights = {p.dtype for p in run["module"].parameters()}
        rows.append(
            {
                "precision": precision,
                "raw_us": raw_us,
                "ember_us": run["us_per_step"],
                "raw_loss": raw_losses,
                "ember_loss": run["losses"],
            }
        )
        learned = bool(run["losses"]) and run["losses"][-1] < run["losses"][0]
        record(
            f"{precision}: trains on CUDA",
            run["error"] is None and learned,
            str(run["error"] or run["losses"]),
        )
        record(f"{precision}: weights stay float32", weights == {torch.float32}, str(weights))
        if precision != "16-mixed":
            guarded = ember_run(batches, precision, guard=True)
            record(
                f"{precision}: no host-device sync inside a step",
                guarded["error"] is None,
                guarded["error"] or "set_sync_debug_mode('error') between flush points",
            )
    print(f"\n  {'precision':<12}{'raw µs/step':>13}{'ember µs/step':>15}{'overhead':>10}")
    for row in rows:
        over = row["ember_us"] - row["raw_us"]
        print(
            f"  {row['precision']:<12}{row['raw_us']:>13.1f}{row['ember_us']:>15.1f}{over:>+10.1f}"
        )
    print()
    ddp = run_ddp(args.steps)
    if "error" in ddp and ddp.get("world_size") is None:
        record("DDP over all GPUs", False, ddp["error"])
    else:
        learned = ddp["losses"][-1] < ddp["losses"][0]
        record(
            f"DDP over {ddp['world_size']} GPU(s) ({ddp['strategy']})",
            ddp["error"] is None and ddp["same_weights"] and learned,
            f"same weights on every rank: {ddp['same_weights']}, losses {ddp['losses']}, "
            f"{ddp['us_per_step']:.1f} µs/step",
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "ddp": ddp, "checks": checks}, indent=2)
        )
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
