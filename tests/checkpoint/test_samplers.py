"""Resumable samplers and the training-loader wrapper: a resumed epoch yields exactly the
batches an uninterrupted run would, and never reads a skipped sample."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from ember.trainer.checkpoint import (
    ResumableDistributedSampler,
    ResumableLoader,
    ResumableRandomSampler,
    ResumableSequentialSampler,
    check_weights_only_safe,
    checkpoint_header,
    load_checkpoint_safe,
    make_resumable,
    resumable_sampler,
    save_checkpoint_atomic,
)
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

N = 23


class Recording(Dataset):
    """Returns its index; appends every index read to a file (works across workers)."""

    def __init__(self, log: Path, n: int = N) -> None:
        self.log = str(log)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{index}\n".encode())
        finally:
            os.close(fd)
        return torch.tensor(index)


def reads(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def _loaders(data: Dataset, workers: int) -> dict[str, Callable[[], DataLoader]]:
    common = {"num_workers": workers, "batch_size": 4}
    return {
        "sequential": lambda: DataLoader(data, shuffle=False, **common),
        "random": lambda: DataLoader(data, shuffle=True, **common),
        "random_generator": lambda: DataLoader(
            data, shuffle=True, generator=torch.Generator().manual_seed(5), **common
        ),
        "random_replacement": lambda: DataLoader(
            data, sampler=RandomSampler(data, replacement=True, num_samples=30), **common
        ),
        "distributed": lambda: DataLoader(
            data,
            sampler=DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=7),
            drop_last=True,
            **common,
        ),
        "unbatched": lambda: DataLoader(data, batch_size=None, shuffle=True, num_workers=workers),
        "batch_sampler": lambda: DataLoader(
            data,
            batch_sampler=BatchSampler(SequentialSampler(data), 5, drop_last=False),
            num_workers=workers,
        ),
    }


def _epochs(loader: ResumableLoader, epochs: range, stop: tuple[int, int] | None = None):
    """Run the loop's side of the contract; returns the batches and, at ``stop``, the state."""
    seen = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        for batch_idx, batch in enumerate(loader, start=loader.batches_consumed):
            loader.advance()
            seen.append((epoch, batch_idx, torch.atleast_1d(batch).tolist()))
            if stop == (epoch, batch_idx):
                return seen, loader.state_dict()
    return seen, None


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    "kind",
    [
        "sequential",
        "random",
        "random_generator",
        "random_replacement",
        "distributed",
        "unbatched",
        "batch_sampler",
    ],
)
def test_resume_mid_epoch_yields_the_uninterrupted_batches(
    tmp_path: Path, kind: str, workers: int
) -> None:
    log = tmp_path / "reads.log"
    data = Recording(log)
    make = _loaders(data, workers)[kind]
    torch.manual_seed(0)
    full, _ = _epochs(ResumableLoader(make()), range(3))

    torch.manual_seed(0)
    first = ResumableLoader(make())
    assert first.exact
    stop = (1, 2)  # killed after the third batch of the second epoch
    before, state = _epochs(first, range(3), stop=stop)
    assert state is not None
    check_weights_only_safe(state)
    checkpoint = {**checkpoint_header(), "loader": state, "rng": torch.get_rng_state()}
    path = save_checkpoint_atomic(checkpoint, tmp_path / "c.ckpt")
    del first

    torch.manual_seed(12345)  # a new process, seeded differently (or not at all)
    resumed = ResumableLoader(make())
    saved = load_checkpoint_safe(path)
    resumed.load_state_dict(saved["loader"])
    log.unlink()
    resumed.set_epoch(1)
    iterator = iter(resumed)
    # as the trainer does: the epoch was under way at the checkpoint, so the random state
    # is restored after its iteration starts
    torch.set_rng_state(saved["rng"])
    rest_of_epoch = [
        (1, i, torch.atleast_1d(b).tolist())
        for i, b in enumerate(iterator, start=resumed.batches_consumed)
    ]
    read_in_resumed_epoch = reads(log)
    for _ in rest_of_epoch:
        resumed.advance()
    after, _ = _epochs(resumed, range(2, 3))
    assert before + rest_of_epoch + after == full

    # the skipped samples were never read: exactly the remaining ones were
    remaining = [i for _, _, batch in rest_of_epoch for i in batch]
    assert sorted(read_in_resumed_epoch) == sorted(remaining)


