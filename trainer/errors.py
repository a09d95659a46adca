"""Errors the training engine raises, and :func:`warn_user` for what does not stop a run.
Each message says what was wrong and what to change."""

from __future__ import annotations

import sys
import warnings


class MisconfigurationError(ValueError):
    """A Trainer flag, a module method or a call argument is set up wrongly."""


class NonFiniteLossError(FloatingPointError):
    """``training_step`` returned a loss that is NaN or infinite."""


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` from rank 0 only, pointing at the first frame outside ember (the
    user's ``trainer.fit(...)`` line, or their hook), so the warning names code they wrote
    and Python's default filter shows it once per such line."""
    from ember.trainer.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
        return
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("ember."):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
