"""``EmberDataModule``: everything about the data of a run in one class, as a
LightningDataModule: download once, split, and hand out loaders per stage."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ember.trainer.errors import MisconfigurationError
from ember.trainer.hparams import HyperparametersMixin

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+; annotations stay strings at run time

    from ember.trainer.trainer import Trainer


class DataHooks:
    """What an ``EmberModule`` and an ``EmberDataModule`` both may define about data: the
    trainer takes loaders from the datamodule first, then from the module."""

    def prepare_data(self) -> None:
        """Download or write data once, before ``setup``; do not set state here."""

    def setup(self, stage: str) -> None:
        """Build what the stage (``"fit"``, ``"validate"``, ``"test"``, ``"predict"``) needs."""

    def teardown(self, stage: str) -> None:
        """Clean up at the end of a stage."""

    def train_dataloader(self) -> Any:
        """The training data: a DataLoader or any iterable of batches."""
        raise MisconfigurationError(f"{type(self).__name__} defines no train_dataloader")

    def val_dataloader(self) -> Any:
        """The validation data: a loader, or a list of loaders."""
        raise MisconfigurationError(f"{type(self).__name__} defines no val_dataloader")

    def test_dataloader(self) -> Any:
        """The test data: a loader, or a list of loaders."""
        raise MisconfigurationError(f"{type(self).__name__} defines no test_dataloader")

    def predict_dataloader(self) -> Any:
        """The data to predict on: a loader, or a list of loaders."""
        raise MisconfigurationError(f"{type(self).__name__} defines no predict_dataloader")


class EmberDataModule(DataHooks, HyperparametersMixin):
    """Subclass it and define the ``*_dataloader`` methods you need; pass it as
    ``trainer.fit(model, datamodule=dm)``."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (empty by default)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    @classmethod
    def load_from_checkpoint(
        cls, checkpoint_path: str | os.PathLike[str], **overrides: Any
    ) -> Self:
        """Build the datamodule from the hyperparameters a fit's checkpoint saved for it
        (``overrides`` win) and restore its :meth:`state_dict`; the file is read safely.

        :raises CheckpointError: the file is not a usable checkpoint, or its
            hyperparameters cannot build this class (the message says what to pass).
        """
        from ember.trainer.checkpoint.io import build_from_hyperparameters, load_checkpoint_safe

        checkpoint = load_checkpoint_safe(checkpoint_path)
        datamodule = build_from_hyperparameters(
            cls, checkpoint, checkpoint_path, "datamodule_hyper_parameters", overrides
        )
        if "datamodule" in checkpoint:
            datamodule.load_state_dict(checkpoint["datamodule"])
        return datamodule  # type: ignore[no-any-return]
