"""Checkpoint dump and restore for a trainer: what a checkpoint holds (module, optimizer
and scheduler states, loop position, loader position, random states, callbacks,
precision, datamodule, the tracking run), how it is written (through the strategy), and
the preemption save at a step boundary."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from ember.trainer.checkpoint import (
    CheckpointError,
    Preempted,
    PreemptionHandler,
    capture_rng_state,
    checkpoint_header,
    preemption_checkpoint_path,
    resolve_ckpt_path,
    restore_rng_state,
    to_plain,
)
from ember.trainer.checkpoint.io import warn_incompatible_keys
from ember.trainer.errors import MisconfigurationError
from ember.trainer.results import to_host
from ember.trainer.state import TrainerFn, TrainerStatus

if TYPE_CHECKING:
    from ember.trainer.trainer import Trainer


def callback_states(callbacks: list[Any]) -> dict[str, Any]:
    """Each callback's ``state_dict()``, keyed by its ``state_key``."""
    states: dict[str, Any] = {}
    for cb in callbacks:
        state_dict = getattr(cb, "state_dict", None)
        if callable(state_dict):
            state = state_dict()
            if state:
                states[getattr(cb, "state_key", type(cb).__qualname__)] = state
    return states


def load_callback_states(callbacks: list[Any], states: Mapping[str, Any]) -> None:
    """Give each callback the state saved under its ``state_key`` (missing ones are left
    as they are)."""
    for cb in callbacks:
        key = getattr(cb, "state_key", type(cb).__qualname__)
        if key in states and callable(getattr(cb, "load_state_dict", None)):
            cb.load_state_dict(states[key])


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, torch.Tensor) or value.numel() == 1


