"""Write predictions as they are made (Lightning's ``BasePredictionWriter``): subclass it
and say where each batch's, or the whole epoch's, predictions go."""

from __future__ import annotations

from enum import Enum
from typing import Any

from ember.trainer.callback import Callback
from ember.trainer.errors import MisconfigurationError
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler


class WriteInterval(str, Enum):
    """When :class:`BasePredictionWriter` writes."""

    BATCH = "batch"
    EPOCH = "epoch"
    BATCH_AND_EPOCH = "batch_and_epoch"

    @property
    def on_batch(self) -> bool:
        """Whether ``write_on_batch_end`` is called."""
        return self in (WriteInterval.BATCH, WriteInterval.BATCH_AND_EPOCH)

    @property
    def on_epoch(self) -> bool:
        """Whether ``write_on_epoch_end`` is called."""
        return self in (WriteInterval.EPOCH, WriteInterval.BATCH_AND_EPOCH)


def _sample_indices(loader: Any) -> list[list[int]] | None:
    """The dataset indices of each batch of ``loader`` when they can be known without
    drawing from a random generator (a ``DataLoader`` reading in order); else ``None``."""
    if not isinstance(loader, DataLoader):
        return None
    batch_sampler = loader.batch_sampler
    if not isinstance(batch_sampler, BatchSampler):
        return None
    if not isinstance(batch_sampler.sampler, SequentialSampler):
        return None
    return [list(indices) for indices in batch_sampler]


class BasePredictionWriter(Callback):
    """Base class of callbacks that write predictions during ``trainer.predict``.

    Override :meth:`write_on_batch_end` (``write_interval="batch"``),
    :meth:`write_on_epoch_end` (``"epoch"``), or both (``"batch_and_epoch"``). Writing as
    you go, with ``trainer.predict(..., return_predictions=False)``, keeps memory flat.

    ``batch_indices`` are the dataset indices of each batch's samples when the loader reads
    in order (a ``DataLoader`` with ``shuffle=False``, the usual for prediction); an empty
    list otherwise.
    """

    def __init__(self, write_interval: str = "batch") -> None:
        try:
            self.interval = WriteInterval(write_interval)
        except ValueError:
            raise MisconfigurationError(
                f"write_interval={write_interval!r}: use one of "
                f"{', '.join(repr(i.value) for i in WriteInterval)}"
            ) from None
        self._indices: dict[int, list[list[int]] | None] = {}
        self._predictions: dict[int, list[Any]] = {}
        self._batch_indices: dict[int, list[list[int]]] = {}

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: Any,
        batch_indices: list[int],
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Write one batch's ``prediction`` (called after each prediction batch)."""
        raise NotImplementedError(
            f"{type(self).__name__}(write_interval={self.interval.value!r}) needs "
            "write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, "
            "batch_idx, dataloader_idx)"
        )

    def write_on_epoch_end(
        self,
        trainer: Any,
        pl_module: Any,
        predictions: list[Any],
        batch_indices: list[list[list[int]]],
    ) -> None:
        """Write every prediction of the epoch: a list of batch outputs (a list of such
        lists when there are several loaders); ``batch_indices`` has one list per loader."""
        raise NotImplementedError(
            f"{type(self).__name__}(write_interval={self.interval.value!r}) needs "
            "write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices)"
        )

    def on_predict_epoch_start(self, trainer: Any, module: Any) -> None:
        self._indices.clear()
        self._predictions.clear()
        self._batch_indices.clear()

    def _indices_of(self, trainer: Any, batch_idx: int, dataloader_idx: int) -> list[int]:
        if dataloader_idx not in self._indices:
            loaders = trainer.predict_dataloaders
            loader = loaders[dataloader_idx] if isinstance(loaders, list) else loaders
            self._indices[dataloader_idx] = _sample_indices(loader)
        known = self._indices[dataloader_idx]
        return known[batch_idx] if known is not None and batch_idx < len(known) else []

    def on_predict_batch_end(
        self,
        trainer: Any,
        module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        indices = self._indices_of(trainer, batch_idx, dataloader_idx)
        if self.interval.on_epoch:
            self._predictions.setdefault(dataloader_idx, []).append(outputs)
            self._batch_indices.setdefault(dataloader_idx, []).append(indices)
        if self.interval.on_batch:
            self.write_on_batch_end(
                trainer, module, outputs, indices, batch, batch_idx, dataloader_idx
            )

    def on_predict_epoch_end(self, trainer: Any, module: Any) -> None:
        if not self.interval.on_epoch:
            return
        loaders = trainer.predict_dataloaders
        count = len(loaders) if isinstance(loaders, list) else 1
        predictions = [self._predictions.get(i, []) for i in range(count)]
        indices = [self._batch_indices.get(i, []) for i in range(count)]
        self.write_on_epoch_end(
            trainer, module, predictions[0] if count == 1 else predictions, indices
        )
        self._predictions.clear()
        self._batch_indices.clear()
