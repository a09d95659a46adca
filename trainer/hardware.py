"""The resolved hardware of a trainer: accelerator, precision mode and strategy, built by
name (or mapping, or instance) through the hub's registry and connected once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from ember.hub import PluginManager
from ember.trainer.distributed.environments import is_slurm
from ember.trainer.errors import MisconfigurationError
from ember.trainer.plugins import Accelerator, Precision, Strategy


def _is_auto(value: Any) -> bool:
    name = value.get("name", "") if isinstance(value, Mapping) else value
    return isinstance(name, str) and name.strip().lower() == "auto"


def _with_name(value: Any, name: str) -> Any:
    return {**value, "name": name} if isinstance(value, Mapping) else name


def auto_accelerator(plugins: PluginManager) -> str:
    """The name ``accelerator="auto"`` picks: the installed accelerator with the highest
    ``auto_priority`` (declared on its record) whose hardware is present, else the CPU.

    Candidates are tried from the highest priority down and the first available one wins,
    so an accelerator ranked below it (or at the CPU's 0) is never imported.
    """
    ranked = sorted(
        (
            (spec.auto_priority, name, spec)
            for name, spec in plugins.providers("accelerator").items()
            if getattr(spec, "auto_priority", 0) > 0
        ),
        key=lambda item: (-item[0], item[1]),
    )
    for _, name, spec in ranked:
        try:
            cls = spec.load()
        except ImportError:  # a plugin whose dependencies are missing cannot be "auto"
            continue
        if getattr(cls, "is_available", lambda: False)():
            return name
    return "cpu"


def _launched_distributed() -> bool:
    """Whether torchrun started this process as one of several, or SLURM as a task
    (``strategy="auto"`` then takes DDP, which joins them and requeues under SLURM)."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and "LOCAL_RANK" in os.environ:
        return True
    return is_slurm()


def build_provider(plugins: PluginManager, kind: str, value: Any, base: type) -> Any:
    """An accelerator, precision mode or strategy from a name, a ``{"name": ...}`` mapping
    or an instance (an unknown name lists what is installed)."""
    if isinstance(value, base):
        return value
    if not isinstance(value, (str, Mapping)):
        ints = "an int 16, 32 or 64, " if kind == "precision" else ""
        article = "an" if base.__name__[0] in "AEIOU" else "a"
        example = "'32-true'" if kind == "precision" else "'auto'"
        raise MisconfigurationError(
            f"{kind}={value!r} ({type(value).__name__}): pass a name (e.g. {kind}={example}; "
            f"installed: {', '.join(sorted(plugins.providers(kind)))}), {ints}a mapping "
            f"{{'name': ..., **options}}, or {article} {base.__name__} instance"
        )
    built = plugins.create(kind, value)
    if not isinstance(built, base):
        raise MisconfigurationError(
            f"the {kind} provider {value!r} built a {type(built).__name__}, which is not "
            f"an ember {base.__name__}: its factory must return a {base.__name__} subclass"
        )
    return built


@dataclass(frozen=True)
class Hardware:
    """What the run computes on: the three providers and the parsed devices."""

    accelerator: Accelerator
    precision: Precision
    strategy: Strategy
    devices: list[torch.device]

    @classmethod
    def resolve(
        cls,
        plugins: PluginManager,
        accelerator: Any,
        strategy: Any,
        devices: Any,
        precision: Any,
        num_nodes: int = 1,
    ) -> Hardware:
        """Build and connect the providers ``Trainer(...)`` names."""
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise MisconfigurationError(
                f"num_nodes must be an int >= 1 (the machines taking part); got {num_nodes!r}"
            )
        if _is_auto(accelerator):
            accelerator = _with_name(accelerator, auto_accelerator(plugins))
        built_accelerator = build_provider(plugins, "accelerator", accelerator, Accelerator)
        parsed = built_accelerator.parse_devices(devices)
        if isinstance(precision, int) and not isinstance(precision, bool):
            precision = str(precision)
        built_precision = build_provider(plugins, "precision", precision, Precision)
        if _is_auto(strategy):
            solo = len(parsed) == 1 and num_nodes == 1 and not _launched_distributed()
            strategy = _with_name(strategy, "single_device" if solo else "ddp")
        built_strategy = build_provider(plugins, "strategy", strategy, Strategy)
        built_strategy.num_nodes = num_nodes
        built_strategy.connect(built_accelerator, built_precision, parsed)
        return cls(built_accelerator, built_precision, built_strategy, parsed)


def make_batch_transfer(module_hooks: Any, hardware: Hardware) -> Any:
    """The function that moves a batch to the device (the module's transfer hooks around
    the strategy's copy, then the precision mode's cast), or ``None`` when nothing would
    (CPU without transfer hooks): the loops then skip the call."""
    before = module_hooks.on_before_batch_transfer
    custom = module_hooks.transfer_batch_to_device
    after = module_hooks.on_after_batch_transfer
    moves = hardware.accelerator.moves_batches
    precision = hardware.precision
    convert = precision.convert_input if precision.converts_input else None
    if not (before or custom or after or moves or convert):
        return None
    strategy = hardware.strategy
    device = strategy.root_device

    def transfer(batch: Any, dataloader_idx: int) -> Any:
        if before is not None:
            batch = before(batch, dataloader_idx)
        if custom is not None:
            batch = custom(batch, device, dataloader_idx)
        elif moves:
            batch = strategy.batch_to_device(batch)
        if after is not None:
            batch = after(batch, dataloader_idx)
        if convert is not None:
            batch = convert(batch)
        return batch

    return transfer
