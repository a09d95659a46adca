"""Log learning rates (and optionally momentum and weight decay) as training runs."""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

from ember.trainer.callback import Callback

_INTERVALS = (None, "step", "epoch")


class LearningRateMonitor(Callback):
    """Log each optimizer's learning rate, per parameter group, under Lightning's names.

    Names are ``lr-<Optimizer>`` (``lr-Adam``), then ``-1``, ``-2`` for further optimizers
    of the same class, ``/pg1``, ``/pg2`` (or the group's ``name``) when an optimizer has
    several parameter groups, or the scheduler config's ``name`` when one is set. Momentum
    and weight decay go under ``<lr name>-momentum`` and ``<lr name>-weight_decay``.

    :param logging_interval: ``"step"`` to log every ``log_every_n_steps`` optimizer steps,
        ``"epoch"`` to log at the start of each epoch, ``None`` to follow each scheduler's
        own interval (optimizers without a scheduler are then logged per step).
    :param log_momentum: also log momentum (``betas[0]`` for Adam-like optimizers).
    :param log_weight_decay: also log weight decay.

    Reading a learning rate is a host-side float lookup: this callback never touches the
    device. Values go to the run through the trainer's metric publishing path, the same
    one flushed ``self.log`` values take.
    """

    def __init__(
        self,
        logging_interval: str | None = None,
        log_momentum: bool = False,
        log_weight_decay: bool = False,
    ) -> None:
        if logging_interval not in _INTERVALS:
            raise ValueError(
                "LearningRateMonitor(logging_interval=...) must be 'step', 'epoch' or None, "
                f"got {logging_interval!r}"
            )
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        #: every learning rate logged, by name, in order
        self.lrs: dict[str, list[float]] = {}
        self.last_momentum_values: dict[str, float] = {}
        self.last_weight_decay_values: dict[str, float] = {}
        self._last_logged_step = -1

    def on_train_start(self, trainer: Any, module: Any) -> None:
        if not trainer.tracking.entries:
            # Lightning raises; the values still reach ``lrs`` and ``logged_metrics`` here
            warnings.warn(
                "LearningRateMonitor has no logger to send learning rates to (the Trainer "
                "has logger=False or logger=[]): they are kept only in its .lrs and in "
                "trainer.logged_metrics. Pass a logger (the default logger=None writes "
                "metrics.csv), or remove the callback",
                UserWarning,
                stacklevel=2,
            )
        if self.log_momentum and any(
            "momentum" not in opt.defaults and "betas" not in opt.defaults
            for opt in trainer.optimizers
        ):
            warnings.warn(
                "LearningRateMonitor(log_momentum=True): some optimizers have no momentum; "
                "0 is logged for them.",
                RuntimeWarning,
                stacklevel=2,
            )
        for name, _, _ in self._named_groups(trainer):
            self.lrs.setdefault(name, [])
        self._last_logged_step = -1

    def on_train_batch_start(self, trainer: Any, module: Any) -> None:
        if self.logging_interval == "epoch":
            return
        step = trainer.global_step
        every = trainer.log_every_n_steps
        # every=0 turns step logging off; under gradient accumulation several batches
        # share one step, which is logged once
        if not every or step % every != 0 or step == self._last_logged_step:
            return
        self._last_logged_step = step
        self._log(trainer, "step" if self.logging_interval is None else "any")

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        if self.logging_interval == "step":
            return
        self._log(trainer, "epoch" if self.logging_interval is None else "any")

    def _log(self, trainer: Any, interval: str) -> None:
        stats: dict[str, float] = {}
        for name, group, sched_interval in self._named_groups(trainer):
            if interval not in ("any", sched_interval):
                continue
            lr = float(group["lr"])
            self.lrs.setdefault(name, []).append(lr)
            stats[name] = lr
            if self.log_momentum:
                betas = group.get("betas")
                momentum = float(betas[0] if betas is not None else group.get("momentum", 0.0))
                self.last_momentum_values[f"{name}-momentum"] = momentum
                stats[f"{name}-momentum"] = momentum
            if self.log_weight_decay:
                decay = float(group.get("weight_decay", 0.0))
                self.last_weight_decay_values[f"{name}-weight_decay"] = decay
                stats[f"{name}-weight_decay"] = decay
        if stats:
            trainer.log_metrics(stats)

    def _named_groups(self, trainer: Any) -> list[tuple[str, dict[str, Any], str]]:
        """``(name, param_group, interval)`` for every parameter group of every optimizer.

        Optimizers with a scheduler come first, in scheduler order, with the scheduler's
        interval; the others follow with interval ``"step"``.
        """
        seen_types: defaultdict[type, int] = defaultdict(int)
        seen: list[Any] = []
        out: list[tuple[str, dict[str, Any], str]] = []

        def add(optimizer: Any, config_name: str | None, interval: str) -> None:
            seen.append(optimizer)
            name = config_name
            if name is None:
                seen_types[type(optimizer)] += 1
                count = seen_types[type(optimizer)]
                name = f"lr-{type(optimizer).__name__}" + (f"-{count - 1}" if count > 1 else "")
            groups = optimizer.param_groups
            labels = [g.get("name", f"pg{i}") for i, g in enumerate(groups, start=1)]
            duplicates = sorted({n for n in labels if labels.count(n) > 1})
            if duplicates:
                raise ValueError(
                    f"optimizer {type(optimizer).__name__} has several parameter groups named "
                    f"{', '.join(map(repr, duplicates))}; give each group a distinct 'name' so "
                    "LearningRateMonitor can tell them apart"
                )
            for group, label in zip(groups, labels, strict=True):
                if len(groups) > 1 or "name" in group:
                    out.append((f"{name}/{label}", group, interval))
                else:
                    out.append((name, group, interval))

        for config in trainer.lr_scheduler_configs:
            add(config.scheduler.optimizer, config.name, config.interval)
        for optimizer in trainer.optimizers:
            if not any(optimizer is s for s in seen):
                add(optimizer, None, "step")
        return out
