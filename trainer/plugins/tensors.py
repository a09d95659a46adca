"""The one walk over a batch: every container a loader yields (tensors, mappings, lists,
tuples, named tuples, dataclasses) is rebuilt with a function applied to its leaves."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor


def map_batch(batch: Any, fn: Callable[[Any], Any]) -> Any:
    """``batch`` rebuilt with ``fn`` applied to every leaf (anything that is not a mapping,
    list, tuple or dataclass instance). Strings and bytes are leaves."""
    if isinstance(batch, Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        return type(batch)({k: map_batch(v, fn) for k, v in batch.items()})  # type: ignore[call-arg]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(map_batch(v, fn) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(map_batch(v, fn) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {
            f.name: map_batch(getattr(batch, f.name), fn)
            for f in dataclasses.fields(batch)
            if f.init
        }
        return dataclasses.replace(batch, **changes)
    return fn(batch)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (and every leaf with a ``.to(device)`` method) on
    ``device``."""

    def move(leaf: Any) -> Any:
        if isinstance(leaf, Tensor):
            return leaf.to(device, non_blocking=True)
        to = getattr(leaf, "to", None)
        return to(device) if callable(to) and not isinstance(leaf, (str, bytes)) else leaf

    return map_batch(batch, move)


def cast_floating(batch: Any, dtype: torch.dtype) -> Any:
    """``batch`` with its floating-point tensors cast to ``dtype`` (others unchanged)."""
    return map_batch(
        batch,
        lambda leaf: (
            leaf.to(dtype) if isinstance(leaf, Tensor) and leaf.is_floating_point() else leaf
        ),
    )


def detach_tensors(value: Any) -> Any:
    """``value`` with every tensor in it detached (step outputs kept for ``*_epoch_end``)."""
    return map_batch(value, lambda leaf: leaf.detach() if isinstance(leaf, Tensor) else leaf)
