"""What ``trainer.fit(ckpt_path="last" | "best" | PATH)`` resumes from."""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ember.trainer.callback import callback_role
from ember.trainer.checkpoint.errors import (
    AmbiguousCheckpointError,
    CheckpointError,
    CheckpointNotFoundError,
)
from ember.trainer.checkpoint.io import load_checkpoint_safe

#: The file the trainer writes when a preemption signal stops the run.
PREEMPTED_NAME = "preempted.ckpt"

_LAST_RE = re.compile(r"^last(-v\d+)?\.ckpt$")


def checkpoint_dirs(callbacks: Iterable[Any], default_dir: str | os.PathLike[str]) -> list[Path]:
    """The folders checkpoints of this run go to: each ModelCheckpoint's (after its
    ``setup``), and ``<default_dir>/checkpoints`` when there is none (``default_dir``: the
    run directory, ``trainer.log_dir``)."""
    folders = [Path(cb.dirpath) for cb in _checkpointers(callbacks) if getattr(cb, "dirpath", None)]
    if not folders:
        folders = [Path(default_dir) / "checkpoints"]
    return list(dict.fromkeys(p.absolute() for p in folders))


def _checkpointers(callbacks: Iterable[Any]) -> list[Any]:
    """The callbacks that declare the ``"checkpointer"`` role (``ModelCheckpoint`` or a
    plugin's own)."""
    return [cb for cb in callbacks if callback_role(cb) == "checkpointer"]


def preemption_checkpoint_path(
    callbacks: Iterable[Any], default_dir: str | os.PathLike[str]
) -> Path:
    """Where the trainer saves when preempted: ``preempted.ckpt`` in the first checkpoint
    folder (``<default_dir>/checkpoints`` without a checkpointer)."""
    return checkpoint_dirs(callbacks, default_dir)[0] / PREEMPTED_NAME


def _newest_last(folders: Iterable[Path]) -> Path | None:
    """The newest (by modification time) ``last.ckpt``, ``last-vN.ckpt`` or
    ``preempted.ckpt`` in ``folders``."""
    found: list[tuple[float, str, Path]] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if _LAST_RE.match(entry.name) or entry.name == PREEMPTED_NAME:
                try:
                    found.append((entry.stat().st_mtime, entry.name, entry))
                except FileNotFoundError:
                    continue
    return max(found)[2] if found else None


def _other_runs_last(
    callbacks: list[Any], default_root_dir: str | os.PathLike[str]
) -> dict[Path, Path]:
    """For a checkpointer left to its default folder (or none): each run folder under
    ``default_root_dir`` with a last checkpoint (``ember_runs/<id>/checkpoints``, and
    ``checkpoints``, where runs without a run directory save), mapped to its newest one."""
    checkpointers = _checkpointers(callbacks)
    if checkpointers and all(getattr(cb, "_dirpath_given", True) for cb in checkpointers):
        return {}
    root = Path(default_root_dir)
    # imported here: the tracking pipeline (SQLite) loads with the first run, not with
    # ``import ember.trainer``
    from ember.hub.tracking import RUNS_DIR

    found: dict[Path, Path] = {}
    for folder in [root / "checkpoints", *sorted(root.glob(f"{RUNS_DIR}/*/checkpoints"))]:
        last = _newest_last([folder])
        if last is not None:
            found[folder.absolute()] = last
    return found


def find_last_checkpoint(
    callbacks: Iterable[Any],
    default_root_dir: str | os.PathLike[str],
    log_dir: str | os.PathLike[str] | None = None,
) -> Path | None:
    """What ``ckpt_path="last"`` resumes: the newest ``last.ckpt``, ``last-vN.ckpt`` or
    ``preempted.ckpt`` of this run, else of the one earlier run that has one.

    1. This run's checkpoint folders (each checkpointer's folder, after its ``setup``;
       ``<log_dir>/checkpoints`` without one): a folder given as ``dirpath``, or the run
       folder of a trainer that already fitted.
    2. Otherwise, when a checkpointer was left to its default folder (or there is none),
       the runs under ``default_root_dir``: each ``ember_runs/<id>/checkpoints`` and
       ``checkpoints`` holding a last checkpoint. One such run: its newest file. Several:
       :class:`AmbiguousCheckpointError`, listing them, since nothing says which run this
       process continues.

    Files are written atomically, so the newest one is complete. An
    ``OnExceptionCheckpoint`` file is never a candidate: it holds the state a step died in
    (possibly NaN weights); pass its path explicitly to resume from it.
    """
    callbacks = list(callbacks)
    own = _newest_last(checkpoint_dirs(callbacks, log_dir or default_root_dir))
    if own is not None:
        return own
    others = _other_runs_last(callbacks, default_root_dir)
    if len(others) > 1:
        newest_first = sorted(others.values(), key=_mtime, reverse=True)
        listing = "\n".join(
            f"  {path}  (saved {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(_mtime(path)))})"
            for path in newest_first
        )
        raise AmbiguousCheckpointError(
            f"ckpt_path='last' is ambiguous: {len(others)} runs under {default_root_dir} "
            f"have a last checkpoint, and nothing says which one this run continues:\n"
            f"{listing}\nPass the one to resume as ckpt_path=PATH (the first is the newest); "
            "to relaunch a job with ckpt_path='last', give each job its own "
            "default_root_dir, or a ModelCheckpoint(dirpath=...) folder of its own (then "
            "'last' looks only there)."
        )
    return next(iter(others.values()), None)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def resolve_ckpt_path(
    ckpt_path: str | os.PathLike[str] | None,
    callbacks: Iterable[Any],
    default_root_dir: str | os.PathLike[str],
    log_dir: str | os.PathLike[str] | None = None,
) -> Path | None:
    """Turn ``ckpt_path`` into a file, or None to start from scratch.

    * ``"last"``: :func:`find_last_checkpoint`; when there is none, a warning and None
      (the first run of a job that is always launched with ``ckpt_path="last"``).
    * ``"best"``: the best checkpoint of a ``ModelCheckpoint`` (one with ``monitor``
      first); in a new process, the one named in the last checkpoint ``"last"`` picks.
    * anything else: that file, which must exist.

    ``log_dir`` is the run's directory (``trainer.log_dir``). Call it after the callbacks'
    ``setup`` (their folders are known then).
    """
    if ckpt_path is None:
        return None
    callbacks = list(callbacks)
    if ckpt_path == "last":
        last = find_last_checkpoint(callbacks, default_root_dir, log_dir)
        if last is None:
            folders = ", ".join(map(str, checkpoint_dirs(callbacks, log_dir or default_root_dir)))
            warnings.warn(
                f"ckpt_path='last': no last checkpoint in {folders} (nor in another run under "
                f"{default_root_dir}); training starts from scratch (save one with "
                "ModelCheckpoint(save_last=True))",
                UserWarning,
                stacklevel=2,
            )
        return last
    if ckpt_path == "best":
        return _find_best(callbacks, default_root_dir, log_dir)
    path = Path(ckpt_path)
    if not (path.is_file() or path.is_dir()):  # a folder: a sharded checkpoint (fsdp)
        raise CheckpointNotFoundError(
            f"ckpt_path={os.fspath(ckpt_path)!r} does not exist; pass an existing checkpoint, "
            "'last' or 'best'"
        )
    return path


def _find_best(
    callbacks: list[Any],
    default_root_dir: str | os.PathLike[str],
    log_dir: str | os.PathLike[str] | None,
) -> Path:
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
    last = find_last_checkpoint(callbacks, default_root_dir, log_dir)
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
