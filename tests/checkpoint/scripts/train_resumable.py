"""A real training run for the resume tests: a small MLP with dropout, main-process random
augmentation (torch, numpy and Python draws), a shuffling loader, validation twice per
epoch, a step-saving ``ModelCheckpoint`` with ``last.ckpt`` and a top-k one.

usage: train_resumable.py ROOT [--resume] [--workers N] [--epochs E] [--trajectory]
                          [--kill-at-step S] [--epoch-checkpoints] [--step-sleep SECONDS]
                          [--devices N]

Prints ``ready <ckpt_path>`` when training starts (the harness kills only after it) and
writes the final weights to ``ROOT/final.pt``. ``--trajectory`` also writes the weights
after every optimizer step to ``ROOT/trajectory.pt``; ``--kill-at-step S`` sends SIGKILL
to itself right after the checkpoint of step S; ``--epoch-checkpoints`` saves
``last.ckpt`` at epoch ends only and ``--step-sleep`` makes each step last longer (for the
preemption tests, so that a signal sent at a random moment finds training running).
``--devices 2`` trains with DDP in two processes started by ember.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ember.trainer import Callback, EmberModule, Trainer
from ember.trainer.callbacks import ModelCheckpoint
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

ROWS, VAL_ROWS, FEATURES, CLASSES, BATCH = 96, 32, 8, 3, 8


def dataset(rows: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, FEATURES, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long())


class Net(EmberModule):
    """An MLP with dropout; the step adds noise drawn from torch, numpy and ``random``."""

    def __init__(self, hidden: int = 32, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(
            nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, CLASSES)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        x = x + 0.05 * torch.randn_like(x) + 0.01 * float(np.random.randn())
        x = x * (1.0 + 0.01 * random.random())
        return F.cross_entropy(self.body(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.body(x), y))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.9)]


class Announce(Callback):
    """Says when training starts, and which checkpoint it resumed from."""

    def on_train_start(self, trainer: Trainer, module: EmberModule) -> None:
        print(f"ready {trainer.ckpt_path}", flush=True)


class Trajectory(Callback):
    """Keeps the weights after every optimizer step."""

    def __init__(self) -> None:
        self.steps: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_end(self, trainer: Trainer, module: EmberModule, *args: Any) -> None:
        self.steps[trainer.global_step] = {
            k: v.detach().clone() for k, v in module.state_dict().items()
        }


class Slow(Callback):
    """Makes each step last ``seconds`` longer (draws nothing at random)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args: Any) -> None:
        time.sleep(self.seconds)


class KillAt(Callback):
    """SIGKILL, the signal nothing can catch, right after the checkpoint of ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trajectory", action="store_true")
    parser.add_argument("--kill-at-step", type=int)
    parser.add_argument("--epoch-checkpoints", action="store_true")
    parser.add_argument("--step-sleep", type=float, default=0.0)
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    ckpts = args.root / "ckpts"
    if args.epoch_checkpoints:
        last = ModelCheckpoint(dirpath=ckpts / "epoch", save_last=True)
    else:
        last = ModelCheckpoint(dirpath=ckpts / "step", every_n_train_steps=1, save_last=True)
    best = ModelCheckpoint(dirpath=ckpts / "best", monitor="val_loss", save_top_k=2)
    trajectory = Trajectory()
    callbacks: list[Any] = [Announce(), last, best]
    if args.trajectory:
        callbacks.append(trajectory)
    if args.step_sleep:
        callbacks.append(Slow(args.step_sleep))
    if args.kill_at_step is not None:
        callbacks.append(KillAt(args.kill_at_step))
    trainer = Trainer(
        max_epochs=args.epochs,
        default_root_dir=args.root,
        callbacks=callbacks,
        val_check_interval=0.5,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=args.devices,
    )
    model = Net()
    train = DataLoader(dataset(ROWS, 0), batch_size=BATCH, shuffle=True, num_workers=args.workers)
    val = DataLoader(dataset(VAL_ROWS, 1), batch_size=16)
    trainer.fit(model, train, val, ckpt_path="last" if args.resume else None)
    if not trainer.is_global_zero:  # under DDP every rank holds the same weights
        return
    torch.save(model.state_dict(), args.root / "final.pt")
    if args.trajectory:
        torch.save(trajectory.steps, args.root / "trajectory.pt")
    torch.save(
        {"best_k_models": {Path(p).name: float(s) for p, s in best.best_k_models.items()}},
        args.root / "best.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
