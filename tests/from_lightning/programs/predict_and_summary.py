"""Steps without batch_idx, a prediction writer, and the model summary utility."""

import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_summary import ModelSummary
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class AutoEncoder(LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 2))
        self.decoder = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 12))
        self.example_input_array = torch.zeros(3, 12)

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch):
        (x,) = batch
        loss = F.mse_loss(self(x), x)
        self.log("train_loss", loss)
        return loss

    def predict_step(self, batch):
        (x,) = batch
        return self.encoder(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)


class SumWriter(BasePredictionWriter):
    def __init__(self):
        super().__init__(write_interval="batch_and_epoch")
        self.rows = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        self.rows.append((batch_idx, batch_indices, round(float(prediction.sum()), 4)))

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        self.rows.append(("epoch", len(predictions), batch_indices))


@rank_zero_only
def report(*values):
    print("RESULT", *values)


seed_everything(5)
g = torch.Generator().manual_seed(5)
x = torch.randn(30, 12, generator=g)
model = AutoEncoder()
summary = ModelSummary(model, max_depth=1)
report("summary", summary.total_parameters, summary.trainable_parameters)
report("layers", summary.layer_names, summary.layer_types)
report("sizes", summary.in_sizes, summary.out_sizes)
writer = SumWriter()
trainer = Trainer(
    max_epochs=2,
    callbacks=[writer],
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
)
trainer.fit(model, DataLoader(TensorDataset(x), batch_size=8))
predictions = trainer.predict(model, DataLoader(TensorDataset(x), batch_size=8))
report("predictions", len(predictions), round(float(torch.cat(predictions).sum()), 4))
for row in writer.rows:
    report("writer", row)
