"""Read what ``configure_optimizers`` returned, in any of Lightning's forms, into a list
of optimizers and a list of :class:`LRSchedulerConfig`."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from ember.trainer.errors import MisconfigurationError
from torch.optim import Optimizer

_SCHEDULER_KEYS = ("scheduler", "name", "interval", "frequency", "monitor", "strict")
_OPTIMIZER_KEYS = ("optimizer", "lr_scheduler", "monitor")

_FORMS = (
    "return an optimizer; a list of optimizers; a pair ([optimizers], [schedulers]); "
    'a dict {"optimizer": opt, "lr_scheduler": scheduler or {"scheduler": ..., '
    '"interval": "epoch" | "step", "frequency": 1, "monitor": "val_loss"}}; '
    "or a list of such dicts"
)


@dataclass
class LRSchedulerConfig:
    """One learning-rate scheduler and when the trainer steps it.

    ``interval`` is ``"epoch"`` or ``"step"`` (optimizer steps); the scheduler steps every
    ``frequency`` of them. ``monitor`` names the metric a ``ReduceLROnPlateau`` reads from
    ``trainer.callback_metrics``; with ``strict`` a missing metric is an error, otherwise
    that step is skipped.
    """

    scheduler: Any
    name: str | None = None
    interval: str = "epoch"
    frequency: int = 1
    reduce_on_plateau: bool = False
    monitor: str | None = None
    strict: bool = True


def _is_optimizer(obj: Any) -> bool:
    return isinstance(obj, Optimizer)


def _is_scheduler(obj: Any) -> bool:
    return callable(getattr(obj, "step", None)) and hasattr(obj, "optimizer")


def _unknown_key(kind: str, key: str, known: Sequence[str]) -> MisconfigurationError:
    hint = difflib.get_close_matches(key, list(known), n=1)
    msg = f"configure_optimizers returned {kind} dict with the unknown key {key!r}"
    msg += f"; did you mean {hint[0]!r}?" if hint else "."
    return MisconfigurationError(f"{msg} Known keys: {', '.join(known)}")


def _scheduler_config(obj: Any, monitor: str | None) -> LRSchedulerConfig:
    if isinstance(obj, Mapping):
        for key in obj:
            if key not in _SCHEDULER_KEYS:
                raise _unknown_key("a scheduler", key, _SCHEDULER_KEYS)
        if "scheduler" not in obj:
            raise MisconfigurationError(
                'configure_optimizers returned an "lr_scheduler" dict without a "scheduler" '
                'key: write {"scheduler": MyScheduler(optimizer), "interval": "epoch"}'
            )
        config = LRSchedulerConfig(
            scheduler=obj["scheduler"],
            name=obj.get("name"),
            interval=obj.get("interval", "epoch"),
            frequency=obj.get("frequency", 1),
            monitor=obj.get("monitor", monitor),
            strict=obj.get("strict", True),
        )
    else:
        config = LRSchedulerConfig(scheduler=obj, monitor=monitor)
    if not _is_scheduler(config.scheduler):
        raise MisconfigurationError(
            f"configure_optimizers returned {type(config.scheduler).__name__} where a "
            "learning-rate scheduler belongs (an object with step() and an optimizer, "
            f"such as torch.optim.lr_scheduler.StepLR): {_FORMS}"
        )
    if config.interval not in ("epoch", "step"):
        raise MisconfigurationError(
            f'a scheduler\'s "interval" must be "epoch" or "step", got {config.interval!r}'
        )
    if (
        not isinstance(config.frequency, int)
        or isinstance(config.frequency, bool)
        or config.frequency < 1
    ):
        raise MisconfigurationError(
            f'a scheduler\'s "frequency" must be a positive int, got {config.frequency!r}'
        )
    config.reduce_on_plateau = isinstance(
        config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
    )
    return config


def _from_dict(obj: Mapping[str, Any]) -> tuple[Optimizer, LRSchedulerConfig | None]:
    for key in obj:
        if key not in _OPTIMIZER_KEYS:
            raise _unknown_key("an optimizer", key, _OPTIMIZER_KEYS)
    if "optimizer" not in obj or not _is_optimizer(obj["optimizer"]):
        raise MisconfigurationError(
            'configure_optimizers returned a dict without a torch optimizer under "optimizer": '
            + _FORMS
        )
    scheduler = obj.get("lr_scheduler")
    config = _scheduler_config(scheduler, obj.get("monitor")) if scheduler is not None else None
    return obj["optimizer"], config


def normalize_optimizers(
    result: Any, automatic: bool = True
) -> tuple[list[Optimizer], list[LRSchedulerConfig]]:
    """Turn ``configure_optimizers()``'s return value into ``(optimizers, schedulers)``.

    :param automatic: automatic optimization, where the trainer steps the schedulers, so a
        ``ReduceLROnPlateau`` needs a ``monitor``; in manual optimization the user steps it
        with the value of their choice.
    """
    optimizers: list[Optimizer] = []
    configs: list[LRSchedulerConfig] = []
    if result is None:
        pass
    elif _is_optimizer(result):
        optimizers = [result]
    elif isinstance(result, Mapping):
        opt, config = _from_dict(result)
        optimizers = [opt]
        configs = [config] if config else []
    elif isinstance(result, (list, tuple)):
        items = list(result)
        if (
            len(items) == 2
            and isinstance(items[0], (list, tuple))
            and isinstance(items[1], (list, tuple))
        ):
            optimizers = list(items[0])
            configs = [_scheduler_config(s, None) for s in items[1]]
        elif all(_is_optimizer(o) for o in items):
            optimizers = items
        elif all(isinstance(o, Mapping) for o in items):
            for item in items:
                opt, config = _from_dict(item)
                optimizers.append(opt)
                if config:
                    configs.append(config)
        else:
            raise MisconfigurationError(
                "configure_optimizers returned a list mixing "
                f"{', '.join(sorted({type(o).__name__ for o in items}))}: {_FORMS}"
            )
    else:
        raise MisconfigurationError(
            f"configure_optimizers returned {type(result).__name__}: {_FORMS}"
        )
    for opt in optimizers:
        if not _is_optimizer(opt):
            raise MisconfigurationError(
                f"configure_optimizers returned {type(opt).__name__} where a torch.optim "
                f"optimizer belongs: {_FORMS}"
            )
    for config in configs:
        if not any(config.scheduler.optimizer is opt for opt in optimizers):
            raise MisconfigurationError(
                f"the scheduler {type(config.scheduler).__name__} belongs to an optimizer that "
                "configure_optimizers did not return: return that optimizer too"
            )
        if automatic and config.reduce_on_plateau and not config.monitor:
            raise MisconfigurationError(
                "configure_optimizers returned a ReduceLROnPlateau scheduler without a metric "
                'to monitor: return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, '
                '"monitor": "val_loss"}}, or step it yourself in manual optimization'
            )
    return optimizers, configs
