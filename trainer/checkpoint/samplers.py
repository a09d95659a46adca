"""Samplers that resume mid-epoch by index arithmetic, and the loader wrapper that knows how
far into the epoch the training loop got.

Two things must be right for a mid-epoch resume to continue exactly:

* the order: each sampler's state holds what fixes the epoch's whole index sequence (the
  epoch and seed, or the state its generator had when the epoch's order was drawn), so a
  new process recomputes it and starts at the saved position without reading (or even
  touching) a single skipped sample;
* the position: DataLoader workers and prefetching pull indices ahead of the training
  loop, so a sampler cannot count what it yielded. :class:`ResumableLoader` counts what
  the loop consumed instead: the loop calls :meth:`ResumableLoader.advance` once per batch
  it takes (a Python integer increment, no device sync).

Uninterrupted, the resumable samplers draw exactly what the standard ones draw, from the
same generators at the same moments, so a loader rebuilt by :func:`make_resumable` yields
the batches of the user's loader and leaves the global random state exactly as it would:
training matches a hand-written PyTorch loop bit for bit.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)


class _ResumableSampler(Sampler[int]):
    """What the resumable samplers share: an epoch, a position inside it, a state dict.

    ``consumed`` is the number of samples of this epoch's sequence the training loop has
    consumed; the next iteration starts there. It moves only through
    :meth:`load_state_dict`, :meth:`set_epoch` (a new epoch starts at 0) and the owner's
    bookkeeping (:class:`ResumableLoader`), never by iterating, so prefetching workers
    cannot make it run ahead.
    """

    kind: str = ""

    def __init__(self) -> None:
        self.epoch = 0
        self.consumed = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields; a new epoch starts at 0."""
        if epoch != self.epoch:
            self.consumed = 0
        self.epoch = epoch

    def _sequence(self) -> torch.Tensor:
        """This epoch's full index sequence (int64)."""
        raise NotImplementedError

    def _remaining(self) -> list[int]:
        return self._sequence()[min(self.consumed, len(self)) :].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self._remaining())

    def state_dict(self) -> dict[str, Any]:
        """The epoch and the position inside it, plus what fixes the order (plain data)."""
        return {"kind": self.kind, "epoch": self.epoch, "consumed": min(self.consumed, len(self))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next iteration starts at the saved position."""
        if state.get("kind") != self.kind:
            raise ValueError(
                f"cannot restore a {state.get('kind')!r} sampler state into a {self.kind!r} "
                "sampler: the training dataloader changed between the save and the resume"
            )
        self.epoch = int(state["epoch"])
        self.consumed = int(state["consumed"])


class ResumableSequentialSampler(_ResumableSampler):
    """Indices ``0 .. len(data_source) - 1`` in order, like ``SequentialSampler``."""

    kind = "sequential"

    def __init__(self, data_source: Sized) -> None:
        super().__init__()
        self.data_source = data_source

    def __len__(self) -> int:
        return len(self.data_source)

    def __iter__(self) -> Iterator[int]:
        return iter(range(min(self.consumed, len(self)), len(self)))

    def _sequence(self) -> torch.Tensor:
        return torch.arange(len(self))


class ResumableRandomSampler(_ResumableSampler):
    """``RandomSampler``, draw for draw, that can resume inside an epoch.

    Each epoch's order is drawn when the epoch's iteration starts, exactly as
    ``RandomSampler`` draws it: from ``generator`` when given (which keeps advancing from
    epoch to epoch), otherwise from a generator seeded with one draw from the global torch
    generator. The same seed gives the same orders as ``RandomSampler``.

    The state dict holds the state of the generator the current epoch's order was drawn
    with (before drawing), so a new process recomputes that order without drawing, and
    the state ``generator`` had at the checkpoint, which :class:`ResumableLoader` puts
    back at the moment that corresponds to the checkpoint (see
    :meth:`restore_generator`). The global generator is the trainer's to restore.

    :param generator: as ``RandomSampler``'s.
    """

    kind = "random"

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        #: the state of the generator this epoch's order is drawn with, before drawing;
        #: None until the epoch's iteration starts
        self._start_state: torch.Tensor | None = None
        self._order: torch.Tensor | None = None
        #: ``generator``'s state at the checkpoint, until :meth:`restore_generator`
        self._saved_generator_state: torch.Tensor | None = None

    @property
    def num_samples(self) -> int:
        """Samples per epoch: ``len(data_source)`` unless given."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; a new epoch draws its order when its iteration starts."""
        if epoch != self.epoch:
            self._start_state = None
            self._order = None
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        # a generator function, like RandomSampler's: the order is drawn at the first
        # next(), so draws happen in the same sequence as with a standard DataLoader
        yield from self._remaining()

    def _sequence(self) -> torch.Tensor:
        if self._order is not None:
            return self._order
        if self._start_state is not None:  # resumed: recompute, drawing from nothing shared
            generator = torch.Generator()
            generator.set_state(self._start_state)
        elif self.generator is not None:
            generator = self.generator
            self._start_state = generator.get_state()
        else:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator()
            generator.manual_seed(seed)
            self._start_state = generator.get_state()
        self._order = self._draw(generator)
        return self._order

    def _draw(self, generator: torch.Generator) -> torch.Tensor:
        n = len(self.data_source)
        # the same calls in the same chunks as RandomSampler, so the orders match it
        if self.replacement:
            chunks = [
                torch.randint(high=n, size=(32,), dtype=torch.int64, generator=generator)
                for _ in range(self.num_samples // 32)
            ]
            chunks.append(
                torch.randint(
                    high=n, size=(self.num_samples % 32,), dtype=torch.int64, generator=generator
                )
            )
        else:
            chunks = [torch.randperm(n, generator=generator) for _ in range(self.num_samples // n)]
            chunks.append(torch.randperm(n, generator=generator)[: self.num_samples % n])
        return torch.cat(chunks)

    def state_dict(self) -> dict[str, Any]:
        """Epoch, position, the state the epoch's order was drawn from, and ``generator``'s
        state now."""
        return {
            **super().state_dict(),
            "start_state": self._start_state,
            "generator_state": self.generator.get_state() if self.generator is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore epoch, position and the epoch's order; ``generator``'s saved state waits
        for :meth:`restore_generator`."""
        super().load_state_dict(state)
        self._start_state = state.get("start_state")
        self._order = None
        if self.generator is not None:
            self._saved_generator_state = state.get("generator_state")

    def restore_generator(self) -> None:
        """Give ``generator`` the state it had at the checkpoint (once, after a load).

        :class:`ResumableLoader` calls it before an epoch that the checkpoint preceded, or
        right after the iteration of the resumed epoch started (starting one draws the
        worker seed from the loader's generator, which the interrupted run had done before
        its checkpoint too).
        """
        saved, self._saved_generator_state = self._saved_generator_state, None
        if saved is not None and self.generator is not None:
            self.generator.set_state(saved)


class ResumableDistributedSampler(_ResumableSampler):
    """This rank's share of the data, exactly as ``DistributedSampler`` splits it (same
    shuffle, padding and ``drop_last``), resumable mid-epoch.

    :param num_replicas: processes taking part; by default the world size of the
        initialised ``torch.distributed`` process group.
    :param rank: this process's rank among them; by default from the process group.
    """

    kind = "distributed"

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        if num_replicas is None or rank is None:
            dist = torch.distributed
            if not (dist.is_available() and dist.is_initialized()):
                raise ValueError(
                    "ResumableDistributedSampler needs num_replicas and rank: pass them, or "
                    "initialise torch.distributed before building the sampler"
                )
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas - 1}], got {rank}")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __len__(self) -> int:
        return self.num_samples

    def _sequence(self) -> torch.Tensor:
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(n, generator=generator)
        else:
            indices = torch.arange(n)
        if self.drop_last:
            indices = indices[: self.total_size]
        else:
            padding = self.total_size - n
            indices = torch.cat([indices, indices.repeat(math.ceil(padding / n))[:padding]])
        return indices[self.rank : self.total_size : self.num_replicas]

    def state_dict(self) -> dict[str, Any]:
        """Epoch, position, seed and the split (checked on load)."""
        return {
            **super().state_dict(),
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore epoch, position and seed; the number of replicas must be unchanged."""
        if state.get("num_replicas", self.num_replicas) != self.num_replicas:
            raise ValueError(
                f"the checkpoint was taken with {state['num_replicas']} processes and this run "
                f"has {self.num_replicas}; a mid-epoch position cannot be carried across a "
                "change in world size. Resume with the same number of processes, or from a "
                "checkpoint taken at the end of an epoch."
            )
        super().load_state_dict(state)
        self.seed = int(state["seed"])


def _convert_sampler(sampler: Any) -> _ResumableSampler | None:
    """The resumable equivalent of a standard sampler, or None for anything else."""
    kind = type(sampler)
    if isinstance(sampler, _ResumableSampler):
        return sampler
    if kind is SequentialSampler:
        return ResumableSequentialSampler(sampler.data_source)
    if kind is RandomSampler:
        return ResumableRandomSampler(
            sampler.data_source, sampler.replacement, sampler._num_samples, sampler.generator
        )
    if kind is DistributedSampler:
        converted = ResumableDistributedSampler(
            sampler.dataset,
            num_replicas=sampler.num_replicas,
            rank=sampler.rank,
            shuffle=sampler.shuffle,
            seed=sampler.seed,
            drop_last=sampler.drop_last,
        )
        converted.epoch = sampler.epoch
        return converted
    return None


_REBUILT_ATTRS = (
    "num_workers",
    "collate_fn",
    "pin_memory",
    "timeout",
    "worker_init_fn",
    "multiprocessing_context",
    "persistent_workers",
    "pin_memory_device",
    "in_order",
)


def make_resumable(dataloader: DataLoader) -> DataLoader:
    """The same DataLoader with its sampler replaced by the resumable equivalent.

    ``SequentialSampler``, ``RandomSampler`` (same generator) and ``DistributedSampler``
    (same split and seed) are converted; batch size, ``drop_last``, workers, collate
    function, pinning, worker init function, prefetching, persistence, timeouts and the
    loader's generator carry over. The rebuilt loader yields the same batches as the
    original and draws the same random numbers at the same moments.

    Returned unchanged, and then not resumable by position: a DataLoader subclass (its
    constructor may take other arguments), an ``IterableDataset``, or a custom sampler or
    batch sampler. :class:`ResumableLoader` resumes those by re-reading and discarding
    the consumed batches.
    """
    if type(dataloader) is not DataLoader or isinstance(dataloader.dataset, IterableDataset):
        return dataloader
    batch_sampler = dataloader.batch_sampler
    if batch_sampler is not None and type(batch_sampler) is not BatchSampler:
        return dataloader
    inner = batch_sampler.sampler if batch_sampler is not None else dataloader.sampler
    sampler = _convert_sampler(inner)
    if sampler is None:
        return dataloader
    accepted = inspect.signature(DataLoader.__init__).parameters
    kwargs: dict[str, Any] = {
        name: getattr(dataloader, name)
        for name in _REBUILT_ATTRS
        if name in accepted and hasattr(dataloader, name)
    }
    if not kwargs.get("pin_memory_device"):
        kwargs.pop("pin_memory_device", None)
    if dataloader.num_workers > 0:
        kwargs["prefetch_factor"] = dataloader.prefetch_factor
    if batch_sampler is None:
        kwargs.update(batch_size=None, sampler=sampler)
    elif dataloader.batch_size is not None:
        kwargs.update(
            batch_size=dataloader.batch_size, drop_last=dataloader.drop_last, sampler=sampler
        )
    else:
        kwargs["batch_sampler"] = BatchSampler(
            sampler, batch_sampler.batch_size, batch_sampler.drop_last
        )
    return DataLoader(dataloader.dataset, generator=dataloader.generator, **kwargs)


def resumable_sampler(dataloader: DataLoader) -> _ResumableSampler | None:
    """The resumable sampler that positions ``dataloader``, or None if it has none."""
    batch_sampler = getattr(dataloader, "batch_sampler", None)
    if type(batch_sampler) is BatchSampler and isinstance(batch_sampler.sampler, _ResumableSampler):
        return batch_sampler.sampler
    sampler = getattr(dataloader, "sampler", None)
    return sampler if isinstance(sampler, _ResumableSampler) and batch_sampler is None else None


def _samples_per_batch(dataloader: DataLoader) -> int:
    batch_sampler = dataloader.batch_sampler
    return batch_sampler.batch_size if batch_sampler is not None else 1


class ResumableLoader:
    """The training DataLoader as the fit loop drives it: which epoch, how far into it the
    loop got, and how to continue from there in a new process.

    The loop's side of the contract::

        loader = ResumableLoader(train_dataloader)
        loader.load_state_dict(checkpoint_entry)      # when resuming
        for epoch in range(start_epoch, max_epochs):
            loader.set_epoch(epoch)
            for batch_idx, batch in enumerate(loader, start=loader.batches_consumed):
                loader.advance()                      # this batch is now consumed
                ...                                   # step; a checkpoint saved after this
                                                      # point resumes with the next batch

    ``advance`` is an integer increment: call it once per batch the loop has taken, never
    for a batch fetched ahead (prefetching, workers). A checkpoint saved at a step boundary
    then resumes exactly at the next batch.

    Starting an epoch's iteration draws from the random generators as a standard
    DataLoader does (the worker seed, a shuffling order). So that these draws line up
    with the interrupted run's, a resuming loop restores the global random state after
    ``iter(loader)`` when the resumed epoch was already under way at the checkpoint
    (``batches_consumed > 0`` after ``set_epoch``), and before it otherwise; the loader
    does the same for a sampler's own generator.

    When the loader has a resumable sampler (see :func:`make_resumable`), the resumed epoch
    skips the consumed samples by index arithmetic and never reads them. Otherwise (custom
    sampler, ``IterableDataset``, DataLoader subclass) the resumed epoch re-reads the
    consumed batches and discards them, with a warning: the remaining batches are the
    interrupted run's only if that data pipeline's order depends on the epoch alone.

    :param dataloader: the user's DataLoader; it is passed through :func:`make_resumable`.
    """

    def __init__(self, dataloader: DataLoader) -> None:
        self.dataloader = make_resumable(dataloader)
        self.sampler = resumable_sampler(self.dataloader)
        self.samples_per_batch = _samples_per_batch(self.dataloader) if self.sampler else 1
        self.epoch = 0
        self.batches_consumed = 0
        self._discard = 0

    @property
    def exact(self) -> bool:
        """Whether a resume skips consumed samples by position (True) or by re-reading."""
        return self.sampler is not None

    def __len__(self) -> int:
        """Batches in a whole epoch (``len`` of the DataLoader)."""
        return len(self.dataloader)

    def _restore_generator(self) -> None:
        restore = getattr(self.sampler, "restore_generator", None)
        if restore is not None:
            restore()

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch``: a new epoch starts at its first batch, the epoch being resumed
        at the saved position. Call it before iterating each epoch."""
        if epoch != self.epoch:
            self.batches_consumed = 0
            self._discard = 0
        self.epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        else:
            _set_epoch_on_user_objects(self.dataloader, epoch)
        if not self.batches_consumed:  # the checkpoint (if any) came before this epoch began
            self._restore_generator()

    def __iter__(self) -> Iterator[Any]:
        """Iterate the rest of the current epoch."""
        iterator = iter(self.dataloader)
        # a resumed epoch: the interrupted run had started this iteration before its
        # checkpoint, drawing what starting it just drew again
        self._restore_generator()
        discard, self._discard = self._discard, 0
        for _ in range(discard):
            if next(iterator, _END) is _END:
                break
        return iterator

    def advance(self) -> None:
        """Record that the loop took one more batch of this epoch."""
        self.batches_consumed += 1
        if self.sampler is not None:
            self.sampler.consumed += self.samples_per_batch

    def state_dict(self) -> dict[str, Any]:
        """Epoch, batches consumed, and the sampler's state (plain data)."""
        return {
            "epoch": self.epoch,
            "batches_consumed": self.batches_consumed,
            "samples_per_batch": self.samples_per_batch,
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`: the next :meth:`set_epoch` with the saved epoch
        followed by iteration yields the batches after the saved position."""
        self.epoch = int(state["epoch"])
        self.batches_consumed = int(state["batches_consumed"])
        self._discard = 0
        saved_sampler = state.get("sampler")
        if self.sampler is not None and saved_sampler is not None:
            self.sampler.load_state_dict(saved_sampler)
            if state.get("samples_per_batch") != self.samples_per_batch:
                self.batches_consumed = math.ceil(self.sampler.consumed / self.samples_per_batch)
        elif self.batches_consumed:
            self._discard = self.batches_consumed
            if self.sampler is not None:
                self.sampler.epoch = self.epoch
            warnings.warn(
                f"resuming epoch {self.epoch} after batch {self.batches_consumed}: the training "
                "dataloader cannot be positioned by index (custom sampler, IterableDataset, "
                "DataLoader subclass, or a sampler that changed since the save), so its first "
                f"{self.batches_consumed} batches are read again and discarded. The rest match "
                "the interrupted run only if the data order depends on the epoch alone; use a "
                "standard sampler for an exact, read-free resume.",
                UserWarning,
                stacklevel=2,
            )


_END = object()


def _set_epoch_on_user_objects(dataloader: DataLoader, epoch: int) -> None:
    """Tell a custom sampler, batch sampler or dataset the epoch, as Lightning does."""
    batch_sampler = getattr(dataloader, "batch_sampler", None)
    candidates = (
        getattr(dataloader, "sampler", None),
        batch_sampler,
        getattr(batch_sampler, "sampler", None),
        getattr(dataloader, "dataset", None),
    )
    seen: set[int] = set()
    for obj in candidates:
        if obj is not None and id(obj) not in seen and callable(getattr(obj, "set_epoch", None)):
            seen.add(id(obj))
            obj.set_epoch(epoch)
