"""Typed views of the trainer and the module, as lifecycle hooks receive them.

The hub cannot import ``ember.trainer`` (nor torch), so the hookspecs describe the objects
they pass by what a hook may rely on: these Protocols. ember's ``Trainer`` and
``EmberModule`` satisfy them (a test checks it), and a plugin can annotate its hook
implementations with them to get completion and type checking without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TrainerView(Protocol):
    """What a lifecycle hook may use of the running ``Trainer``."""

    #: set to ``True`` to stop training at the next opportunity (early stopping)
    should_stop: bool

    @property
    def current_epoch(self) -> int:
        """The epoch being run, from 0."""
        ...

    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far."""
        ...

    @property
    def max_epochs(self) -> int:
        """The epoch limit (-1 when only ``max_steps`` or ``max_time`` limits the run)."""
        ...

    @property
    def max_steps(self) -> int:
        """The step limit (-1 for none)."""
        ...

    @property
    def sanity_checking(self) -> bool:
        """Whether the validation sanity check is running."""
        ...

    @property
    def is_global_zero(self) -> bool:
        """Whether this process is rank 0 (the one that writes files)."""
        ...

    @property
    def default_root_dir(self) -> str:
        """The folder runs and checkpoints go under."""
        ...

    @property
    def callback_metrics(self) -> Mapping[str, Any]:
        """The latest value of every metric logged, as tensors, for callbacks to read."""
        ...

    @property
    def logged_metrics(self) -> Mapping[str, float]:
        """The metrics sent to the loggers at the last flush."""
        ...

    @property
    def callbacks(self) -> list[Any]:
        """The callbacks of this trainer, in the order their hooks run."""
        ...


@runtime_checkable
class ModuleView(Protocol):
    """What a lifecycle hook may use of the ``EmberModule`` being trained."""

    @property
    def current_epoch(self) -> int:
        """The trainer's current epoch (0 when not attached)."""
        ...

    @property
    def global_step(self) -> int:
        """The trainer's optimizer steps (0 when not attached)."""
        ...

    @property
    def hparams(self) -> Mapping[str, Any]:
        """The hyperparameters saved with ``save_hyperparameters()``."""
        ...

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """Record a metric, as ``self.log`` in a step does."""
        ...

    def log_dict(self, dictionary: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        """Record several metrics at once."""
        ...
