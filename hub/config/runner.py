"""Running a validated run file: seed, build the model, the data and the Trainer, then call
the entry point. ``ember.trainer`` (and so torch) is imported here, on call, never when
``ember.hub`` is imported."""

from __future__ import annotations

import os
import random
from typing import Any

from ember.hub.config.errors import ConfigError, ConfigIssue
from ember.hub.config.validation import RunConfig

ENTRY_POINTS: tuple[str, ...] = ("fit", "validate", "test", "predict")


def seed_everything(seed: int | bool) -> int:
    """Seed Python's, NumPy's (when installed) and torch's generators; ``True`` picks a
    seed. Returns the seed used."""
    import torch

    if seed is True:
        seed = random.SystemRandom().randrange(2**32)
    seed = int(seed)
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def apply_plugin_selection(config: RunConfig) -> None:
    """Make the run file's ``[plugins]`` block list the process's: the Trainer (and any
    process it launches) resolves providers through the process-wide manager."""
    if not config.block:
        return
    from ember.hub.manager import reset_plugin_manager

    current = [n for n in os.environ.get("EMBER_BLOCK_PLUGINS", "").split(",") if n.strip()]
    os.environ["EMBER_BLOCK_PLUGINS"] = ",".join(dict.fromkeys([*current, *config.block]))
    reset_plugin_manager()


def build(config: RunConfig) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Seed, then build ``(trainer, model, datamodule, loaders)``; an error raised while
    building is reported as a configuration error at the section that failed."""
    from ember.trainer import Trainer

    apply_plugin_selection(config)
    if config.seed is not None and config.seed is not False:
        used = seed_everything(config.seed)
        if config.seed is True:
            print(f"seed_everything: picked seed {used}")
    model = _build(config.model)
    datamodule = _build(config.data) if config.data is not None else None
    loaders = {key: _build(ref) for key, ref in config.loaders.items()}
    try:
        trainer = Trainer(**config.trainer_kwargs())
    except Exception as exc:
        raise ConfigError(
            [ConfigIssue("trainer", f"{type(exc).__name__}: {exc}")], source=config.source
        ) from exc
    return trainer, model, datamodule, loaders


def _build(ref: Any) -> Any:
    try:
        return ref.build()
    except Exception as exc:
        raise ConfigError(
            [ConfigIssue(ref.location, f"{ref.class_path}(...) raised {type(exc).__name__}: {exc}")]
        ) from exc


def run(entry: str, config: RunConfig, ckpt_path: str | None = None) -> Any:
    """Build everything and call ``trainer.<entry>``; returns what the entry point returns."""
    if entry not in ENTRY_POINTS:
        raise ValueError(f"unknown entry point {entry!r}; use one of {', '.join(ENTRY_POINTS)}")
    trainer, model, datamodule, loaders = build(config)
    if entry == "fit":
        trainer.fit(
            model,
            train_dataloaders=loaders.get("train"),
            val_dataloaders=loaders.get("val"),
            datamodule=datamodule,
            ckpt_path=ckpt_path,
        )
        return trainer
    if entry == "predict":
        return trainer.predict(
            model, dataloaders=loaders.get("predict"), datamodule=datamodule, ckpt_path=ckpt_path
        )
    method = getattr(trainer, entry)
    return method(
        model,
        dataloaders=loaders.get("val" if entry == "validate" else "test"),
        datamodule=datamodule,
        ckpt_path=ckpt_path,
    )
