"""``ModelCheckpoint``: save checkpoints during training on a schedule, keep the best ``k``
by a monitored metric and a ``last.ckpt`` to resume from (Lightning's callback, same
options and file names)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
import warnings
from datetime import timedelta
from typing import Any, ClassVar

import torch
from ember.trainer.callback import Callback
from ember.trainer.checkpoint.io import (
    link_checkpoint_atomic,
    remove_checkpoint,
    remove_stale_temp_files,
)
from ember.trainer.errors import MisconfigurationError
from ember.trainer.fit_checks import validation_off_hint

log = logging.getLogger(__name__)

_MODES = ("min", "max")
# A template field: ``{name}`` or ``{name:format_spec}``; the name may hold '/' and '.'.
_FIELD_RE = re.compile(r"\{([^{}:]+)(:[^{}]*)?\}")


def parse_interval(value: Any) -> timedelta | None:
    """A ``train_time_interval`` as a ``timedelta``: given as one, as seconds, as
    ``"HH:MM:SS"`` / ``"DD:HH:MM:SS"``, or as a dict of ``timedelta`` arguments."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, dict):
        try:
            return timedelta(**value)
        except TypeError as exc:
            raise ValueError(
                f"ModelCheckpoint(train_time_interval={value!r}): the keys must be timedelta "
                "arguments such as 'hours', 'minutes', 'seconds'"
            ) from exc
    if isinstance(value, str):
        parts = value.split(":")
        if 3 <= len(parts) <= 4 and all(p.strip().replace(".", "", 1).isdigit() for p in parts):
            numbers = [float(p) for p in parts]
            days = numbers[0] if len(numbers) == 4 else 0.0
            hours, minutes, seconds = numbers[-3:]
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ValueError(
        f"ModelCheckpoint(train_time_interval={value!r}): give a datetime.timedelta, a number "
        "of seconds, 'HH:MM:SS', 'DD:HH:MM:SS' or a dict such as {'minutes': 30}"
    )


