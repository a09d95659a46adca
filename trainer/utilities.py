"""Everyday helpers a Lightning user imports from ``lightning.pytorch.utilities``:
rank-zero-only calls and messages, a model summary object and seeding.

``from ember.trainer.utilities import rank_zero_only, rank_zero_info, rank_zero_warn,
ModelSummary, seed_everything``. ``seed_everything`` is also ``ember.trainer.seed_everything``.

Messages go to the ``ember`` logger (``logging.getLogger("ember.trainer")``); ember installs
no logging handler, so ``logging.basicConfig(level=logging.INFO)`` shows the info ones.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import random
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from ember.trainer.callbacks.model_summary import Summary, summarize
from torch import nn

log = logging.getLogger("ember.trainer")

#: environment variable holding the seed ``seed_everything`` set; processes started after
#: it (spawned workers, launched ranks) read it with ``seed_everything()`` or ``reset_seed()``
SEED_ENV = "EMBER_GLOBAL_SEED"
#: ``"1"`` when ``seed_everything(..., workers=True)`` asked for seeded loader workers
SEED_WORKERS_ENV = "EMBER_SEED_WORKERS"
#: the seeds numpy accepts (an unsigned 32-bit integer)
MIN_SEED, MAX_SEED = 0, 2**32 - 1

_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")

T = TypeVar("T")


# ---------------------------------------------------------------------- rank zero
def _rank_from_environment() -> int:
    """The process's global rank as launchers set it (torchrun, SLURM, jsrun); 0 if none."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def rank_zero_only(fn: Callable[..., T], default: T | None = None) -> Callable[..., T | None]:
    """Decorate ``fn`` to run only on the process of global rank 0; elsewhere the call
    returns ``default``.

    The rank is ``rank_zero_only.rank``: read from the launcher's environment at import
    and set by the ``Trainer`` to its global rank when a run starts.
    """

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> T | None:
        if rank_zero_only.rank == 0:  # type: ignore[attr-defined]
            return fn(*args, **kwargs)
        return default

    return wrapped


rank_zero_only.rank = _rank_from_environment()  # type: ignore[attr-defined]


def _on_rank_zero() -> bool:
    return rank_zero_only.rank == 0  # type: ignore[attr-defined]


def rank_zero_info(message: str, *args: Any, **kwargs: Any) -> None:
    """``logging.info`` on the ``ember.trainer`` logger, from rank 0 only."""
    if _on_rank_zero():
        log.info(message, *args, **kwargs)


def rank_zero_debug(message: str, *args: Any, **kwargs: Any) -> None:
    """``logging.debug`` on the ``ember.trainer`` logger, from rank 0 only."""
    if _on_rank_zero():
        log.debug(message, *args, **kwargs)


def rank_zero_warn(
    message: str | Warning, category: type[Warning] = UserWarning, stacklevel: int = 4
) -> None:
    """``warnings.warn`` from rank 0 only (pointing at the caller's caller by default, as
    Lightning's does, so the warning names the user's line)."""
    if _on_rank_zero():
        warnings.warn(message, category, stacklevel=stacklevel)


# ---------------------------------------------------------------------- model summary
class ModelSummary:
    """A model's layers and parameter counts, as Lightning's
    ``utilities.model_summary.ModelSummary``: ``print(ModelSummary(model, max_depth=2))``.

    When the model has an ``example_input_array``, it is run through the model once (in
    eval mode, without gradients) and each layer's input and output sizes are listed.

    :param max_depth: levels of submodules listed: 1 the direct children, -1 all, 0 none.
    """

    def __init__(self, model: nn.Module, max_depth: int = 1) -> None:
        if not isinstance(max_depth, int) or isinstance(max_depth, bool) or max_depth < -1:
            raise ValueError(
                f"ModelSummary(max_depth=...) must be -1 (all levels) or an integer >= 0, "
                f"got {max_depth!r}"
            )
        self.max_depth = max_depth
        self._summary: Summary = summarize(model, max_depth)

    @property
    def layer_names(self) -> list[str]:
        """The listed submodules' names (``"encoder.0"``)."""
        return [layer.name for layer in self._summary.layers]

    @property
    def layer_types(self) -> list[str]:
        """The listed submodules' class names."""
        return [layer.type for layer in self._summary.layers]

    @property
    def param_nums(self) -> list[int]:
        """Parameters held by each listed submodule (recursively)."""
        return [layer.params for layer in self._summary.layers]

    @property
    def in_sizes(self) -> list[Any]:
        """Each layer's input size from ``example_input_array`` (``"?"`` when unknown)."""
        return [layer.in_size for layer in self._summary.layers]

    @property
    def out_sizes(self) -> list[Any]:
        """Each layer's output size from ``example_input_array`` (``"?"`` when unknown)."""
        return [layer.out_size for layer in self._summary.layers]

    @property
    def total_parameters(self) -> int:
        """Every parameter of the model, each counted once."""
        return self._summary.total_params

    @property
    def trainable_parameters(self) -> int:
        """Parameters that require gradients."""
        return self._summary.trainable_params

    @property
    def model_size(self) -> float:
        """Memory the parameters take, in megabytes."""
        return self._summary.size_mb

    def __str__(self) -> str:
        return str(self._summary)

    def __repr__(self) -> str:
        return str(self._summary)