def test_position_counts_consumed_batches_not_prefetched_ones(tmp_path: Path) -> None:
    log = tmp_path / "reads.log"
    loader = ResumableLoader(
        DataLoader(Recording(log), batch_size=2, num_workers=2, prefetch_factor=4)
    )
    loader.set_epoch(0)
    iterator = iter(loader)
    next(iterator)
    loader.advance()
    assert len(reads(log)) > 2  # the workers ran ahead ...
    state = loader.state_dict()
    assert state["batches_consumed"] == 1
    assert state["sampler"]["consumed"] == 2  # ... but the position is what the loop took
    del iterator


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["random", "random_generator", "random_replacement"])
def test_uninterrupted_it_draws_what_a_plain_dataloader_draws(
    tmp_path: Path, kind: str, workers: int
) -> None:
    """Same batches, epoch after epoch, and the same global random state afterwards: a
    training loop over the rebuilt loader does a hand-written loop's arithmetic."""
    data = Recording(tmp_path / "reads.log")
    make = _loaders(data, workers)[kind]
    torch.manual_seed(3)
    plain = make()
    expected = [[b.tolist() for b in plain] for _ in range(3)]
    expected_rng = torch.get_rng_state()

    torch.manual_seed(3)
    loader = ResumableLoader(make())
    assert loader.exact
    got = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        got.append([b.tolist() for b in loader])
    assert got == expected
    assert torch.equal(torch.get_rng_state(), expected_rng)


def test_an_epoch_order_is_recomputed_from_the_state(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(3)
    sampler = ResumableRandomSampler(range(50), generator=generator)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
        if epoch == 1:
            state = sampler.state_dict()
    assert len({tuple(o) for o in orders}) == 3
    again = ResumableRandomSampler(range(50), generator=torch.Generator().manual_seed(99))
    again.load_state_dict(state)
    assert list(again) == orders[1]  # the saved epoch, from its saved start state
    again.restore_generator()
    again.set_epoch(2)
    assert list(again) == orders[2]  # the generator continues where it was


# ------------------------------------------------------------------------- equivalence


def test_sequential_matches_torch() -> None:
    assert list(ResumableSequentialSampler(range(7))) == list(SequentialSampler(range(7)))


@pytest.mark.parametrize(
    ("replacement", "num_samples"), [(False, None), (False, 50), (False, 7), (True, 70), (True, 3)]
)
def test_random_matches_torch_with_the_same_seed(
    replacement: bool, num_samples: int | None
) -> None:
    ours = ResumableRandomSampler(
        range(20), replacement, num_samples, generator=torch.Generator().manual_seed(11)
    )
    theirs = RandomSampler(
        range(20), replacement, num_samples, generator=torch.Generator().manual_seed(11)
    )
    for epoch in range(3):
        ours.set_epoch(epoch)
        assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)
    torch.manual_seed(4)
    unseeded = [list(RandomSampler(range(20), replacement, num_samples)) for _ in range(2)]
    torch.manual_seed(4)
    ours = ResumableRandomSampler(range(20), replacement, num_samples)
    assert [list(ours), (ours.set_epoch(1), list(ours))[1]] == unseeded


@pytest.mark.parametrize("n", [20, 23, 3])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_matches_torch(n: int, shuffle: bool, drop_last: bool) -> None:
    for rank in range(4):
        ours = ResumableDistributedSampler(range(n), 4, rank, shuffle, seed=9, drop_last=drop_last)
        theirs = DistributedSampler(range(n), 4, rank, shuffle, seed=9, drop_last=drop_last)
        for epoch in (0, 3):
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert list(ours) == list(theirs)
            assert len(ours) == len(theirs)


def test_distributed_refuses_a_changed_world_size() -> None:
    saved = ResumableDistributedSampler(range(20), 4, 0).state_dict()
    with pytest.raises(ValueError, match="taken with 4 processes and this run has 2"):
        ResumableDistributedSampler(range(20), 2, 0).load_state_dict(saved)


def test_distributed_needs_a_world() -> None:
    with pytest.raises(ValueError, match="needs num_replicas and rank"):
        ResumableDistributedSampler(range(20))