class Checkpointing:
    """Saves and restores the running trainer's state (reads only its public parts)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        #: SIGTERM/SIGUSR1 ask for a save at the next step boundary
        self.preemption = PreemptionHandler()
        #: the random state of a checkpoint being resumed, restored by the fit loop at the
        #: point matching where it was captured
        self.resume_rng_state: dict[str, Any] | None = None
        #: the monitored values of a checkpoint being resumed, put back by the fit loop
        #: as training starts (after the sanity check, which leaves no values behind)
        self.resume_callback_metrics: dict[str, torch.Tensor] | None = None
        #: the checkpoint the running (or last) entry point restored, or ``None``
        self.ckpt_path: str | None = None

    def rng_state(self) -> dict[str, Any]:
        """Every random generator: the host's and the accelerator's."""
        return {**capture_rng_state(), **self.trainer.accelerator.rng_state()}

    def restore_rng(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`rng_state` captured."""
        restore_rng_state(state)
        self.trainer.accelerator.load_rng_state(state)

    # ------------------------------------------------------------------ dump
    def dump(self, weights_only: bool = False) -> dict[str, Any]:
        """Everything needed to continue this run exactly."""
        t = self.trainer
        module, strategy = t.module, t.strategy
        if module is None or t.hooks is None:
            raise MisconfigurationError(
                "save_checkpoint needs a running module: call it during or after "
                "trainer.fit/validate/test/predict"
            )
        state: dict[str, Any] = {
            "epoch": t.current_epoch,
            "global_step": t.global_step,
            "state_dict": strategy.module_state_dict(),
            "loops": {"fit_loop": self._fit_loop_state()},
        }
        run_identity = t.run.state_dict()
        if run_identity:  # resuming from this checkpoint continues the same run
            state["run"] = run_identity
        # checkpoints are artifacts trackers upload: no secret goes in
        if getattr(module, "_hparams", None):
            state["hyper_parameters"] = t.run.redact(to_plain(dict(module.hparams)))
        datamodule = t.datamodule
        if datamodule is not None and getattr(datamodule, "_hparams", None):
            hparams = to_plain(dict(datamodule.hparams))
            state["datamodule_hyper_parameters"] = t.run.redact(hparams)
        if weights_only:
            state["weights_only"] = True  # so that resuming from it says why it cannot
        else:
            state["rng"] = self.rng_state()
            state["optimizer_states"] = [strategy.optimizer_state(o) for o in t.optimizers]
            state["lr_schedulers"] = [c.scheduler.state_dict() for c in t.lr_scheduler_configs]
            state["callbacks"] = callback_states(t.callbacks)
            precision_state = t.precision_plugin.state_dict()
            if precision_state:
                state["precision"] = precision_state
            if datamodule is not None:
                state["datamodule"] = datamodule.state_dict()
        t.hooks.save_checkpoint(state)
        return state

    def _fit_loop_state(self) -> dict[str, Any]:
        """The fit loop's position, with the training loader's (epoch, batches consumed,
        sampler order) when there is one."""
        t = self.trainer
        state: dict[str, Any] = t.progress.state_dict()
        loader = t.data.train_loader
        if loader is not None:
            state["train_dataloader"] = loader.state_dict()
        if t.state.fn == TrainerFn.FITTING and t.state.status != TrainerStatus.INTERRUPTED:
            # what hooks still to run after the resume point monitor (EarlyStopping and
            # ModelCheckpoint at the epoch end, ReduceLROnPlateau): one host read per save
            # (not while an exception is handled: the values may be half-reduced)
            scalars = {k: v for k, v in t.callback_metrics.items() if _is_scalar(v)}
            state["callback_metrics"] = to_host(scalars)[0] if scalars else {}
            state["should_stop"] = bool(t.should_stop)
        return state

    def save(self, path: str | os.PathLike[str], weights_only: bool = False) -> None:
        """Write a checkpoint through the strategy; record it in the run when written.

        Refuses with :class:`NonFiniteLossError` (writing nothing) when a loss since the
        last check was NaN or infinite: the check waits for metric flushes, so it runs here
        first (one host read per save, none per step)."""
        t = self.trainer
        if t.optimization is not None:
            # every process saves together, except while an exception is handled
            strategy = t.strategy
            collective = (
                strategy.world_size > 1
                and strategy.environment_ready
                and t.state.status == TrainerStatus.RUNNING
            )
            t.optimization.check_before_save(path, collective)
        state = {**checkpoint_header(), **self.dump(weights_only)}
        if t.strategy.save_checkpoint(state, path):
            metadata = {"epoch": t.current_epoch, **self._best_metadata(path)}
            t.tracking.record_artifact(path, "checkpoint", t.global_step, metadata)
        if t.strategy.environment_ready:  # after teardown (a save after fit) no process waits
            t.strategy.barrier("save_checkpoint")

    def _best_metadata(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """``best``: whether a checkpointer holds ``path`` as its best so far (with its
        ``monitor`` and ``score``), so that loggers can upload or alias only that one.
        ModelCheckpoint updates ``best_model_path`` before it writes."""
        full = os.path.abspath(os.fspath(path))
        for cb in self.trainer.checkpoint_callbacks:
            best = getattr(cb, "best_model_path", "")
            if best and os.path.abspath(best) == full:
                score = getattr(cb, "best_model_score", None)
                if getattr(cb, "monitor", None) and score is not None:
                    return {"best": True, "monitor": cb.monitor, "score": float(score)}
                return {"best": True}
        return {"best": False}

    # ------------------------------------------------------------------ restore
    def restore(self, ckpt_path: Any) -> None:
        """Restore a checkpoint before a run (``None``: start from the module as is).

        Runs after the callbacks' ``setup`` (their folders decide what ``"last"`` and
        ``"best"`` mean); a fit's random state is restored later, by the fit loop.
        """
        t = self.trainer
        self.ckpt_path = None
        if ckpt_path is None:
            return
        path = resolve_ckpt_path(ckpt_path, t.callbacks, t.default_root_dir, t.log_dir)
        if path is None:
            return
        checkpoint = t.strategy.load_checkpoint(path)
        if t.state.fn == TrainerFn.FITTING and checkpoint.get("weights_only"):
            name = type(t.module).__name__
            raise CheckpointError(
                f"cannot resume training from {path}: it was saved with weights only "
                "(save_weights_only=True), so it holds no optimizer, scheduler, loop or "
                "random state. To train on from its weights, build the model with "
                f"{name}.load_from_checkpoint({os.fspath(path)!r}) and call fit without "
                "ckpt_path; to resume, pass a full checkpoint (ModelCheckpoint(save_last=True) "
                "writes last.ckpt)."
            )
        self.ckpt_path = os.fspath(path)
        self.load(checkpoint)

    def load(self, checkpoint: Mapping[str, Any]) -> None:
        """Restore what :meth:`dump` saved into the running trainer."""
        t = self.trainer
        assert t.hooks is not None
        t.hooks.load_checkpoint(checkpoint)
        strict = t.hooks.module.strict_loading
        keys = t.strategy.load_module_state_dict(checkpoint["state_dict"], strict=strict)
        if not strict and keys is not None and self.ckpt_path is not None:
            warn_incompatible_keys(keys, self.ckpt_path)
        if t.state.fn != TrainerFn.FITTING:
            return
        # the fit continues the checkpoint's run; what was logged after it is superseded
        t.tracking.resume_from = (
            checkpoint.get("run") or None,
            int(checkpoint.get("global_step", 0)),
        )
        stepped = bool(checkpoint.get("global_step"))
        for optimizer, state in zip(
            t.optimizers, checkpoint.get("optimizer_states", []), strict=False
        ):
            t.strategy.load_optimizer_state(optimizer, state)
            if stepped:
                # the interrupted run had stepped it; without this torch warns that a
                # scheduler steps "before optimizer.step()" when a resume replays an epoch end
                optimizer._opt_called = True  # type: ignore[attr-defined]
        for config, state in zip(
            t.lr_scheduler_configs, checkpoint.get("lr_schedulers", []), strict=False
        ):
            config.scheduler.load_state_dict(state)
        load_callback_states(t.callbacks, checkpoint.get("callbacks", {}))
        if "precision" in checkpoint:
            t.precision_plugin.load_state_dict(checkpoint["precision"])
        if t.datamodule is not None and "datamodule" in checkpoint:
            t.datamodule.load_state_dict(checkpoint["datamodule"])
        fit_state = checkpoint.get("loops", {}).get("fit_loop", {})
        t.progress.load_state_dict(fit_state)
        self.resume_callback_metrics = {
            name: torch.tensor(float(value))
            for name, value in (fit_state.get("callback_metrics") or {}).items()
        }
        if t.progress.epoch_ending or t.progress.batch_idx:
            # saved inside an epoch (or by its end hooks) after which training was told to
            # stop; a checkpoint of a finished fit lets a resume train on
            t.should_stop = bool(fit_state.get("should_stop", False))
        t.data.resume_train_loader(fit_state.get("train_dataloader"))
        self.resume_rng_state = checkpoint.get("rng")

    # ------------------------------------------------------------------ preemption
    def preempt(self) -> None:
        """Save ``preempted.ckpt`` at this step boundary and stop with status 75."""
        t = self.trainer
        path = preemption_checkpoint_path(t.callbacks, t.log_dir)
        # a process told by another one (distributed) saw no signal itself
        signum = self.preemption.signum or signal.SIGTERM
        self.save(path)
        exc = Preempted(signum, str(path))
        if t.is_global_zero:
            print(f"ember: {exc}", file=sys.stderr, flush=True)
        raise exc
