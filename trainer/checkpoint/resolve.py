"""What ``trainer.fit(ckpt_path="last" | "best" | PATH)`` resumes from."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ember.trainer.callback import callback_role
from ember.trainer.checkpoint.errors import CheckpointError, CheckpointNotFoundError
from ember.trainer.checkpoint.io import load_checkpoint_safe

#: The file the trainer writes when a preemption signal stops the run.
PREEMPTED_NAME = "preempted.ckpt"

_LAST_RE = re.compile(r"^last(-v\d+)?\.ckpt$")


def checkpoint_dirs(
    callbacks: Iterable[Any], default_root_dir: str | os.PathLike[str]
) -> list[Path]:
    """The folders checkpoints of this run go to: each ModelCheckpoint's (after its
    ``setup``), and ``<default_root_dir>/checkpoints`` when there is none."""
    folders = [Path(cb.dirpath) for cb in _checkpointers(callbacks) if getattr(cb, "dirpath", None)]
    if not folders:
        folders = [Path(default_root_dir) / "checkpoints"]
    return list(dict.fromkeys(p.absolute() for p in folders))


def _checkpointers(callbacks: Iterable[Any]) -> list[Any]:
    """The callbacks that declare the ``"checkpointer"`` role (``ModelCheckpoint`` or a
    plugin's own)."""
    return [cb for cb in callbacks if callback_role(cb) == "checkpointer"]


def preemption_checkpoint_path(
    callbacks: Iterable[Any], default_root_dir: str | os.PathLike[str]
) -> Path:
    """Where the trainer saves when preempted: ``preempted.ckpt`` in the first checkpoint folder."""
    return checkpoint_dirs(callbacks, default_root_dir)[0] / PREEMPTED_NAME


def _last_search_dirs(
    callbacks: Iterable[Any], default_root_dir: str | os.PathLike[str]
) -> list[Path]:
    """:func:`checkpoint_dirs`, and, when a folder was left to its default, everywhere a
    default folder of an earlier process can be: ``<default_root_dir>/checkpoints`` and
    each run directory's ``checkpoints`` (``<default_root_dir>/ember_runs/*/``)."""
    callbacks = list(callbacks)
    folders = checkpoint_dirs(callbacks, default_root_dir)
    checkpointers = _checkpointers(callbacks)
    if not checkpointers or any(not getattr(cb, "_dirpath_given", True) for cb in checkpointers):
        root = Path(default_root_dir)
        # imported here: the tracking pipeline (SQLite) loads with the first run, not with
        # ``import ember.trainer``
        from ember.hub.tracking import RUNS_DIR

        folders += [root / "checkpoints", *sorted(root.glob(f"{RUNS_DIR}/*/checkpoints"))]
    return list(dict.fromkeys(p.absolute() for p in folders))


def find_last_checkpoint(
    callbacks: Iterable[Any], default_root_dir: str | os.PathLike[str]
) -> Path | None:
    """The newest (by modification time) ``last.ckpt``, ``last-vN.ckpt`` or
    ``preempted.ckpt`` in this run's checkpoint folders, or None.

    A ``ModelCheckpoint`` left to its default folder may have written, in an earlier
    process, under ``<default_root_dir>/checkpoints`` or a run directory's
    ``checkpoints``: those are searched too. Files are written atomically, so the newest
    one is complete. An ``OnExceptionCheckpoint`` file is not a candidate: it holds the
    state a step died in (possibly NaN weights); pass its path explicitly to resume from
    it.
    """
    found: list[tuple[float, str, Path]] = []
    for folder in _last_search_dirs(callbacks, default_root_dir):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if _LAST_RE.match(entry.name) or entry.name == PREEMPTED_NAME:
                try:
                    found.append((entry.stat().st_mtime, entry.name, entry))
                except FileNotFoundError:
                    continue
    return max(found)[2] if found else None


def resolve_ckpt_path(
    ckpt_path: str | os.PathLike[str] | None,
    callbacks: Iterable[Any],
    default_root_dir: str | os.PathLike[str],
) -> Path | None:
    """Turn ``ckpt_path`` into a file, or None to start from scratch.

    * ``"last"``: :func:`find_last_checkpoint`; when there is none, a warning and None
      (the first run of a job that is always launched with ``ckpt_path="last"``).
    * ``"best"``: the best checkpoint of a ``ModelCheckpoint`` (one with ``monitor``
      first); in a new process, the one named in the newest last checkpoint.
    * anything else: that file, which must exist.

    Call it after the callbacks' ``setup`` (their folders are known then).
    """
    if ckpt_path is None:
        return None
    callbacks = list(callbacks)
    if ckpt_path == "last":
        last = find_last_checkpoint(callbacks, default_root_dir)
        if last is None:
            folders = ", ".join(map(str, checkpoint_dirs(callbacks, default_root_dir)))
            warnings.warn(
                f"ckpt_path='last': no last checkpoint in {folders}; training starts from "
                "scratch (save one with ModelCheckpoint(save_last=True))",
                UserWarning,
                stacklevel=2,
            )
        return last
    if ckpt_path == "best":
        return _find_best(callbacks, default_root_dir)
    path = Path(ckpt_path)
    if not (path.is_file() or path.is_dir()):  # a folder: a sharded checkpoint (fsdp)
        raise CheckpointNotFoundError(
            f"ckpt_path={os.fspath(ckpt_path)!r} does not exist; pass an existing checkpoint, "
            "'last' or 'best'"
        )
    return path


def _find_best(callbacks: list[Any], default_root_dir: str | os.PathLike[str]) -> Path:
    checkpointers = sorted(
        _checkpointers(callbacks),
        key=lambda cb: getattr(cb, "monitor", None) is None,
    )
    if not checkpointers:
        raise CheckpointError(
            "ckpt_path='best' needs a ModelCheckpoint callback (with monitor=...) to know "
            "which checkpoint is best; add one or pass a path"
        )
    for cb in checkpointers:
        best_path = getattr(cb, "best_model_path", "")
        if best_path and Path(best_path).is_file():
            return Path(best_path)
    last = find_last_checkpoint(callbacks, default_root_dir)
    if last is not None:
        states = load_checkpoint_safe(last).get("callbacks") or {}
        for cb in checkpointers:
            key = getattr(cb, "state_key", type(cb).__qualname__)
            best = (states.get(key) or {}).get("best_model_path")
            if best and Path(best).is_file():
                return Path(best)
    raise CheckpointError(
        "ckpt_path='best': no best checkpoint has been saved yet by "
        + ", ".join(
            f"{type(cb).__name__}(monitor={getattr(cb, 'monitor', None)!r})" for cb in checkpointers
        )
        + "; pass a path or 'last'"
    )
