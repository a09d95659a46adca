"""Watch gradient norms, per parameter and in total, without slowing the training loop."""

from __future__ import annotations

import math
from typing import Any

import torch
from ember.trainer.callback import Callback


class GradientNormMonitor(Callback):
    """Log gradient norms just before each logged optimizer step.

    Keys follow Lightning's ``grad_norm`` utility: ``grad_2.0_norm/<parameter name>`` per
    parameter tensor and ``grad_2.0_norm_total`` over all of them (the norm
    ``torch.nn.utils.clip_grad_norm_`` would clip). With several optimizers, each
    optimizer's total gets its index appended (``grad_2.0_norm_total/1``).

    Norms are computed only on logging steps, on the device, stacked into one tensor and
    brought to the host in a single transfer; other steps cost one modulo. Under mixed
    precision the gradients are already unscaled when this runs.

    :param norm_type: the p of the p-norm: a positive number, or ``"inf"`` for the largest
        absolute value.
    :param every_n_steps: log every this many optimizer steps; by default the trainer's
        ``log_every_n_steps``.
    :param per_layer: also log one norm per parameter tensor; ``False`` logs the totals
        only (cheaper to store for very large models).
    """

    def __init__(
        self,
        norm_type: float | str = 2.0,
        every_n_steps: int | None = None,
        per_layer: bool = True,
    ) -> None:
        try:
            p = float(norm_type)
        except (TypeError, ValueError):
            p = math.nan
        if not p > 0:
            raise ValueError(
                "GradientNormMonitor(norm_type=...) must be a positive number or 'inf', "
                f"got {norm_type!r}"
            )
        if every_n_steps is not None and (not isinstance(every_n_steps, int) or every_n_steps < 1):
            raise ValueError(
                f"GradientNormMonitor(every_n_steps=...) must be a positive integer or None, "
                f"got {every_n_steps!r}"
            )
        self.norm_type = p
        self.every_n_steps = every_n_steps
        self.per_layer = per_layer
        #: the norms of the last logging step, as published
        self.last_norms: dict[str, float] = {}

    def on_before_optimizer_step(self, trainer: Any, module: Any, optimizer: Any) -> None:
        every = self.every_n_steps or trainer.log_every_n_steps
        if not every or trainer.global_step % every != 0:  # log_every_n_steps=0: off
            return
        names = {id(p): n for n, p in module.named_parameters()}
        named_grads = [
            (names.get(id(p), f"param{i}"), p.grad.detach())
            for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"])
            if p.grad is not None
        ]
        if not named_grads:
            return
        device = named_grads[0][1].device
        norms = torch.stack(
            [
                torch.linalg.vector_norm(g, self.norm_type, dtype=torch.float32).to(device)
                for _, g in named_grads
            ]
        )
        total = torch.linalg.vector_norm(norms, self.norm_type)
        values = torch.cat([norms, total.unsqueeze(0)]).tolist()  # the one host transfer
        prefix = f"grad_{self.norm_type}_norm"
        total_key = f"{prefix}_total"
        if len(trainer.optimizers) > 1:
            idx = next(i for i, opt in enumerate(trainer.optimizers) if opt is optimizer)
            total_key += f"/{idx}"
        metrics = {total_key: values[-1]}
        if self.per_layer:
            metrics.update(
                {f"{prefix}/{name}": v for (name, _), v in zip(named_grads, values, strict=False)}
            )
        self.last_norms = metrics
        trainer.log_metrics(metrics)
