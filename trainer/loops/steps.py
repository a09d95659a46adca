"""Calling the module's steps as Lightning does: ``training_step(self, batch)`` without
``batch_idx`` is allowed, and so is the same for the other steps."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def takes_batch_idx(step: Callable[..., Any]) -> bool:
    """Whether ``step`` (a bound method) accepts a ``batch_idx``: it names one, takes
    ``*args``, or has a second positional parameter."""
    try:
        parameters = inspect.signature(step).parameters
    except (TypeError, ValueError):  # no signature to read: pass everything
        return True
    if "batch_idx" in parameters:
        return True
    positional = 0
    for p in parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def step_caller(step: Callable[..., Any], method: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` itself when the module's ``method`` it runs takes ``(batch, batch_idx,
    ...)``; otherwise a function with that signature that leaves ``batch_idx`` out
    (decided once per run). ``step`` may be the strategy's wrapper around ``method``."""
    if takes_batch_idx(method):
        return step

    def without_batch_idx(batch: Any, batch_idx: int, *rest: Any) -> Any:
        return step(batch, *rest)

    return without_batch_idx
