"""Loaders: where each stage's batches come from and how they are iterated.

Evaluation and prediction iterate through :func:`epoch_batches`, so sampler epoch seeding
and ``limit_*_batches`` live in one place; training iterates a
:class:`~ember.trainer.checkpoint.ResumableLoader`, which also knows the position inside
the epoch. A loader is a ``DataLoader`` or any iterable of batches (a plain list works).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

from ember.trainer.errors import MisconfigurationError, warn_user
from ember.trainer.module import overrides
from ember.trainer.utilities import seed_loader_workers
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler

_END = object()


class DataSource:
    """Where one kind of loader comes from: an argument, the datamodule, or the module.

    :param method: ``"train_dataloader"``, ``"val_dataloader"``, ...
    """

    def __init__(self, method: str, explicit: Any, datamodule: Any, module: Any) -> None:
        from ember.trainer.datamodule import EmberDataModule
        from ember.trainer.module import EmberModule

        self.method = method
        self.explicit = explicit
        self.owner: Any = None
        if explicit is None:
            if datamodule is not None and overrides(datamodule, method, EmberDataModule):
                self.owner = datamodule
            elif module is not None and overrides(module, method, EmberModule):
                self.owner = module

    @property
    def defined(self) -> bool:
        """Whether any loader was given or can be built."""
        return self.explicit is not None or self.owner is not None

    @property
    def reloadable(self) -> bool:
        """Whether asking again can return a new loader (a method, not an object)."""
        return self.owner is not None

    def loaders(self) -> list[Any]:
        """The loaders, as a list (several validation loaders, or one)."""
        if self.explicit is not None:
            value = self.explicit
        elif self.owner is not None:
            value = getattr(self.owner, self.method)()
        else:
            return []
        if value is None:
            return []
        if isinstance(value, Mapping):
            raise MisconfigurationError(
                f"got a dict of loaders for {self.method} (keys "
                f"{', '.join(map(repr, value))}): pass one loader, or a list of DataLoaders"
            )
        loaders = list(value) if is_loader_list(value) else [value]
        for loader in loaders:
            self._check_iterable(loader)
        # after seed_everything(..., workers=True), workers get seeded per rank and id
        return [seed_loader_workers(loader) for loader in loaders]

    def _origin(self) -> str:
        """Where the loader came from, for messages."""
        if self.explicit is not None:
            return f"the {_DATA_NAMES.get(self.method, self.method)} passed in"
        return f"{type(self.owner).__name__}.{self.method}()"

    def _check_iterable(self, loader: Any) -> None:
        """A loader must yield batches: anything else fails here, not inside the loop; a
        Dataset given where a DataLoader belongs would yield single samples."""
        if isinstance(loader, DataLoader):
            return
        kind = type(loader)
        if not (hasattr(kind, "__iter__") or hasattr(kind, "__getitem__")):
            raise MisconfigurationError(
                f"{self._origin()} is {_short_repr(loader)} ({kind.__name__}), which is not "
                "iterable: pass a torch DataLoader (DataLoader(dataset, batch_size=...)) or "
                "any iterable of batches"
            )
        if isinstance(loader, Dataset) and not isinstance(loader, IterableDataset):
            warn_user(
                f"{self._origin()} is a {kind.__name__} (a Dataset), not a DataLoader: "
                "iterating it yields single samples, not batches. Wrap it: "
                "DataLoader(dataset, batch_size=...)"
            )


_DATA_NAMES = {
    "train_dataloader": "training data",
    "val_dataloader": "validation data",
    "test_dataloader": "test data",
    "predict_dataloader": "prediction data",
}


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_loader_list(value: Any) -> bool:
    """A list or tuple of DataLoaders means several loaders; any other iterable is one."""
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, DataLoader) for v in value)
    )


def loader_length(loader: Any) -> int | float:
    """How many batches ``loader`` yields per epoch (``inf`` when it has no length)."""
    try:
        return len(loader)
    except (TypeError, NotImplementedError):
        return math.inf


def limited_length(length: int | float, limit: int | float, flag: str) -> int | float:
    """Apply ``limit_*_batches`` (a batch count or a fraction) to a loader length."""
    if isinstance(limit, float):
        if limit == 1.0:
            return length
        if math.isinf(length):
            raise MisconfigurationError(
                f"{flag}={limit} is a fraction of the epoch, but the loader has no length "
                f"(an IterableDataset or a generator): pass an int number of batches instead"
            )
        batches = int(length * limit)
        if batches == 0 and limit > 0 and length > 0:
            raise MisconfigurationError(
                f"{flag}={limit} of the loader's {length} batches is less than one batch, so "
                f"none would run: pass at least {flag}={math.ceil(1000 / length) / 1000:g}, "
                f"an int number of batches, or {flag}=0 to run none on purpose"
            )
        return batches
    return min(length, limit)


def set_epoch(loader: Any, epoch: int) -> None:
    """Tell samplers that shuffle per epoch (``DistributedSampler``) which epoch it is."""
    told: list[Any] = []
    for obj in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
        getattr(loader, "dataset", None),
    ):
        setter = getattr(obj, "set_epoch", None)
        if callable(setter) and not any(obj is t for t in told):
            setter(epoch)
            told.append(obj)


def epoch_batches(
    loader: Any, epoch: int, length: int | float, limit: int | float
) -> Iterator[Any]:
    """The batches of one epoch of ``loader``: at most ``limit``."""
    set_epoch(loader, epoch)
    batches: Iterator[Any] = iter(loader)
    if limit < length:
        batches = itertools.islice(batches, int(limit))
    return batches


class Lookahead:
    """Wraps an iterator of unknown length so the loop knows when a batch is the last."""

    def __init__(self, batches: Iterator[Any]) -> None:
        self._batches = batches
        self._next = next(batches, _END)
        #: true once the batch just returned is the last one
        self.exhausted = self._next is _END

    def __iter__(self) -> Lookahead:
        return self

    def __next__(self) -> Any:
        current = self._next
        if current is _END:
            raise StopIteration
        self._next = next(self._batches, _END)
        self.exhausted = self._next is _END
        return current


def without_shuffling(loader: Any) -> Any:
    """``loader`` drawing in order (``overfit_batches``): a shuffling DataLoader is rebuilt
    with a sequential sampler; anything else is returned as is."""
    if not isinstance(loader, DataLoader) or not isinstance(loader.sampler, RandomSampler):
        return loader
    if loader.batch_size is None:
        return loader
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=SequentialSampler(loader.dataset),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers if loader.num_workers > 0 else False,
    )
