"""One optimization path for automatic, closure (LBFGS) and manual optimization:
backward through the precision mode, unscale, ``on_before_optimizer_step``, clip, step,
zero the gradients, count the step and step the schedulers.

Every backward pass goes through :meth:`Precision.backward` (which calls the module's own
``backward``) and every step through :meth:`Precision.optimizer_step`, whether the
trainer, the module's ``optimizer_step`` or the user's ``optimizer.step()`` starts it;
the closure the precision mode receives unscales, fires ``on_before_optimizer_step`` and
clips, in that order, on every path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from ember.trainer.errors import MisconfigurationError, NonFiniteLossError, warn_user
from ember.trainer.flags import TrainerFlags
from ember.trainer.hooks import HookDispatcher
from ember.trainer.loops.progress import LoopProgress
from ember.trainer.loops.steps import step_caller
from ember.trainer.module import EmberModule, overrides
from ember.trainer.optim import LRSchedulerConfig, normalize_optimizers
from ember.trainer.plugins import Precision, Strategy, needs_closure
from ember.trainer.results import closest_metric
from torch import Tensor

#: losses kept for the non-finite check before one is forced (bounds memory when
#: ``log_every_n_steps`` is large)
LOSS_CHECK_MAX = 1024


class OptimizerHandle:
    """The optimizer as the module sees it: ``self.optimizers()`` in manual optimization,
    and the ``optimizer`` a module's ``optimizer_step`` receives. ``step()`` runs the
    trainer's optimization path (precision, hooks, clipping); everything else is the
    optimizer's own."""

    def __init__(self, optimizer: torch.optim.Optimizer, optimization: Optimization) -> None:
        self.optimizer = optimizer
        self._optimization = optimization

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # isinstance(handle, torch.optim.SGD) holds, as for the optimizer itself
        return type(self.optimizer)

    def __repr__(self) -> str:
        return f"OptimizerHandle({self.optimizer!r})"

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Step through the precision mode; gradients are unscaled, hooked and clipped
        first. In manual optimization the step counts toward ``global_step``."""
        return self._optimization.step(self.optimizer, closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients, firing ``on_before_zero_grad`` first (manual optimization)."""
        self._optimization.hooks.before_zero_grad(self.optimizer)
        self.optimizer.zero_grad(set_to_none=set_to_none)


