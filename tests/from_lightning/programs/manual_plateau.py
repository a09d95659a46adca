"""Manual optimization with two optimizers and a ReduceLROnPlateau stepped by hand."""

import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class TwoPart(LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.encoder = nn.Linear(4, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.relu(self.encoder(x)))

    def training_step(self, batch, batch_idx):
        enc_opt, head_opt = self.optimizers()
        x, y = batch
        loss = F.mse_loss(self(x), y)
        enc_opt.zero_grad()
        head_opt.zero_grad()
        self.manual_backward(loss)
        enc_opt.step()
        head_opt.step()
        self.log("train_loss", loss, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        plateau = self.lr_schedulers()
        plateau.step(self.trainer.callback_metrics["val_loss"])

    def configure_optimizers(self):
        enc_opt = torch.optim.SGD(self.encoder.parameters(), lr=0.2)
        head_opt = torch.optim.SGD(self.head.parameters(), lr=0.2)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(enc_opt, factor=0.5, patience=0)
        return [enc_opt, head_opt], [plateau]


seed_everything(3)
g = torch.Generator().manual_seed(2)
x = torch.randn(64, 4, generator=g)
y = torch.sin(x.sum(dim=1, keepdim=True))
loader = DataLoader(TensorDataset(x, y), batch_size=8)
trainer = Trainer(
    max_epochs=6,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
)
model = TwoPart()
trainer.fit(model, loader, loader)
enc_opt, head_opt = model.optimizers()
print("RESULT lrs", enc_opt.param_groups[0]["lr"], head_opt.param_groups[0]["lr"])
print("RESULT global_step", trainer.global_step)
print("RESULT val_loss", round(float(trainer.callback_metrics["val_loss"]), 5))
print("RESULT weights", round(float(sum(p.sum() for p in model.parameters())), 5))
