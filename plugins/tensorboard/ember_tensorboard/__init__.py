"""ember-tensorboard: ``Trainer(logger="tensorboard")``.

This module is what ember's plugin discovery imports: it registers the provider and
nothing else. TensorBoard itself is imported when a logger is built.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from typing import Any

from ember.hub import LoggerSpec, Option, hookimpl

__version__ = "0.1.0"


@hookimpl
def ember_loggers() -> Iterator[LoggerSpec]:
    """The ``tensorboard`` logger."""
    yield LoggerSpec(
        name="tensorboard",
        factory="ember_tensorboard.logger:TensorBoardLogger",
        description="Scalars, text, images and hyperparameters as TensorBoard event files.",
        options={
            "save_dir": Option(
                "path",
                None,
                "root of the TensorBoard folders (default: <run dir>/tensorboard); point "
                "`tensorboard --logdir` at it",
            ),
            "experiment_name": Option(
                "str",
                None,
                "sub-folder for this experiment (default: none when save_dir is "
                "not given, else 'ember')",
            ),
            "version": Option(
                "str",
                None,
                "sub-folder for this run under experiment_name (default: the ember run id)",
            ),
            "flush_secs": Option(
                "float",
                120.0,
                "periodic flush of the experiment object's SummaryWriter; ember's own events "
                "are flushed after every delivered batch, from the logger's thread",
            ),
            "log_graph": Option(
                "bool",
                False,
                "write the module's graph at the start of fit (needs example_input_array)",
            ),
            "default_hp_metric": Option(
                "bool",
                True,
                "declare an 'hp_metric' scalar (logged as -1 with the hyperparameters) so the "
                "HPARAMS tab lists the run, as Lightning does",
            ),
        },
    )


@hookimpl
def ember_on_fit_start(trainer: Any, module: Any) -> None:
    """``log_graph=True``: trace the module on the training thread (where it is safe to
    run it) and hand the graph to each such TensorBoard logger, where it delivers (its
    worker thread, or ember's delivery process)."""
    handles = [
        h
        for h in getattr(trainer, "loggers", ())
        if getattr(h.logger, "log_graph", False) and h.logger.name == "tensorboard"
    ]
    if not handles:
        return
    from ember_tensorboard.graph import module_graph
    from ember_tensorboard.logger import TensorBoardLogger

    graph = module_graph(module)
    if graph is None:
        return
    for handle in handles:
        try:
            handle.call_logger(functools.partial(TensorBoardLogger.queue_graph, graph_def=graph))
        except RuntimeError as exc:  # not delivering (offline, stopped): train on
            warnings.warn(
                f"ember-tensorboard: no graph was written ({exc})", UserWarning, stacklevel=2
            )
