"""TorchMetrics objects logged from the steps; fit, then validate and test."""

import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


class LitClassifier(LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
        self.train_acc = MulticlassAccuracy(num_classes=3)
        self.val_acc = MulticlassAccuracy(num_classes=3)
        self.val_f1 = MulticlassF1Score(num_classes=3, average="macro")
        self.test_acc = MulticlassAccuracy(num_classes=3)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train_acc", self.train_acc, on_step=True, on_epoch=True)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_acc.update(logits, y)
        self.val_f1(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", self.val_acc)
        self.log("val_f1", self.val_f1, prog_bar=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.test_acc(self(x), y)
        self.log("test_acc", self.test_acc)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)


def show(name, metrics):
    print("RESULT", name, {k: round(float(v), 5) for k, v in sorted(metrics.items())})


seed_everything(7)
g = torch.Generator().manual_seed(1)
x = torch.randn(200, 6, generator=g)
y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
train = DataLoader(TensorDataset(x[:120], y[:120]), batch_size=16)
val = DataLoader(TensorDataset(x[120:160], y[120:160]), batch_size=16)
test = DataLoader(TensorDataset(x[160:], y[160:]), batch_size=16)

trainer = Trainer(
    max_epochs=3,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
)
model = LitClassifier()
trainer.fit(model, train, val)
show("after fit", trainer.callback_metrics)
show("validate", trainer.validate(model, val, verbose=False)[0])
show("test", trainer.test(model, test, verbose=False)[0])
show("after test", trainer.callback_metrics)
