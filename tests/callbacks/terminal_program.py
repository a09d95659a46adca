"""A training program run by the terminal tests as a child process attached to a real
pseudo-terminal (``python terminal_program.py OPTIONS``).

It counts host transfers (``Tensor.item``/``Tensor.tolist``: each one makes the host wait
for the device) and prints ``TRANSFERS <n>`` on its last line; ``--chatty`` adds a
callback that prints, warns and logs at each epoch end.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Any

import torch
from ember.trainer import Callback, EmberModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

transfers = 0


def _count(name: str) -> None:
    original = getattr(torch.Tensor, name)

    def counted(tensor: torch.Tensor, *args: Any) -> Any:
        global transfers
        transfers += 1
        return original(tensor, *args)

    setattr(torch.Tensor, name, counted)


class Chatty(Callback):
    """Talks to the terminal the three usual ways while the bar is on screen."""

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        print(f"printed at epoch {trainer.current_epoch}")
        warnings.warn(f"warned at epoch {trainer.current_epoch}", stacklevel=1)
        logging.getLogger("user").warning("logged at epoch %d", trainer.current_epoch)


class Model(EmberModule):
    def __init__(self, prog_bar: bool, metrics: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.prog_bar = prog_bar
        self.metrics = metrics

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, prog_bar=self.prog_bar)
        for i in range(self.metrics):
            self.log(f"a_long_metric_name_number_{i}", loss * i, prog_bar=self.prog_bar)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y), prog_bar=True)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0])

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--no-prog-bar", action="store_true")
    parser.add_argument("--no-bar", action="store_true")
    parser.add_argument(
        "--compare-bar", action="store_true", help="fit without the bar first, then with it"
    )
    parser.add_argument("--metrics", type=int, default=0, help="extra prog_bar metrics")
    parser.add_argument("--chatty", action="store_true")
    parser.add_argument("--validation", action="store_true")
    parser.add_argument("--then-validate-and-predict", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(format="%(levelname)s:%(name)s:%(message)s")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.steps * 2, 4, generator=g)
    data = TensorDataset(x, x.sum(dim=1, keepdim=True))
    train = DataLoader(data, batch_size=2)
    val = DataLoader(data, batch_size=50)
    for name in ("item", "tolist"):
        _count(name)
    for bar in [False, True] if args.compare_bar else [not args.no_bar]:
        before = transfers
        trainer = Trainer(
            max_epochs=args.epochs,
            default_root_dir=args.root,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=bar,
            num_sanity_val_steps=0,
            callbacks=[Chatty()] if args.chatty else [],
        )
        model = Model(prog_bar=not args.no_prog_bar, metrics=args.metrics)
        trainer.fit(model, train, val if args.validation else None)
        if args.then_validate_and_predict:
            trainer.validate(model, val, verbose=False)
            trainer.predict(model, val)
        sys.stdout.write(f"TRANSFERS {transfers - before}\n")


if __name__ == "__main__":
    main()
