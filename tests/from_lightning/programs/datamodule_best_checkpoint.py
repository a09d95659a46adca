"""A data module, a scheduler stepped on a monitored metric, the best checkpoint by
validation loss, then validate and test on it."""

import sys

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, random_split


class BlobsData(LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage):
        g = torch.Generator().manual_seed(3)
        centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
        y = torch.randint(0, 3, (300,), generator=g)
        x = centers[y] + torch.randn(300, 2, generator=g)
        self.train_set, self.val_set, self.test_set = random_split(
            TensorDataset(x, y), [200, 50, 50], generator=torch.Generator().manual_seed(0)
        )

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=25)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=25)


class Blobs(LightningModule):
    def __init__(self, lr=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self(x).argmax(dim=1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


def show(name, metrics):
    print("RESULT", name, {k: round(float(v), 5) for k, v in sorted(metrics.items())})


seed_everything(21)
checkpoint = ModelCheckpoint(dirpath=f"{sys.argv[1]}/ckpts", monitor="val_loss", save_top_k=1)
trainer = Trainer(
    max_epochs=6,
    callbacks=[checkpoint],
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
)
model = Blobs()
data = BlobsData()
trainer.fit(model, datamodule=data)
show("after fit", trainer.callback_metrics)
show("progress bar", trainer.progress_bar_metrics)
print("RESULT lr", trainer.optimizers[0].param_groups[0]["lr"])
print("RESULT best", checkpoint.best_model_path.rsplit("/", 1)[-1])
print("RESULT best score", round(float(checkpoint.best_model_score), 5))
show("validate best", trainer.validate(model, datamodule=data, ckpt_path="best", verbose=False)[0])
show("test best", trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)[0])