# ---------------------------------------------------------------------- seeding
def seed_everything(seed: int | None = None, workers: bool = False, verbose: bool = True) -> int:
    """Seed Python's ``random``, numpy (when installed) and torch (every device) with
    ``seed``, and record it in ``EMBER_GLOBAL_SEED`` so that processes started afterwards
    can call ``seed_everything()`` (or :func:`reset_seed`) and get the same seed.

    :param seed: the seed; ``None`` reads ``EMBER_GLOBAL_SEED``, or uses 0 (with a
        warning) when that is not set either.
    :param workers: give every ``DataLoader`` the Trainer runs (that has no
        ``worker_init_fn`` of its own) :func:`worker_init_function`, which seeds each
        worker from the loader's base seed, the worker id and the process's rank.
    :param verbose: log the seed (info) and warn when none was found.
    :returns: the seed used.
    :raises ValueError: the seed is not an integer in [0, 2**32 - 1].
    """
    if seed is None:
        from_env = os.environ.get(SEED_ENV)
        if from_env is None:
            seed = 0
            if verbose:
                rank_zero_warn(f"No seed given and {SEED_ENV} is not set: seed set to 0")
        else:
            try:
                seed = int(from_env)
            except ValueError:
                raise ValueError(
                    f"{SEED_ENV}={from_env!r} is not an integer seed: unset it or set it to a "
                    f"number in [{MIN_SEED}, {MAX_SEED}]"
                ) from None
    elif not isinstance(seed, int) or isinstance(seed, bool):
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise ValueError(
                f"seed_everything(seed={seed!r}): pass an integer in [{MIN_SEED}, {MAX_SEED}]"
            ) from None
    if not MIN_SEED <= seed <= MAX_SEED:
        raise ValueError(
            f"seed_everything(seed={seed}) is out of bounds: numpy accepts seeds in "
            f"[{MIN_SEED}, {MAX_SEED}]"
        )
    if verbose:
        log.info("Seed set to %d", seed)
    os.environ[SEED_ENV] = str(seed)
    os.environ[SEED_WORKERS_ENV] = str(int(bool(workers)))
    random.seed(seed)
    try:
        import numpy
    except ImportError:
        pass
    else:
        numpy.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    return seed


def reset_seed() -> None:
    """Seed again with what :func:`seed_everything` recorded in the environment (nothing
    happens when it was never called): how a launched process matches its parent."""
    seed = os.environ.get(SEED_ENV)
    if seed is None:
        return
    workers = os.environ.get(SEED_WORKERS_ENV, "0") == "1"
    seed_everything(int(seed), workers=workers, verbose=False)


def _worker_seeds(base_seed: int, worker_id: int, rank: int) -> tuple[int, int, list[int]]:
    """(torch seed, random seed, numpy seed words) mixed from the three numbers, so that
    workers of different ranks never share a stream even when their base seeds match."""
    digest = hashlib.blake2b(f"{base_seed}/{worker_id}/{rank}".encode(), digest_size=32).digest()
    words = [int.from_bytes(digest[i : i + 8], "little") for i in range(0, 32, 8)]
    numpy_words = [w & 0xFFFFFFFF for w in words] + [w >> 32 for w in words]
    return words[0] >> 1, words[1], numpy_words


def worker_init_function(worker_id: int, rank: int | None = None) -> None:
    """Seed torch, ``random`` and numpy inside a ``DataLoader`` worker from the loader's
    base seed, ``worker_id`` and the process's global ``rank``.

    torch alone gives every worker ``base_seed + worker_id``, so two ranks seeded alike draw
    the same augmentations; this mixes the rank in. Installed by the Trainer after
    ``seed_everything(..., workers=True)``.
    """
    global_rank = rank_zero_only.rank if rank is None else rank  # type: ignore[attr-defined]
    base_seed = torch.initial_seed() - worker_id
    torch_seed, random_seed, numpy_words = _worker_seeds(base_seed, worker_id, global_rank)
    torch.manual_seed(torch_seed)
    random.seed(random_seed)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(numpy_words)


def seed_loader_workers(loader: Any) -> Any:
    """Give ``loader`` :func:`worker_init_function` when ``seed_everything(...,
    workers=True)`` asked for it and the loader has worker processes and no
    ``worker_init_fn`` of its own; return the loader."""
    if os.environ.get(SEED_WORKERS_ENV) != "1":
        return loader
    if getattr(loader, "num_workers", 0) and getattr(loader, "worker_init_fn", False) is None:
        loader.worker_init_fn = functools.partial(
            worker_init_function,
            rank=rank_zero_only.rank,  # type: ignore[attr-defined]
        )
    return loader


__all__ = [
    "MAX_SEED",
    "MIN_SEED",
    "SEED_ENV",
    "SEED_WORKERS_ENV",
    "ModelSummary",
    "rank_zero_debug",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
    "reset_seed",
    "seed_everything",
    "seed_loader_workers",
    "worker_init_function",
]
