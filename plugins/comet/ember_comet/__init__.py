"""ember-comet: the ``comet`` logger provider for ember.

This module is the entry point ember loads while discovering plugins, so it imports only
``ember.hub``: ``comet_ml`` itself is imported when a logger opens.
"""

from __future__ import annotations

from collections.abc import Iterator

from ember.hub import LoggerSpec, Option, hookimpl

__version__ = "0.1.0"

OPTIONS: dict[str, Option] = {
    "project_name": Option("str", description="Comet project (default: COMET_PROJECT_NAME)"),
    "workspace": Option("str", description="Comet workspace (default: COMET_WORKSPACE)"),
    "experiment_key": Option(
        "str",
        description="key of an experiment to continue (default: a new one, or the one "
        "being resumed)",
    ),
    "online": Option(
        "bool",
        description="send to Comet (true) or write an offline archive (false); default: "
        "online when COMET_API_KEY is set",
    ),
    "offline_directory": Option(
        "path", description="where offline archives go (default: <run dir>/comet)"
    ),
    "experiment_name": Option("str", description="display name (default: ember's run name)"),
    "tags": Option("list", description="list of tags for the experiment"),
    "log_checkpoints": Option(
        "str",
        "none",
        "upload checkpoints as Comet model files: 'none', 'best' or 'all'",
        choices=("none", "best", "all"),
    ),
    "auto_log": Option(
        "bool",
        False,
        "turn on Comet's own auto-logging, environment details and error tracking (they "
        "reach the network even offline)",
    ),
}


@hookimpl
def ember_loggers() -> Iterator[LoggerSpec]:
    """Register the ``comet`` logger."""
    yield LoggerSpec(
        name="comet",
        factory="ember_comet.logger:CometLogger",
        description="Comet experiments (online, or offline archives to upload later)",
        options=OPTIONS,
    )
