"""A small multilayer perceptron that classifies the 8x8 digit images."""

from __future__ import annotations

import torch
from ember.trainer import EmberModule
from torch import nn
from torch.nn import functional as F

from .data import NUM_CLASSES, NUM_FEATURES


class DigitsClassifier(EmberModule):
    """64 pixels -> ``hidden`` ReLU units -> 10 digit logits, trained with Adam."""

    def __init__(self, hidden: int = 128, lr: float = 3e-3, dropout: float = 0.1):
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden}")
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(NUM_FEATURES, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Digit logits for a batch of flattened, standardised images."""
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        """Cross-entropy on one training batch."""
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Loss and accuracy on one validation batch, averaged over the epoch by sample count."""
        x, y = batch
        logits = self(x)
        # batch_size makes the epoch mean exact when the last batch is smaller.
        n = y.shape[0]
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True, batch_size=n)
        accuracy = (logits.argmax(dim=1) == y).float().mean()
        self.log("val_acc", accuracy, prog_bar=True, batch_size=n)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam at the learning rate given to the constructor."""
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
