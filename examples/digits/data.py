"""The digits data: scikit-learn's bundled 8x8 handwritten digits, standardised and split
deterministically, so every run (and every machine) sees the same train and validation sets."""

from __future__ import annotations

import torch
from ember.trainer import EmberDataModule
from torch.utils.data import DataLoader, TensorDataset

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
except ImportError as exc:  # scikit-learn is the `examples` extra, not a core dependency
    raise ImportError(
        "the digits example needs scikit-learn: pip install -e '.[examples]' "
        "(or pip install scikit-learn)"
    ) from exc

#: pixels per image (8 x 8) and digit classes, for building models that fit this data
NUM_FEATURES = 64
NUM_CLASSES = 10


class DigitsData(EmberDataModule):
    """1797 labelled 8x8 digit images; ``val_fraction`` of them held out, stratified by class.

    Features are standardised with the training split's mean and standard deviation only,
    so nothing about the validation images leaks into training.
    """

    def __init__(self, batch_size: int = 64, val_fraction: float = 0.2, split_seed: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load, split and standardise the images (once; later calls are no-ops)."""
        if self.train_set is not None:
            return
        images, labels = load_digits(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(
            images,
            labels,
            test_size=self.val_fraction,
            random_state=self.split_seed,
            stratify=labels,
        )
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        # Border pixels are blank in every training image; leave them at zero, not NaN.
        std[std == 0] = 1.0
        self.train_set = _tensors(x_train, y_train, mean, std)
        self.val_set = _tensors(x_val, y_val, mean, std)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (the order follows torch's seeded global RNG)."""
        return DataLoader(self._require(self.train_set), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The validation split, in a fixed order."""
        return DataLoader(self._require(self.val_set), batch_size=self.batch_size)

    def _require(self, dataset: TensorDataset | None) -> TensorDataset:
        if dataset is None:
            raise RuntimeError("DigitsData.setup() has not run yet; call it before asking for data")
        return dataset


def _tensors(x, y, mean, std) -> TensorDataset:
    features = torch.as_tensor((x - mean) / std, dtype=torch.float32)
    return TensorDataset(features, torch.as_tensor(y, dtype=torch.long))
