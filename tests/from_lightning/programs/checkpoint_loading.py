"""Saving a checkpoint, then loading it strictly, leniently and into the wrong shape."""

import sys

import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class Net(LightningModule):
    def __init__(self, hidden=8):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Linear(4, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.out(torch.relu(self.body(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class NetWithProbe(Net):
    def __init__(self, hidden=8):
        super().__init__(hidden)
        self.probe = nn.Linear(hidden, 2)
        self.strict_loading = False


seed_everything(0)
g = torch.Generator().manual_seed(0)
x = torch.randn(32, 4, generator=g)
loader = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
trainer = Trainer(
    max_epochs=2,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
    default_root_dir=sys.argv[1],
)
model = Net()
trainer.fit(model, loader)
path = f"{sys.argv[1]}/model.ckpt"
trainer.save_checkpoint(path)

restored = Net.load_from_checkpoint(path)
print("RESULT same body", torch.equal(restored.body.weight, model.body.weight))
try:
    Net.load_from_checkpoint(path, hidden=16)
except RuntimeError:
    print("RESULT shape mismatch raised RuntimeError")
lenient = NetWithProbe.load_from_checkpoint(path)
print("RESULT strict_loading", lenient.strict_loading)
print("RESULT lenient body", torch.equal(lenient.body.weight, model.body.weight))
relaxed = Net.load_from_checkpoint(path, strict=False)
print("RESULT strict=False body", torch.equal(relaxed.out.weight, model.out.weight))
