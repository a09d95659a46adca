"""Errors the training engine raises. Each message says what was wrong and what to change."""

from __future__ import annotations


class MisconfigurationError(ValueError):
    """A Trainer flag, a module method or a call argument is set up wrongly."""


class NonFiniteLossError(FloatingPointError):
    """``training_step`` returned a loss that is NaN or infinite."""
