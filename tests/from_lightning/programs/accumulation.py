"""A gradient accumulation schedule and a callback that stops training by hand."""

import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import GradientAccumulationScheduler
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class LitModel(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(5, 1)
        self.steps = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.layer(x), y)

    def on_train_epoch_end(self):
        self.steps.append(self.global_step)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class StopAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


seed_everything(11)
g = torch.Generator().manual_seed(4)
x = torch.randn(40, 5, generator=g)
y = x @ torch.arange(5.0).unsqueeze(1)
loader = DataLoader(TensorDataset(x, y), batch_size=4)
trainer = Trainer(
    max_epochs=10,
    callbacks=[GradientAccumulationScheduler(scheduling={1: 2, 3: 5}), StopAfter(4)],
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
)
model = LitModel()
trainer.fit(model, loader)
print("RESULT steps per epoch end", model.steps)
print("RESULT accumulate_grad_batches", trainer.accumulate_grad_batches)
print("RESULT epochs", trainer.current_epoch)
print("RESULT weight", [round(v, 5) for v in model.layer.weight.flatten().tolist()])