def test_sampler_kind_must_match() -> None:
    saved = ResumableSequentialSampler(range(5)).state_dict()
    with pytest.raises(ValueError, match="training dataloader changed"):
        ResumableRandomSampler(range(5)).load_state_dict(saved)


# ------------------------------------------------------------------------- make_resumable


def _init_worker(worker_id: int) -> None:
    torch.manual_seed(worker_id)


def _collate(batch: list) -> list:
    return batch


def test_make_resumable_keeps_every_option(tmp_path: Path) -> None:
    data = Recording(tmp_path / "reads.log")
    original = DataLoader(
        data,
        batch_size=3,
        shuffle=True,
        num_workers=2,
        collate_fn=_collate,
        pin_memory=False,
        drop_last=True,
        timeout=7,
        worker_init_fn=_init_worker,
        prefetch_factor=3,
        persistent_workers=True,
        generator=torch.Generator().manual_seed(4),
    )
    rebuilt = make_resumable(original)
    assert rebuilt is not original
    for name in (
        "batch_size",
        "num_workers",
        "collate_fn",
        "pin_memory",
        "drop_last",
        "timeout",
        "worker_init_fn",
        "prefetch_factor",
        "persistent_workers",
    ):
        assert getattr(rebuilt, name) == getattr(original, name), name
    sampler = resumable_sampler(rebuilt)
    assert isinstance(sampler, ResumableRandomSampler)
    assert sampler.generator is original.generator is rebuilt.generator
    assert len(rebuilt) == len(original)


def test_make_resumable_preserves_unshuffled_and_distributed_orders(tmp_path: Path) -> None:
    data = Recording(tmp_path / "reads.log")
    for make in (
        lambda: DataLoader(data, batch_size=4),
        lambda: DataLoader(data, batch_size=4, sampler=DistributedSampler(data, 3, 2, seed=1)),
    ):
        original = [b.tolist() for b in make()]
        assert [b.tolist() for b in make_resumable(make())] == original


class EvensThenOdds(Sampler[int]):
    """A custom sampler whose order depends on nothing: left alone by make_resumable."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.epochs: list[int] = []

    def __iter__(self):
        return iter([*range(0, self.n, 2), *range(1, self.n, 2)])

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class Stream(IterableDataset):
    def __iter__(self):
        return iter(torch.arange(N))


class MyLoader(DataLoader):
    pass


@pytest.mark.parametrize("kind", ["custom_sampler", "iterable", "subclass"])
def test_unconvertible_loaders_resume_by_rereading(tmp_path: Path, kind: str) -> None:
    log = tmp_path / "reads.log"
    data = Recording(log)
    make = {
        "custom_sampler": lambda: DataLoader(data, sampler=EvensThenOdds(N), batch_size=4),
        "iterable": lambda: DataLoader(Stream(), batch_size=4),
        "subclass": lambda: MyLoader(data, batch_size=4),
    }[kind]
    user_loader = make()
    assert make_resumable(user_loader) is user_loader
    full, _ = _epochs(ResumableLoader(make()), range(2))
    first = ResumableLoader(make())
    assert not first.exact
    before, state = _epochs(first, range(2), stop=(1, 1))

    resumed = ResumableLoader(make())
    with pytest.warns(UserWarning, match="read again and discarded"):
        resumed.load_state_dict(state)
    after, _ = _epochs(resumed, range(1, 2))
    assert before + after == full


def test_custom_sampler_is_told_the_epoch(tmp_path: Path) -> None:
    sampler = EvensThenOdds(N)
    loader = ResumableLoader(DataLoader(Recording(tmp_path / "r.log"), sampler=sampler))
    loader.set_epoch(0)
    loader.set_epoch(1)
    assert sampler.epochs == [0, 1]


def test_changed_batch_size_keeps_the_sample_position(tmp_path: Path) -> None:
    data = Recording(tmp_path / "reads.log")
    first = ResumableLoader(DataLoader(data, batch_size=4))
    _, state = _epochs(first, range(1), stop=(0, 1))  # 8 samples consumed
    resumed = ResumableLoader(DataLoader(data, batch_size=2))
    resumed.load_state_dict(state)
    resumed.set_epoch(0)
    assert resumed.batches_consumed == 4
    assert next(iter(resumed)).tolist() == [8, 9]
