"""Errors raised while saving or loading checkpoints. Each says what was wrong with which
file and what to do about it; none of them is raised after running code from a file."""

from __future__ import annotations


class CheckpointError(Exception):
    """Base class of every checkpoint error."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist (or names a folder)."""


class AmbiguousCheckpointError(CheckpointError):
    """``ckpt_path="last"`` matches the last checkpoints of several runs; the message lists
    them."""


class TruncatedCheckpointError(CheckpointError):
    """The file ends early or fails its checksums: a write that did not finish, or damage."""


class NotACheckpointError(CheckpointError):
    """The file is not an ember checkpoint (random bytes, another format, a plain state dict)."""


class UnsafeCheckpointError(CheckpointError):
    """The file asks to import or call something; refused before anything ran."""


class NewerCheckpointVersionError(CheckpointError):
    """The file was written in a checkpoint format newer than this ember understands."""


class StateMismatchError(CheckpointError, RuntimeError):
    """A state dictionary does not fit the module: missing, unexpected or misshapen entries.

    Also a ``RuntimeError``, which is what ``torch``'s ``load_state_dict`` (and so Lightning)
    raises here: code that catches that catches this too."""


class CheckpointSaveError(CheckpointError):
    """Writing a checkpoint failed; the previous file at the path is left as it was."""


class UnsafeValueError(CheckpointSaveError, TypeError):
    """A value in the checkpoint would not load back with ``weights_only=True``."""
