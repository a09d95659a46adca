"""The strategy contract: where the model runs, how it is wrapped, how processes start
and talk, and how checkpoints are written.

The user's module stays the module: its hooks, ``self.log`` and its methods are reached
directly. The steps (``training_step``, ``validation_step``, ...) run through the
*model*, the module wrapped by :meth:`Strategy.wrap_model` (``DistributedDataParallel``,
a sharded module, any ``nn.Module`` wrapper): a :class:`StepForward` redirects the
wrapper's ``forward`` to the step, as DDP needs to see every step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Protocol

import torch
from ember.trainer.errors import MisconfigurationError
from ember.trainer.plugins.accelerator import Accelerator
from ember.trainer.plugins.precision import Precision
from torch import Tensor, nn

#: the step methods a strategy runs through the wrapped model
STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step")


class StepForward(nn.Module):
    """The module as seen by a wrapper: ``forward`` calls the step named by :attr:`step`.

    A wrapper's ``forward`` (DDP's gradient-sync bookkeeping, FSDP's unsharding) thus
    runs around every step, while the module's own ``forward`` stays the user's.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        #: the step the next ``forward`` runs
        self.step = "training_step"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the module's current step."""
        return getattr(self.module, self.step)(*args, **kwargs)


class Launcher(Protocol):
    """Starts (or joins) the processes a strategy needs and runs an entry point in them."""

    def launch(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``function(*args, **kwargs)`` in every process; return rank zero's result."""
        ...


class Strategy:
    """One process on one device; the base of every strategy.

    Order of calls: :meth:`connect` (at ``Trainer(...)``), then per entry point
    :attr:`launcher` (if any) runs it, :meth:`setup_environment` (before any collective),
    :meth:`setup_module`, the loops (:meth:`step_function`, :meth:`process_dataloader`,
    :meth:`no_backward_sync`, the collectives), and :meth:`teardown`.
    """

    #: the provider name the class is registered under (the record's spelling)
    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.accelerator: Accelerator | None = None
        self.precision: Precision | None = None
        self.devices: list[torch.device] = []
        #: machines taking part (``Trainer(num_nodes=...)``), set before :meth:`connect`
        self.num_nodes = 1
        #: the user's module, converted and on the device (``None`` before set-up)
        self.module: nn.Module | None = None
        #: what the steps run through: :meth:`wrap_model` around a :class:`StepForward`
        self.model: nn.Module | None = None
        self._forward: StepForward | None = None
        self._environment_ready = False

    # ------------------------------------------------------------------ set-up
    def connect(
        self, accelerator: Accelerator, precision: Precision, devices: list[torch.device]
    ) -> None:
        """Attach the run's accelerator, precision mode and parsed devices."""
        self.accelerator = accelerator
        self.precision = precision
        self.devices = devices

    @property
    def launcher(self) -> Launcher | None:
        """What starts this strategy's processes (``None``: run in this process)."""
        return None

    def setup_environment(self) -> None:
        """Prepare the device (and, for distributed strategies, the process group). Runs
        before any collective (:meth:`barrier`, :meth:`broadcast`, ...)."""
        if self.accelerator is None or self.precision is None:
            raise RuntimeError(f"{type(self).__name__}.connect() was not called")
        self.accelerator.setup_device(self.root_device)
        self.precision.setup(self.root_device)
        self._environment_ready = True

    @property
    def environment_ready(self) -> bool:
        """Whether :meth:`setup_environment` has run (collectives are allowed)."""
        return self._environment_ready

    def model_to_device(self, module: nn.Module) -> nn.Module:
        """Move ``module`` to :attr:`root_device`."""
        return module.to(self.root_device)

    def setup_module(self, module: nn.Module) -> None:
        """Convert the module for the precision mode, place it, and wrap it: sets
        :attr:`module` (the user's module) and :attr:`model` (what steps run through)."""
        if self.precision is None:
            raise RuntimeError(f"{type(self).__name__}.connect() was not called")
        converted = self.model_to_device(self.precision.convert_module(module))
        if converted is not module:
            raise MisconfigurationError(
                f"{type(self).__name__} replaced the module while converting or placing it: "
                "convert_module and model_to_device must change the module in place and "
                "return it; wrap it in wrap_model instead"
            )
        self.module = module
        self._forward = StepForward(module)
        self.model = self.wrap_model(self._forward)

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Wrap ``model`` (a :class:`StepForward` around the module), e.g. in
        ``DistributedDataParallel``; return it unchanged to run steps directly."""
        return model

    def step_function(self, name: str) -> Callable[..., Any]:
        """The callable that runs the step ``name`` (``"training_step"``, ...): through the
        wrapped model's ``forward``, or the module's method when nothing wraps it."""
        if name not in STEP_METHODS:
            raise ValueError(f"unknown step {name!r}; one of {', '.join(STEP_METHODS)}")
        module, model, forward = self.module, self.model, self._forward
        if module is None or model is None or forward is None:
            raise RuntimeError(f"{type(self).__name__}.setup_module() was not called")
        if model is forward:
            return getattr(module, name)

        # the wrapper is read at each call, not kept: once teardown drops it, nothing here
        # holds a DistributedDataParallel (and its process group) alive
        def run(*args: Any, **kwargs: Any) -> Any:
            forward.step = name
            return self.model(*args, **kwargs)  # type: ignore[misc]

        return run

    @contextlib.contextmanager
    def no_backward_sync(self) -> Iterator[None]:
        """Entered around the forward and backward of a batch whose gradients are only
        accumulated (no optimizer step follows): skip the gradient all-reduce (DDP's
        ``no_sync``). Nothing to skip in one process."""
        yield

    def process_dataloader(self, dataloader: Any) -> Any:
        """Adapt a loader to this strategy (inject a ``DistributedSampler``); called for
        every loader the trainer loads."""
        return dataloader

    def batch_to_device(self, batch: Any) -> Any:
        """Copy ``batch`` to :attr:`root_device`."""
        if self.accelerator is None:
            raise RuntimeError(f"{type(self).__name__}.connect() was not called")
        return self.accelerator.batch_to_device(batch, self.root_device)

    # ------------------------------------------------------------------ ranks
    @property
    def root_device(self) -> torch.device:
        """The device this process computes on."""
        return self.devices[self.local_rank] if self.devices else torch.device("cpu")

    @property
    def global_rank(self) -> int:
        """This process's index among all processes."""
        return 0

    @property
    def local_rank(self) -> int:
        """This process's index on its machine."""
        return 0

    @property
    def node_rank(self) -> int:
        """This machine's index among the machines."""
        return 0

    @property
    def world_size(self) -> int:
        """How many processes take part."""
        return 1

    @property
    def is_global_zero(self) -> bool:
        """Whether this is the process that logs, prints and writes checkpoints."""
        return self.global_rank == 0

    # ------------------------------------------------------------------ collectives
    def reduce(self, tensor: Tensor, reduce_op: str = "mean") -> Tensor:
        """Combine ``tensor`` across processes (``"mean"``, ``"sum"``, ``"max"``, ``"min"``)."""
        return tensor

    def all_gather(self, tensor: Tensor, sync_grads: bool = False) -> Tensor:
        """``tensor`` from every process, stacked along a new first dimension; with
        ``sync_grads`` gradients flow back to each process's own part."""
        return tensor.unsqueeze(0)

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        """Agree on a flag across processes: every process (``all``) or any of them."""
        return decision

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Send ``obj`` from process ``src`` to all."""
        return obj

    def barrier(self, name: str | None = None) -> None:
        """Wait until every process gets here."""

    # ------------------------------------------------------------------ checkpoints
    def module_state_dict(self) -> dict[str, Any]:
        """The module's weights for a checkpoint (a sharded strategy gathers them)."""
        if self.module is None:
            raise RuntimeError(f"{type(self).__name__}.setup_module() was not called")
        return self.module.state_dict()

    def load_module_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        """Load weights saved by :meth:`module_state_dict` into the module; return torch's
        ``IncompatibleKeys`` (what a non-strict load left out)."""
        from ember.trainer.checkpoint import load_module_state

        if self.module is None:
            raise RuntimeError(f"{type(self).__name__}.setup_module() was not called")
        return load_module_state(self.module, state_dict, strict=strict)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """``optimizer``'s state for a checkpoint (a sharded strategy consolidates it)."""
        return optimizer.state_dict()

    def load_optimizer_state(
        self, optimizer: torch.optim.Optimizer, state: Mapping[str, Any]
    ) -> None:
        """Restore what :meth:`optimizer_state` returned."""
        optimizer.load_state_dict(dict(state))

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> bool:
        """Write ``checkpoint`` to ``path`` atomically; return whether this process wrote
        it (by default only global rank zero writes)."""
        from ember.trainer.checkpoint import save_checkpoint_atomic

        if not self.is_global_zero:
            return False
        save_checkpoint_atomic(checkpoint, path)
        return True

    def load_checkpoint(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read a checkpoint safely (no code in it runs); a torn file is a clear error."""
        from ember.trainer.checkpoint import load_checkpoint_safe

        return load_checkpoint_safe(path)

    # ------------------------------------------------------------------ the end
    def on_exception(self, error: BaseException) -> None:
        """The entry point raised ``error`` (before teardown). The other processes are no
        longer in step, so a distributed strategy issues no collective from here on."""

    def teardown(self) -> None:
        """Release what :meth:`setup_environment` and :meth:`setup_module` took."""
        self.model = self._forward = None
        self._environment_ready = False
        if self.accelerator is not None:
            self.accelerator.teardown()
