"""Early stopping on a validation loss, with a callback that reads trainer attributes."""

import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class LitRegressor(LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class Watcher(Callback):
    def __init__(self):
        self.last_batches = []
        self.sanity = []

    def on_validation_start(self, trainer, pl_module):
        self.sanity.append(trainer.sanity_checking)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.is_last_batch:
            self.last_batches.append(batch_idx)


seed_everything(42)
g = torch.Generator().manual_seed(0)
x = torch.randn(96, 8, generator=g)
y = x[:, :2].sum(dim=1, keepdim=True) + 0.5 * torch.randn(96, 1, generator=g)
train = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=10)
val = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=16)

early_stopping = EarlyStopping(monitor="val_loss", patience=2, min_delta=0.01)
watcher = Watcher()
trainer = Trainer(
    max_epochs=30,
    callbacks=[early_stopping, watcher],
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
)
model = LitRegressor()
trainer.fit(model, train, val)
print("RESULT num_training_batches", trainer.num_training_batches)
print("RESULT num_val_batches", trainer.num_val_batches)
print("RESULT estimated_stepping_batches", trainer.estimated_stepping_batches)
print("RESULT current_epoch", trainer.current_epoch, "global_step", trainer.global_step)
print("RESULT stopped_epoch", early_stopping.stopped_epoch, early_stopping.stopping_reason.name)
print("RESULT val_loss", round(float(trainer.callback_metrics["val_loss"]), 5))
print("RESULT last batches", watcher.last_batches[:3], len(watcher.last_batches))
print("RESULT sanity", watcher.sanity[:2])
print("RESULT lightning_module is model", trainer.lightning_module is model)