class Optimization:
    """The optimizers of one fit and every step taken with them."""

    def __init__(
        self,
        flags: TrainerFlags,
        hooks: HookDispatcher,
        precision: Precision,
        strategy: Strategy,
        progress: LoopProgress,
        callback_metrics: Callable[[], Mapping[str, Tensor]],
    ) -> None:
        self.flags = flags
        self.hooks = hooks
        self.module: EmberModule = hooks.module
        self.precision = precision
        self.strategy = strategy
        self.progress = progress
        self._callback_metrics = callback_metrics
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler_configs: list[LRSchedulerConfig] = []
        self.handles: list[OptimizerHandle] = []
        self.automatic = self.module.automatic_optimization
        #: detached losses since the last non-finite check, and where each came from
        self.losses: list[Tensor] = []
        self.loss_steps: list[tuple[int, int]] = []
        # decided again by prepare() when the fit loop starts
        self.clip = False
        self.configure_clipping: Callable[..., Any] | None = None

    # ------------------------------------------------------------------ set-up
    def configure(self) -> None:
        """Call ``configure_optimizers`` and check what came back fits the mode."""
        module, flags = self.module, self.flags
        if not overrides(module, "configure_optimizers", EmberModule):
            module.configure_optimizers()  # raises the message that says what to write
        optimizers, configs = normalize_optimizers(
            module.configure_optimizers(), module.automatic_optimization
        )
        name = type(module).__name__
        if self.automatic:
            if not optimizers:
                raise MisconfigurationError(
                    f"{name}.configure_optimizers returned no optimizer, which automatic "
                    "optimization needs: return one (e.g. torch.optim.SGD(self.parameters(), "
                    "lr=0.1)), or set self.automatic_optimization = False"
                )
            if len(optimizers) > 1:
                raise MisconfigurationError(
                    f"{name}.configure_optimizers returned {len(optimizers)} optimizers, but "
                    "automatic optimization steps exactly one: set "
                    "self.automatic_optimization = False and step them in training_step "
                    "(self.optimizers(), self.manual_backward(loss)), or put all parameter "
                    "groups in one optimizer"
                )
        else:
            if flags.accumulate_grad_batches > 1:
                raise MisconfigurationError(
                    f"accumulate_grad_batches={flags.accumulate_grad_batches} only applies to "
                    "automatic optimization: remove it, and accumulate in training_step by "
                    "stepping every N batches"
                )
            if flags.gradient_clip_val:
                raise MisconfigurationError(
                    "Trainer(gradient_clip_val=...) only applies to automatic optimization: "
                    "remove it, and call self.clip_gradients(optimizer, gradient_clip_val=...) "
                    "in training_step before optimizer.step()"
                )
        _check_parameters(module, optimizers)
        self.optimizers = optimizers
        self.lr_scheduler_configs = configs
        self.handles = [OptimizerHandle(o, self) for o in optimizers]

    def prepare(self) -> None:
        """Decide once what every step would otherwise decide again."""
        flags, hooks = self.flags, self.hooks
        mh = hooks.module_hooks
        self.optimizer = self.optimizers[0] if self.optimizers else None
        self.handle = self.handles[0] if self.handles else None
        if self.automatic and self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        self.accumulate = flags.accumulate_grad_batches
        self.closure_required = self.optimizer is not None and needs_closure(self.optimizer)
        if self.closure_required and self.accumulate > 1:
            raise MisconfigurationError(
                f"{type(self.optimizer).__name__} re-evaluates the loss through a closure, "
                "which cannot be combined with accumulate_grad_batches > 1: set "
                "accumulate_grad_batches=1"
            )
        self.clip = bool(flags.gradient_clip_val)
        self.configure_clipping = mh.configure_gradient_clipping
        self.step_schedulers = [c for c in self.lr_scheduler_configs if c.interval == "step"]
        precision = self.precision
        self.forward_context = precision.forward_context if precision.has_forward_context else None
        self.training_step = step_caller(
            self.strategy.step_function("training_step"), self.hooks.module.training_step
        )
        self.module_optimizer_step = mh.optimizer_step
        self.module_zero_grad = mh.optimizer_zero_grad
        self.losses.clear()
        self.loss_steps.clear()

    def module_optimizers(self) -> list[Any]:
        """What ``module.optimizers()`` returns: handles in manual optimization."""
        return list(self.handles) if not self.automatic else list(self.optimizers)

    # ------------------------------------------------------------------ one batch
    def run_batch(self, batch: Any, batch_idx: int, is_last: bool) -> Any:
        """Forward, backward and (when due) the optimizer step for one training batch;
        returns what ``training_step`` returned."""
        if not self.automatic:
            out = self._forward(batch, batch_idx)
            if out is not None and not isinstance(out, (Tensor, Mapping)):
                raise MisconfigurationError(
                    f"training_step returned {type(out).__name__}: in manual optimization "
                    "return None, a tensor or a dict"
                )
            return out
        if self.closure_required:
            return self._closure_batch(batch, batch_idx)
        stepping = self.accumulate == 1 or is_last or (batch_idx + 1) % self.accumulate == 0
        if stepping:
            out = self._forward_backward(batch, batch_idx)
        else:
            # only accumulating: a distributed strategy skips the gradient all-reduce
            with self.strategy.no_backward_sync():
                out = self._forward_backward(batch, batch_idx)
        loss = out[1]
        if loss is not None and stepping:
            self._automatic_step(batch_idx, lambda: loss)
        return out[0]

    def _forward(self, batch: Any, batch_idx: int) -> Any:
        if self.forward_context is None:
            return self.training_step(batch, batch_idx)
        with self.forward_context():
            return self.training_step(batch, batch_idx)

    def _forward_backward(self, batch: Any, batch_idx: int) -> tuple[Any, Tensor | None]:
        out = self._forward(batch, batch_idx)
        loss = loss_of(out)
        if loss is not None:
            self.watch_loss(loss, batch_idx)
            self.backward(loss / self.accumulate if self.accumulate > 1 else loss)
            self.check_losses_if_due()
        return out, loss

    def _closure_batch(self, batch: Any, batch_idx: int) -> Any:
        """An optimizer that re-evaluates the loss (LBFGS): forward and backward run
        inside the closure, as often as the optimizer asks."""
        optimizer = self.optimizer
        assert optimizer is not None
        last: list[Any] = [None]

        def closure() -> Tensor | None:
            out = self._forward(batch, batch_idx)
            last[0] = out
            loss = loss_of(out)
            if loss is None:
                return None
            optimizer.zero_grad(set_to_none=True)
            self.watch_loss(loss, batch_idx)
            self.backward(loss)
            self.check_losses_if_due()
            return loss

        self._step_module(batch_idx, closure)
        if last[0] is not None:
            self._after_step(batch_idx)
        return last[0]

    def _automatic_step(self, batch_idx: int, closure: Callable[[], Any]) -> None:
        self._step_module(batch_idx, closure)
        self._after_step(batch_idx)

    def _step_module(self, batch_idx: int, closure: Callable[[], Any]) -> None:
        """The module's ``optimizer_step`` (given the handle, so that its
        ``optimizer.step(closure)`` runs this path), or the step itself."""
        if self.module_optimizer_step is not None:
            self.module_optimizer_step(self.progress.current_epoch, batch_idx, self.handle, closure)
        else:
            self.step(self.optimizer, closure)  # type: ignore[arg-type]

    def _after_step(self, batch_idx: int) -> None:
        """Zero the gradients, count the step and step the per-step schedulers."""
        optimizer = self.optimizer
        assert optimizer is not None
        self.hooks.before_zero_grad(optimizer)
        if self.module_zero_grad is not None:
            self.module_zero_grad(self.progress.current_epoch, batch_idx, optimizer)
        else:
            optimizer.zero_grad(set_to_none=True)
        self.progress.global_step += 1
        if self.step_schedulers:
            self.update_schedulers("step")

    # ------------------------------------------------------------------ the shared path
    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """``on_before_backward``, the precision mode's backward (through the module's
        ``backward``), ``on_after_backward``."""
        if not loss.requires_grad or loss.numel() != 1:
            raise MisconfigurationError(self._unusable_loss(loss))
        hooks = self.hooks
        hooks.before_backward(loss)
        self.precision.backward(loss, self.module, *args, **kwargs)
        hooks.after_backward()

    def _unusable_loss(self, loss: Tensor) -> str:
        """Why backward cannot run from ``loss`` (torch's own error names neither the step
        nor the cause)."""
        where = "training_step's loss" if self.automatic else "the loss given to manual_backward"
        if loss.numel() != 1:
            return (
                f"{where} has shape {tuple(loss.shape)}, but backward needs a single number: "
                "reduce it, e.g. loss.mean() or loss.sum() (F.cross_entropy and the other "
                "losses do so unless reduction='none')"
            )
        frozen = not any(p.requires_grad for p in self.module.parameters())
        cause = (
            f"every parameter of {type(self.module).__name__} has requires_grad=False (frozen): "
            "unfreeze the ones to train"
            if frozen
            else "it was detached from the graph: look for .detach(), .item() or .data, "
            "a torch.no_grad() or torch.inference_mode() block around the forward pass, or a "
            "new tensor built from values (torch.tensor(loss))"
        )
        return f"{where} does not require grad, so backward cannot train anything: {cause}"

    def manual_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """``module.manual_backward``: only in manual optimization. The loss joins the
        non-finite check, as an automatic one does."""
        if self.automatic:
            raise MisconfigurationError(
                "manual_backward is for manual optimization: set "
                "self.automatic_optimization = False in __init__, or return the loss from "
                "training_step and let the trainer call backward"
            )
        # checked as automatic losses are: at flushes, and before any checkpoint is saved
        self.watch_loss(loss, self.progress.batch_idx)
        self.backward(loss, *args, **kwargs)
        self.check_losses_if_due()

    def step(self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any] | None) -> Any:
        """Step ``optimizer`` through the precision mode. The closure it receives runs
        ``closure`` (if any), unscales, fires ``on_before_optimizer_step`` and clips."""

        def prepared() -> Any:
            result = closure() if closure is not None else None
            self.precision.unscale_gradients(optimizer)
            self.hooks.before_optimizer_step(optimizer)
            if self.automatic and self.clip:
                if self.configure_clipping is not None:
                    self.configure_clipping(
                        optimizer, self.flags.gradient_clip_val, self.flags.gradient_clip_algorithm
                    )
                else:
                    self.clip_gradients(optimizer)
            return result

        result = self.precision.optimizer_step(optimizer, prepared)
        if not self.automatic:
            self.progress.global_step += 1
        return result

    def clip_gradients(
        self,
        optimizer: Any,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip ``optimizer``'s gradients (unscaled first); the flags fill what is missing."""
        flags = self.flags
        value = flags.gradient_clip_val if gradient_clip_val is None else gradient_clip_val
        algorithm = (
            flags.gradient_clip_algorithm
            if gradient_clip_algorithm is None
            else gradient_clip_algorithm
        )
        if not value:
            return
        optimizer = getattr(optimizer, "optimizer", optimizer)
        self.precision.unscale_gradients(optimizer)
        self.precision.clip_gradients(optimizer, value, algorithm)

    # ------------------------------------------------------------------ schedulers
    def update_schedulers(self, interval: str) -> None:
        """Step the schedulers of ``interval`` that are due (plateau ones with their metric)."""
        if not self.automatic:
            return
        progress = self.progress
        counter = progress.global_step if interval == "step" else progress.current_epoch + 1
        configs = self.step_schedulers if interval == "step" else self.lr_scheduler_configs
        step_hook = self.hooks.module_hooks.lr_scheduler_step
        for config in configs:
            if config.interval != interval or counter % config.frequency:
                continue
            metric = None
            if config.reduce_on_plateau:
                metrics = self._callback_metrics()
                metric = metrics.get(config.monitor)  # type: ignore[arg-type]
                if metric is None:
                    if config.strict:
                        raise MisconfigurationError(
                            f"ReduceLROnPlateau monitors {config.monitor!r}, which was not "
                            f"logged.{closest_metric(config.monitor or '', metrics)} Available "
                            f"metrics: {', '.join(sorted(metrics)) or 'none'}. Log it with "
                            f'self.log({config.monitor!r}, ...), or set "strict": False in the '
                            "lr_scheduler dict to skip steps where it is missing"
                        )
                    continue
            if step_hook is not None:
                step_hook(config.scheduler, metric)
            elif metric is None:
                config.scheduler.step()
            else:
                config.scheduler.step(metric)

    # ------------------------------------------------------------------ non-finite losses
    def watch_loss(self, loss: Tensor, batch_idx: int) -> None:
        """Keep ``loss`` for the next non-finite check (read with the metrics)."""
        self.losses.append(loss.detach())
        self.loss_steps.append((batch_idx, self.progress.global_step))

    def check_losses_if_due(self) -> None:
        """Check now under ``detect_anomaly`` or when many losses are kept; otherwise the
        check waits for the next metric flush (no device sync per step)."""
        if self.flags.detect_anomaly or len(self.losses) >= LOSS_CHECK_MAX:
            self.check_losses([float(v) for v in self.loss_check()])

    def loss_check(self) -> list[Tensor]:
        """A tensor that is 1 when every kept loss is finite (read with the metrics)."""
        if not self.losses:
            return []
        finite = torch.isfinite(torch.stack(self.losses)).all()
        if self.strategy.world_size > 1:
            # every process stops on a non-finite loss of any, instead of one raising alone
            finite = self.strategy.reduce(finite.float(), "min")
        return [finite]

    def check_losses(self, flags: list[float]) -> None:
        """Raise :class:`NonFiniteLossError` naming the first bad loss, if a flag says so."""
        if flags and not flags[0]:
            finite = torch.isfinite(torch.stack(self.losses)).tolist()
            for ok, (batch_idx, step), loss in zip(
                finite, self.loss_steps, self.losses, strict=True
            ):
                if not ok:
                    raise NonFiniteLossError(self._nonfinite_message(float(loss), batch_idx, step))
            raise NonFiniteLossError(
                "training_step returned a non-finite loss in another process (its error "
                "names the batch); every process stops"
            )
        self.losses.clear()
        self.loss_steps.clear()

    def check_before_save(self, path: str | os.PathLike[str], collective: bool) -> None:
        """Run the pending non-finite check now (one host read), so that no checkpoint is
        written from a state whose loss was NaN or infinite; the check is otherwise batched
        at metric flushes, which a step-, time- or user-triggered save can precede.

        :param collective: agree with the other processes (every process saves together);
            ``False`` while handling an exception, when the others may not be saving.
        """
        if not self.losses:
            return
        if collective:
            flags = [float(v) for v in self.loss_check()]
        else:
            flags = [float(torch.isfinite(torch.stack(self.losses)).all())]
        try:
            self.check_losses(flags)
        except NonFiniteLossError as exc:
            raise NonFiniteLossError(
                f"{str(exc).rstrip('.')}. The loss was not finite, so the weights may be too: "
                f"no checkpoint was written to {os.fspath(path)}, and the checkpoints saved "
                "before it are intact (resume from one of them with a lower learning rate or "
                "cleaned data)"
            ) from None

    def _nonfinite_message(self, value: float, batch_idx: int, step: int) -> str:
        source = "training_step returned" if self.automatic else "manual_backward was given"
        msg = (
            f"{source} a loss of {value} at epoch {self.progress.current_epoch}, "
            f"batch {batch_idx} (global step {step}). Look for a too-high learning rate, bad "
            "inputs, or a log/division of zero"
        )
        if self.flags.detect_anomaly:
            return msg + "."
        return (
            msg + "; Trainer(detect_anomaly=True) makes torch name the operation that produced it."
        )


def _check_parameters(module: EmberModule, optimizers: list[torch.optim.Optimizer]) -> None:
    """An optimizer over tensors that are not the module's steps something else: none of
    them is an error (nothing of the module would train), some of them a warning (they
    are neither saved in checkpoints nor moved with the module). One over frozen
    parameters only is a warning (a fine-tuning callback may unfreeze them later)."""
    own = {id(p) for p in module.parameters()}
    for optimizer in optimizers:
        tensors = [p for group in optimizer.param_groups for p in group["params"]]
        what = f"{type(optimizer).__name__} from {type(module).__name__}.configure_optimizers"
        if tensors and not any(p.requires_grad for p in tensors):
            warn_user(
                f"{what} steps only parameters with requires_grad=False (frozen), so it "
                "changes nothing until a callback unfreezes them: give it the trainable "
                "parameters (e.g. [p for p in self.parameters() if p.requires_grad])"
            )
        foreign = [p for p in tensors if id(p) not in own]
        if not foreign:
            continue
        if len(foreign) == len(tensors):
            raise MisconfigurationError(
                f"{what} steps {len(tensors)} tensor(s), none of which is a parameter of "
                f"{type(module).__name__}, so training would change nothing of it: build the "
                "optimizer from self.parameters() (e.g. torch.optim.SGD(self.parameters(), "
                "lr=0.1)), and create submodules in __init__ as attributes of the module"
            )
        shapes = ", ".join(str(tuple(p.shape)) for p in foreign[:3])
        warn_user(
            f"{what} steps {len(foreign)} of its {len(tensors)} tensor(s) that are not "
            f"parameters of {type(module).__name__} (shapes {shapes}"
            f"{', ...' if len(foreign) > 3 else ''}): they are not saved in checkpoints nor "
            "moved to the device with the module. Register them as module attributes "
            "(torch.nn.Parameter, or inside a submodule)"
        )


def loss_of(out: Any) -> Tensor | None:
    """The loss in what ``training_step`` returned (a tensor, ``{"loss": ...}`` or None)."""
    if isinstance(out, Tensor):
        return out
    if out is None:
        return None
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise MisconfigurationError(
                "training_step returned a dict without a 'loss' key (keys: "
                f"{', '.join(map(repr, out))}): add the loss under 'loss'"
            )
        loss = out["loss"]
        if not isinstance(loss, Tensor) and loss is not None:
            raise MisconfigurationError(
                f"training_step returned {{'loss': {type(loss).__name__}}}: the loss must be "
                "the tensor the step computed (not loss.item() or a number), so that backward "
                "can run from it"
            )
        return loss
    raise MisconfigurationError(
        f"training_step returned {type(out).__name__}: return the loss tensor, a dict "
        "with a 'loss' key, or None to skip the optimizer step"
    )
