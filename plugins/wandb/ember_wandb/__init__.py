"""ember-wandb: the ``wandb`` logger provider for ember.

This module is the entry point ember loads while discovering plugins, so it imports only
``ember.hub``: ``wandb`` itself is imported when a logger is built.
"""

from __future__ import annotations

from collections.abc import Iterator

from ember.hub import LoggerSpec, Option, hookimpl

__version__ = "0.1.0"

OPTIONS: dict[str, Option] = {
    "project": Option("str", description="W&B project (default: WANDB_PROJECT, else W&B's own)"),
    "entity": Option("str", description="W&B team or user (default: WANDB_ENTITY, else yours)"),
    "run_name": Option(
        "str", description="display name of the W&B run (default: ember's run name)"
    ),
    "id": Option(
        "str", description="W&B run id to resume (default: a new run, or the one being resumed)"
    ),
    "group": Option("str", description="group runs together (e.g. the workers of one sweep)"),
    "job_type": Option("str", description="kind of run, e.g. 'train' or 'eval'"),
    "tags": Option("list", description="list of tags for the W&B run"),
    "notes": Option("str", description="a longer description of the run"),
    "mode": Option(
        "str",
        description="'online', 'offline' (a local run file, `wandb sync` later) or "
        "'disabled'; default: WANDB_MODE, else online",
        choices=("online", "offline", "disabled"),
    ),
    "dir": Option(
        "path",
        description="where W&B writes its run files, caches and staged artifacts "
        "(default: the ember run directory); nothing goes to the home folder",
    ),
    "log_checkpoints": Option(
        "str",
        "none",
        "upload checkpoints as W&B model artifacts: 'none', 'best' or 'all' "
        "(aliases 'latest' and 'best')",
        choices=("none", "best", "all"),
    ),
}


@hookimpl
def ember_loggers() -> Iterator[LoggerSpec]:
    """Register the ``wandb`` logger."""
    yield LoggerSpec(
        name="wandb",
        factory="ember_wandb.logger:WandbLogger",
        description="Weights & Biases runs (online, offline run files, or disabled)",
        options=OPTIONS,
    )
