"""``OnExceptionCheckpoint``: save the state a run died in, so the failure can be examined
(or training continued) without losing the work since the last scheduled checkpoint."""

from __future__ import annotations

import os
import warnings
from typing import Any

from ember.trainer.callback import Callback
from ember.trainer.checkpoint.preemption import Preempted


class OnExceptionCheckpoint(Callback):
    """Save a checkpoint when fit, validate, test or predict raises (``KeyboardInterrupt``
    included).

    The state is taken where the exception struck, possibly in the middle of a step, so
    resuming from it continues approximately, not bit for bit; for an exact resume use
    ``ModelCheckpoint(save_last=True, every_n_train_steps=...)``. A failure to save is a
    warning: the original exception is what propagates. A preemption (which saves its own
    checkpoint at a step boundary) is not saved again.

    :param dirpath: folder of the file; by default ``<trainer.log_dir>/checkpoints``.
    :param filename: file name without extension.
    """

    FILE_EXTENSION = ".ckpt"

    def __init__(
        self, dirpath: str | os.PathLike[str] | None = None, filename: str = "on_exception"
    ) -> None:
        if not filename:
            raise ValueError("OnExceptionCheckpoint(filename=...) cannot be empty")
        if os.sep in filename or (os.altsep and os.altsep in filename):
            raise ValueError(
                f"OnExceptionCheckpoint(filename={filename!r}) must be a bare name; put the "
                "folder in dirpath"
            )
        self.dirpath = os.path.abspath(os.fspath(dirpath)) if dirpath is not None else None
        #: ``dirpath`` as given (``None``: follow the run's folder)
        self._dirpath_given = self.dirpath
        self.filename = filename

    @property
    def ckpt_path(self) -> str | None:
        """Where the checkpoint goes (with a default folder: None until an exception
        decided it)."""
        if self.dirpath is None:
            return None
        return os.path.join(self.dirpath, self.filename + self.FILE_EXTENSION)

    def on_exception(self, trainer: Any, module: Any, exception: BaseException) -> None:
        """Save, unless the run was preempted (already saved) or the save itself fails.

        The default folder is ``<trainer.log_dir>/checkpoints`` as the exception strikes:
        the run's folder (a resumed fit's is its checkpoint's run's)."""
        if isinstance(exception, Preempted):
            return
        if self._dirpath_given is None:
            root = getattr(trainer, "log_dir", None) or trainer.default_root_dir
            self.dirpath = os.path.abspath(os.path.join(root, "checkpoints"))
        path = self.ckpt_path
        try:
            trainer.save_checkpoint(path)
        except Exception as error:
            warnings.warn(
                f"OnExceptionCheckpoint could not save {path} after {type(exception).__name__}: "
                f"{error}",
                UserWarning,
                stacklevel=2,
            )