def _number(value: Any) -> Any:
    """A metric as a Python number (one host transfer, at save time only)."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value
    return value


class ModelCheckpoint(Callback):
    """Save checkpoints while training: the best ``save_top_k`` by ``monitor``, and
    optionally ``last.ckpt``.

    :param dirpath: folder of the checkpoints; by default ``<trainer.log_dir>/checkpoints``,
        the run's own folder (``<default_root_dir>/ember_runs/<run id>/checkpoints``;
        ``<default_root_dir>/checkpoints`` without a run), and on a resume the folder the
        checkpoint's state names.
    :param filename: file name template without extension, e.g. ``"{epoch}-{val_loss:.3f}"``
        (giving ``epoch=3-val_loss=0.123.ckpt``). Fields are ``epoch``, ``step`` and any
        logged metric (names may contain ``/``, written as ``_`` in the file name); a
        metric not yet logged formats as 0. Default ``"{epoch}-{step}"``.
    :param monitor: the logged metric that ranks checkpoints; ``None`` keeps the latest.
    :param verbose: log a line per save.
    :param save_last: also keep ``last.ckpt``, the state at the latest save point: the file
        to resume from. When a top-k file is written at the same moment, ``last.ckpt``
        is an atomic hard link to it (no second write); otherwise a full save.
    :param save_top_k: how many ranked checkpoints to keep; ``-1`` all, ``0`` none. Without
        ``monitor`` only ``-1``, ``0`` and ``1`` (the latest) make sense.
    :param save_weights_only: save only the module's weights and hyperparameters (such a
        file loads with ``load_from_checkpoint`` but cannot resume training).
    :param mode: ``"min"`` when lower ``monitor`` is better, ``"max"`` when higher is.
    :param auto_insert_metric_name: write ``name=`` before each value in the file name.
    :param every_n_train_steps: save every N optimizer steps.
    :param train_time_interval: save at the first step after this much training time: a
        ``timedelta``, seconds, ``"HH:MM:SS"`` or ``{"minutes": 30}``.
    :param every_n_epochs: save every N epochs (the default, 1, when no trigger is set).
        The three triggers are mutually exclusive.
    :param save_on_train_epoch_end: save epoch-triggered checkpoints at the end of the
        training epoch (``True``) or after validation (``False``). By default: at the end
        of the training epoch when validation runs exactly once per epoch or not at all,
        after validation otherwise.
    :param enable_version_counter: when the target name exists and is not one of this
        callback's own files, append ``-v1``, ``-v2``, ... instead of overwriting it.

    After fitting, :attr:`best_model_path`, :attr:`best_model_score`,
    :attr:`best_k_models`, :attr:`kth_best_model_path` and :attr:`last_model_path` say what
    was kept; all of them are in the checkpoint, so a resumed run continues the same
    bookkeeping.
    """

    role: ClassVar[str | None] = "checkpointer"

    CHECKPOINT_JOIN_CHAR = "-"
    CHECKPOINT_EQUALS_CHAR = "="
    CHECKPOINT_NAME_LAST = "last"
    FILE_EXTENSION = ".ckpt"
    STARTING_VERSION = 1

    def __init__(
        self,
        dirpath: str | os.PathLike[str] | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | None = None,
        save_top_k: int = 1,
        save_weights_only: bool = False,
        mode: str = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | float | str | dict[str, float] | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        enable_version_counter: bool = True,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"ModelCheckpoint(mode=...) must be 'min' or 'max', got {mode!r}")
        if not isinstance(save_top_k, int) or isinstance(save_top_k, bool) or save_top_k < -1:
            raise ValueError(
                f"ModelCheckpoint(save_top_k=...) must be an integer >= -1 (-1 keeps all, 0 "
                f"none), got {save_top_k!r}"
            )
        if monitor is None and save_top_k not in (-1, 0, 1):
            raise ValueError(
                f"ModelCheckpoint(save_top_k={save_top_k}) needs a metric to rank checkpoints "
                "by: pass monitor='val_loss' (or another logged metric), or use save_top_k=1 "
                "for the latest only, -1 for all"
            )
        if save_last not in (None, True, False):
            raise ValueError(
                f"ModelCheckpoint(save_last=...) must be True or False, got {save_last!r} "
                "(ember links last.ckpt to the top-k file whenever it can, so there is no "
                "separate 'link' mode)"
            )
        for name, value in (
            ("every_n_train_steps", every_n_train_steps),
            ("every_n_epochs", every_n_epochs),
        ):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(
                    f"ModelCheckpoint({name}=...) must be an integer >= 0, got {value!r}"
                )
        interval = parse_interval(train_time_interval)
        active = [
            name
            for name, on in (
                ("every_n_train_steps", bool(every_n_train_steps)),
                ("every_n_epochs", bool(every_n_epochs)),
                ("train_time_interval", interval is not None),
            )
            if on
        ]
        if len(active) > 1:
            raise ValueError(
                f"ModelCheckpoint: {' and '.join(active)} are mutually exclusive; choose one "
                "trigger (add a second ModelCheckpoint for a second schedule)"
            )
        if every_n_train_steps is None and every_n_epochs is None and interval is None:
            every_n_epochs = 1
        self.dirpath: str | None = (
            os.path.abspath(os.fspath(dirpath)) if dirpath is not None else None
        )
        #: a default folder follows a resumed run's folder (see load_state_dict)
        self._dirpath_given = dirpath is not None
        self.filename = filename
        self.monitor = monitor
        self.verbose = verbose
        self.save_last = bool(save_last)
        self.save_top_k = save_top_k
        self.save_weights_only = save_weights_only
        self.mode = mode
        self.auto_insert_metric_name = auto_insert_metric_name
        self._every_n_train_steps = every_n_train_steps or 0
        self._every_n_epochs = every_n_epochs or 0
        self._train_time_interval = interval
        self._save_on_train_epoch_end = save_on_train_epoch_end
        self._enable_version_counter = enable_version_counter

        self.best_k_models: dict[str, torch.Tensor] = {}
        self.kth_best_model_path = ""
        self.kth_value: torch.Tensor | None = None
        self.best_model_score: torch.Tensor | None = None
        self.best_model_path = ""
        self.current_score: torch.Tensor | None = None
        self.last_model_path = ""
        self._last_global_step_saved = 0
        self._last_time_checked: float | None = None
        self._pending_state: dict[str, Any] | None = None
        self._warned_missing: set[str] = set()
        self._validation_ran = False

    # ------------------------------------------------------------------ identity

    @property
    def state_key(self) -> str:
        """Tells apart several ModelCheckpoints of one run in the checkpoint's callback states."""
        return self._generate_state_key(
            monitor=self.monitor,
            mode=self.mode,
            every_n_train_steps=self._every_n_train_steps,
            every_n_epochs=self._every_n_epochs,
            train_time_interval=self._train_time_interval,
        )

    @property
    def every_n_train_steps(self) -> int:
        """The step trigger (0 when off)."""
        return self._every_n_train_steps

    @property
    def every_n_epochs(self) -> int:
        """The epoch trigger (0 when off)."""
        return self._every_n_epochs

    @property
    def train_time_interval(self) -> timedelta | None:
        """The time trigger (None when off)."""
        return self._train_time_interval

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: Any, module: Any, stage: str) -> None:
        """Fix the folder, clear temp files of saves killed mid-write, apply a restored state.

        The default folder is ``<trainer.log_dir>/checkpoints``: the run's directory is
        chosen before the callbacks' ``setup``, so each run keeps its checkpoints apart.
        """
        if self.dirpath is None:
            root = getattr(trainer, "log_dir", None) or trainer.default_root_dir
            self.dirpath = os.path.abspath(os.path.join(root, "checkpoints"))
        self.dirpath = trainer.strategy.broadcast(self.dirpath)
        if trainer.is_global_zero and stage == "fit":
            remove_stale_temp_files(self.dirpath)
        if self._pending_state is not None:
            pending, self._pending_state = self._pending_state, None
            self.load_state_dict(pending)

    def on_train_start(self, trainer: Any, module: Any) -> None:
        """Start the clock of ``train_time_interval``."""
        self._last_time_checked = time.monotonic()

    def on_train_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Save when the step or time trigger fires."""
        if self._should_skip(trainer):
            return
        due_step = (
            self._every_n_train_steps >= 1 and trainer.global_step % self._every_n_train_steps == 0
        )
        due_time = False
        if self._train_time_interval is not None and self._last_time_checked is not None:
            now = time.monotonic()
            due_time = now - self._last_time_checked >= self._train_time_interval.total_seconds()
            # ranks' clocks differ: rank 0 decides, so that all save together
            due_time = trainer.strategy.broadcast(due_time)
            if due_time:
                self._last_time_checked = now
        if due_step or due_time:
            self._save(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        """Save at the end of the training epoch when that is where epoch saves happen."""
        if not self._should_skip(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._save_for_epoch(trainer)

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        """Save after validation when that is where epoch saves happen."""
        if not trainer.sanity_checking:
            self._validation_ran = True
        if not self._should_skip(trainer) and not self._should_save_on_train_epoch_end(trainer):
            self._save_for_epoch(trainer)

    def on_train_end(self, trainer: Any, module: Any) -> None:
        """Make ``last.ckpt`` hold the final state even when the last trigger came earlier."""
        if self.save_last and not self._should_skip(trainer) and trainer.global_step > 0:
            self._save(trainer, self._monitor_candidates(trainer), topk=False)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Bookkeeping as plain data (scores as floats)."""
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "dirpath": self.dirpath,
            "best_model_score": _float(self.best_model_score),
            "best_model_path": self.best_model_path,
            "current_score": _float(self.current_score),
            "best_k_models": {path: float(score) for path, score in self.best_k_models.items()},
            "kth_best_model_path": self.kth_best_model_path,
            "kth_value": _float(self.kth_value),
            "last_model_path": self.last_model_path,
            "last_global_step_saved": self._last_global_step_saved,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the saved bookkeeping (after :meth:`setup`; before, it waits for it).

        A callback whose folder was not given continues in the saved folder when it still
        exists (the default may differ between processes). Otherwise, when the folders
        differ, only ``best_model_path`` is taken: the other files are not in this run's
        folder, so they are not this run's to rotate.
        """
        if self.dirpath is None:
            self._pending_state = dict(state_dict)
            return
        saved_dir = state_dict.get("dirpath")
        if saved_dir is not None and not self._dirpath_given and os.path.isdir(saved_dir):
            self.dirpath = os.path.abspath(saved_dir)
        if saved_dir is None or os.path.abspath(saved_dir) == self.dirpath:
            self.best_model_score = _tensor(state_dict.get("best_model_score"))
            self.current_score = _tensor(state_dict.get("current_score"))
            self.best_k_models = {
                path: torch.tensor(score)
                for path, score in state_dict.get("best_k_models", {}).items()
            }
            self.kth_best_model_path = state_dict.get("kth_best_model_path", "")
            self.kth_value = _tensor(state_dict.get("kth_value"))
            self.last_model_path = state_dict.get("last_model_path", "")
            self._last_global_step_saved = int(state_dict.get("last_global_step_saved", 0))
        else:
            warnings.warn(
                f"ModelCheckpoint: the checkpoint folder changed from {saved_dir!r} to "
                f"{self.dirpath!r}; only best_model_path is restored, and the top-k and last "
                "bookkeeping starts afresh in the new folder",
                UserWarning,
                stacklevel=2,
            )
        self.best_model_path = state_dict.get("best_model_path", "")

    # ------------------------------------------------------------------ names

    def format_checkpoint_name(
        self,
        metrics: dict[str, Any],
        filename: str | None = None,
        ver: int | None = None,
        prefix: str | None = None,
    ) -> str:
        """The path for ``metrics`` under the template (``filename`` or the configured one).

        ``{epoch}`` with ``epoch=2`` gives ``epoch=2.ckpt``; ``{val/loss:.2f}`` gives
        ``val_loss=0.12``; ``ver=1`` appends ``-v1``.
        """
        name = self._fill_template(filename or self.filename or "{epoch}-{step}", metrics)
        if prefix:
            name = self.CHECKPOINT_JOIN_CHAR.join((prefix, name))
        if ver is not None:
            name = self.CHECKPOINT_JOIN_CHAR.join((name, f"v{ver}"))
        name += self.FILE_EXTENSION
        return os.path.join(self.dirpath, name) if self.dirpath else name

    def _fill_template(self, template: str, metrics: dict[str, Any]) -> str:
        def fill(match: re.Match[str]) -> str:
            key, spec = match[1].strip(), (match[2] or "")[1:]
            if key in metrics:
                value = _number(metrics[key])
            else:
                value = 0
                if key not in self._warned_missing:
                    self._warned_missing.add(key)
                    warnings.warn(
                        f"ModelCheckpoint(filename={template!r}): {key!r} is not a logged "
                        f"metric (yet); it is written as 0. Logged: {', '.join(sorted(metrics))}",
                        UserWarning,
                        stacklevel=2,
                    )
            try:
                text = format(value, spec)
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"ModelCheckpoint(filename={template!r}): cannot format {key}={value!r} "
                    f"with ':{spec}' ({exc})"
                ) from exc
            if self.auto_insert_metric_name:
                text = f"{key.replace('/', '_')}{self.CHECKPOINT_EQUALS_CHAR}{text}"
            return text

        return _FIELD_RE.sub(fill, template)

    # ------------------------------------------------------------------ decisions

    def _should_skip(self, trainer: Any) -> bool:
        return (
            bool(trainer.fast_dev_run)
            or trainer.state.fn != "fit"
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step
        )

    def _should_save_on_train_epoch_end(self, trainer: Any) -> bool:
        if self._save_on_train_epoch_end is not None:
            return self._save_on_train_epoch_end
        if getattr(trainer, "check_val_every_n_epoch", 1) != 1:
            return False
        num_val_batches = getattr(trainer, "num_val_batches", 0)
        if isinstance(num_val_batches, (list, tuple)):
            num_val_batches = sum(num_val_batches)
        if not num_val_batches:
            return True
        return getattr(trainer, "val_check_interval", 1.0) == 1.0

    def _monitor_candidates(self, trainer: Any) -> dict[str, Any]:
        candidates = dict(trainer.callback_metrics)
        epoch, step = candidates.get("epoch"), candidates.get("step")
        candidates["epoch"] = (
            int(epoch) if isinstance(epoch, torch.Tensor) else trainer.current_epoch
        )
        candidates["step"] = int(step) if isinstance(step, torch.Tensor) else trainer.global_step
        return candidates

    def _save_for_epoch(self, trainer: Any) -> None:
        if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
            self._save(trainer, self._monitor_candidates(trainer))

    def check_monitor_top_k(self, trainer: Any, current: torch.Tensor | None = None) -> bool:
        """Whether ``current`` earns a place among the top ``save_top_k``."""
        if current is None:
            return False
        if self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return True
        kth = float(self.best_k_models[self.kth_best_model_path])
        better = float(current) < kth if self.mode == "min" else float(current) > kth
        return trainer.strategy.reduce_boolean_decision(better)

    # ------------------------------------------------------------------ saving

    def _save(self, trainer: Any, candidates: dict[str, Any], topk: bool = True) -> None:
        """Decide every name first (the bookkeeping is part of the saved state), then write."""
        topk_path, topk_removed = self._plan_topk(trainer, candidates) if topk else (None, None)
        last_path, last_removed = (
            self._plan_last(trainer, candidates) if self.save_last else (None, None)
        )
        if topk_path is None and last_path is None:
            return
        self._last_global_step_saved = trainer.global_step
        if topk_path is not None:
            self._write(trainer, topk_path)
        if last_path is not None:
            if topk_path is not None:
                if trainer.is_global_zero:
                    link_checkpoint_atomic(topk_path, last_path)
                trainer.strategy.barrier("ModelCheckpoint.link_last")
            else:
                self._write(trainer, last_path)
        for old, new in ((topk_removed, topk_path), (last_removed, last_path)):
            if old and self._should_remove(trainer, old, new):
                self._remove(trainer, old)

    def _write(self, trainer: Any, filepath: str) -> None:
        trainer.save_checkpoint(filepath, weights_only=self.save_weights_only)
        if self.verbose and trainer.is_global_zero:
            log.info("ModelCheckpoint: saved %s", filepath)

    def _plan_topk(self, trainer: Any, candidates: dict[str, Any]) -> tuple[str | None, str | None]:
        """Update the top-k bookkeeping; return (file to write, file it displaces)."""
        if self.save_top_k == 0:
            return None, None
        if self.monitor is None:
            replaceable = self.best_model_path if self.save_top_k == 1 else None
            filepath = self._free_name(trainer, candidates, replaceable)
            previous, self.best_model_path = self.best_model_path, filepath
            return filepath, (previous if self.save_top_k == 1 else None)
        if self.monitor not in candidates:
            # once validation has run, a metric still missing is a typo, not "not yet"
            why = validation_off_hint(trainer, self.monitor)
            self._missing_monitor(candidates, fatal=self._validation_ran, why=why)
            return None, None
        current = candidates[self.monitor]
        current = (
            current.detach().float().cpu()
            if isinstance(current, torch.Tensor)
            else torch.tensor(float(current))
        )
        if torch.isnan(current):
            current = torch.tensor(math.inf if self.mode == "min" else -math.inf)
        if not self.check_monitor_top_k(trainer, current):
            if self.verbose and trainer.is_global_zero:
                log.info(
                    "ModelCheckpoint: epoch %d, step %d: %s=%.5g is not in the top %d",
                    candidates["epoch"],
                    candidates["step"],
                    self.monitor,
                    float(current),
                    self.save_top_k,
                )
            return None, None
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        displaced = None
        if len(self.best_k_models) == k:
            displaced = self.kth_best_model_path
            self.best_k_models.pop(displaced)
        filepath = self._free_name(trainer, candidates, displaced)
        self.current_score = current
        self.best_k_models[filepath] = current
        if len(self.best_k_models) == k:
            worst = max if self.mode == "min" else min
            self.kth_best_model_path = worst(
                self.best_k_models, key=lambda p: float(self.best_k_models[p])
            )
            self.kth_value = self.best_k_models[self.kth_best_model_path]
        best = min if self.mode == "min" else max
        self.best_model_path = best(self.best_k_models, key=lambda p: float(self.best_k_models[p]))
        self.best_model_score = self.best_k_models[self.best_model_path]
        if self.verbose and trainer.is_global_zero:
            log.info(
                "ModelCheckpoint: epoch %d, step %d: %s reached %.5g (best %.5g), saving %s "
                "as top %d",
                candidates["epoch"],
                candidates["step"],
                self.monitor,
                float(current),
                float(self.best_model_score),
                filepath,
                k,
            )
        return filepath, displaced

    def _plan_last(self, trainer: Any, candidates: dict[str, Any]) -> tuple[str, str | None]:
        filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while filepath != self.last_model_path and self._exists(trainer, filepath):
                filepath = self.format_checkpoint_name(
                    candidates, self.CHECKPOINT_NAME_LAST, ver=version
                )
                version += 1
        previous, self.last_model_path = self.last_model_path, filepath
        return filepath, previous

    def _free_name(self, trainer: Any, candidates: dict[str, Any], replaceable: str | None) -> str:
        """The templated name, versioned past files that are not ours to overwrite."""
        filepath = self.format_checkpoint_name(candidates)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while filepath != replaceable and self._exists(trainer, filepath):
                filepath = self.format_checkpoint_name(candidates, ver=version)
                version += 1
        return filepath

    def _exists(self, trainer: Any, filepath: str) -> bool:
        # only rank 0 looks at the disk, so that every rank reaches the same decision
        found = os.path.exists(filepath) if trainer.is_global_zero else False
        return bool(trainer.strategy.broadcast(found))

    def _should_remove(self, trainer: Any, previous: str, current: str | None) -> bool:
        """Delete a displaced file only if it is ours: in our folder, not the file this run
        resumed from, and not still named by the bookkeeping."""
        if previous == current or self.dirpath is None:
            return False
        previous_abs = os.path.abspath(previous)
        resumed_from = getattr(trainer, "ckpt_path", None)
        if resumed_from is not None and os.path.abspath(resumed_from) == previous_abs:
            return False
        if previous in self.best_k_models or previous in (
            self.best_model_path,
            self.last_model_path,
        ):
            return False
        return os.path.dirname(previous_abs) == self.dirpath

    def _remove(self, trainer: Any, filepath: str) -> None:
        if trainer.is_global_zero:
            with contextlib.suppress(FileNotFoundError):
                remove_checkpoint(filepath)
            if self.verbose:
                log.info("ModelCheckpoint: removed %s", filepath)

    def _missing_monitor(self, candidates: dict[str, Any], fatal: bool, why: str = "") -> None:
        import difflib

        known = sorted(k for k in candidates if k not in ("epoch", "step"))
        close = difflib.get_close_matches(self.monitor or "", known, n=1)
        # validation being off is the cause: a training metric's similar name is not
        hint = why or (f" Did you mean {close[0]!r}?" if close else "")
        msg = (
            f"ModelCheckpoint(monitor={self.monitor!r}) found no such logged metric; logged: "
            f"{', '.join(known) or 'none'}.{hint} Log it with self.log({self.monitor!r}, value)."
        )
        if fatal:
            raise MisconfigurationError(msg)
        if self.monitor not in self._warned_missing:
            self._warned_missing.add(self.monitor or "")
            warnings.warn(
                msg + " Top-k checkpoints start once it is logged; last.ckpt is saved meanwhile.",
                UserWarning,
                stacklevel=3,
            )


def _float(value: torch.Tensor | None) -> float | None:
    return None if value is None else float(value)


def _tensor(value: float | None) -> torch.Tensor | None:
    return None if value is None else torch.tensor(value)
