"""Train the digits classifier end to end: ``python -m examples.digits.train`` from the repo root.

Prints the final validation accuracy and where the run's files went; exits with status 1
when the accuracy is below the bar, so the script doubles as a smoke test of the engine.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ember.trainer import Trainer

from .data import DigitsData
from .model import DigitsClassifier

#: the accuracy this example promises; below it the script fails
TARGET_ACCURACY = 0.95


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators so two runs give the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of the example."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.digits.train",
        description="Train a small MLP on scikit-learn's bundled digits with ember.",
    )
    parser.add_argument("--max-epochs", type=int, default=20, help="epochs to train (20)")
    parser.add_argument(
        "--root", type=Path, default=Path("runs/digits"), help="where runs go (runs/digits)"
    )
    parser.add_argument("--hidden", type=int, default=128, help="hidden units (128)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (3e-3)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size (64)")
    parser.add_argument("--seed", type=int, default=0, help="global random seed (0)")
    args = parser.parse_args(argv)
    if args.max_epochs < 1:
        parser.error(f"--max-epochs must be at least 1, got {args.max_epochs}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Train, report, and return the process exit status."""
    args = parse_args(argv)
    seed_everything(args.seed)
    model = DigitsClassifier(hidden=args.hidden, lr=args.lr)
    data = DigitsData(batch_size=args.batch_size)
    # No logger= argument: the default is ember's embedded local tracking (journal + CSV).
    trainer = Trainer(max_epochs=args.max_epochs, default_root_dir=str(args.root))
    trainer.fit(model, datamodule=data)

    accuracy = float(trainer.callback_metrics["val_acc"])
    verdict = "PASS" if accuracy > TARGET_ACCURACY else "FAIL"
    print(f"\nfinal val_acc = {accuracy:.4f}  ({verdict}: target > {TARGET_ACCURACY})")
    print_run_files(trainer)
    return 0 if accuracy > TARGET_ACCURACY else 1


def print_run_files(trainer: Trainer) -> None:
    """Say where the run's journal, metrics and checkpoint went, and how to look at them."""
    run_dir = Path(trainer.log_dir)
    files = ", ".join(sorted(p.name for p in run_dir.iterdir())) if run_dir.is_dir() else ""
    print(f"run files: {run_dir}" + (f"  ({files})" if files else ""))
    checkpoint = getattr(trainer.checkpoint_callback, "best_model_path", "")
    if checkpoint:
        print(f"checkpoint: {checkpoint}")
    print(f"inspect it: ember runs show {run_dir}")


if __name__ == "__main__":
    sys.exit(main())
