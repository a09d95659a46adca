"""A small regression trained with ember, written to run as-is in one process, under
ember's own DDP launcher (``--devices 2``) or under torchrun. Each process writes
``rank<global rank>.json`` into ``--out``: its final weights, what it saw, what it gathered."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from ember.trainer import EmberModule, Trainer
from ember.trainer.distributed.ddp import DDPStrategy
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Sampler, TensorDataset


def dataset(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    y = x @ torch.linspace(-1.0, 1.0, 6).unsqueeze(1) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


class EveryOther(Sampler[int]):
    """A user's own sampler: it keeps ember from inserting a DistributedSampler."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Any:
        return iter(range(0, self.n, 2))

    def __len__(self) -> int:
        return (self.n + 1) // 2


class Regression(EmberModule):
    def __init__(self, fail_rank: int = -1, nan_rank: int = -1, stop_rank: int = -1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(6, 1)
        self.fail_rank, self.nan_rank, self.stop_rank = fail_rank, nan_rank, stop_rank
        self.seen = 0
        self.gathered: list[list[float]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.seen += len(x)
        rank = self.trainer.global_rank
        if rank == self.fail_rank and self.global_step == 2:
            raise RuntimeError(f"deliberate failure on rank {rank}")
        loss = F.mse_loss(self.layer(x), y)
        if rank == self.nan_rank and self.global_step == 1:
            loss = loss * float("nan")
        if rank == self.stop_rank and self.global_step == 1:
            self.trainer.should_stop = True
        self.log("train_loss", loss, sync_dist=True)
        self.log("rank_sum", float(rank), sync_dist=True, reduce_fx="sum")
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.mse_loss(self.layer(x), y), sync_dist=True)

    def on_train_epoch_end(self) -> None:
        gathered = self.all_gather({"rank": torch.tensor([float(self.trainer.global_rank)])})
        self.gathered.append(gathered["rank"].flatten().tolist())

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def full(parameter: torch.Tensor) -> torch.Tensor:
    """The whole parameter (gathered from every process when FSDP sharded it)."""
    gather = getattr(parameter, "full_tensor", None)
    return gather() if gather is not None else parameter


class CountingDDP(DDPStrategy):
    """DDP that counts the checkpoints this process wrote."""

    writes = 0

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any) -> bool:
        wrote = super().save_checkpoint(checkpoint, path)
        CountingDDP.writes += int(wrote)
        return wrote


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--accumulate", type=int, default=1)
    parser.add_argument("--own-sampler", action="store_true")
    parser.add_argument("--fail-rank", type=int, default=-1)
    parser.add_argument("--nan-rank", type=int, default=-1)
    parser.add_argument("--stop-rank", type=int, default=-1)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--ckpt-path", default=None)
    parser.add_argument("--then-validate", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    data = dataset()
    sampler = EveryOther(len(data)) if args.own_sampler else None
    train = DataLoader(data, batch_size=args.batch, sampler=sampler)
    val = DataLoader(dataset(32), batch_size=args.batch)
    strategy: Any = args.strategy
    if strategy == "counting_ddp":
        strategy = CountingDDP()
    elif strategy.startswith("{"):  # a provider with options: {"name": "fsdp", ...}
        strategy = json.loads(strategy)
    trainer = Trainer(
        accelerator="cpu",
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=strategy,
        precision=args.precision,
        max_epochs=args.epochs,
        accumulate_grad_batches=args.accumulate,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_fit_summary=True,
        default_root_dir=out / "root",
        logger="csv",
    )
    model = Regression(args.fail_rank, args.nan_rank, args.stop_rank)
    trainer.fit(model, train, val, ckpt_path=args.ckpt_path)
    rank = trainer.global_rank
    validated: dict[str, Any] = {}
    if args.then_validate:  # a second Trainer joins the processes the first one started
        second = Trainer(
            accelerator="cpu",
            devices=args.devices,
            num_nodes=args.num_nodes,
            logger=False,
            enable_progress_bar=False,
            default_root_dir=out / "root",
        )
        metrics = second.validate(model, val, verbose=False)[0]
        validated = {"world_size": second.world_size, "rank": second.global_rank, **metrics}
    result = {
        "validated": validated,
        "rank": rank,
        "world_size": trainer.world_size,
        "strategy": type(trainer.strategy).__name__,
        "weights": [full(p).detach().double().flatten().tolist() for p in model.parameters()],
        "seen": model.seen,
        "global_step": trainer.global_step,
        "gathered": model.gathered,
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "checkpoint_writes": CountingDDP.writes,
        "log_dir": trainer.log_dir,
        "pid": os.getpid(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    print(f"rank {rank} done", file=sys.stderr)


if __name__ == "__main__":
    main()
