"""Print a table of the model's layers and parameter counts when training starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ember.trainer.callback import Callback
from torch import nn
from torch.nn.parameter import UninitializedParameter

_UNITS = ("", " K", " M", " B", " T")


def human_count(n: int) -> str:
    """``123`` -> ``"123"``, ``1234`` -> ``"1.2 K"``, ``2_500_000`` -> ``"2.5 M"``."""
    value = float(n)
    unit = 0
    while abs(value) >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    return str(n) if unit == 0 else f"{value:.1f}{_UNITS[unit]}"


@dataclass(frozen=True)
class LayerSummary:
    """One row of the summary: a submodule and the parameters it holds (recursively)."""

    name: str
    type: str
    params: int
    trainable: int


@dataclass(frozen=True)
class Summary:
    """The layers of a model and its totals; ``str(summary)`` is the printed table.

    Totals count each parameter once even when layers share it; a lazy parameter not yet
    materialised counts as 0.
    """

    layers: tuple[LayerSummary, ...]
    total_params: int
    trainable_params: int
    size_bytes: int

    @property
    def non_trainable_params(self) -> int:
        """Parameters that do not require gradients (frozen)."""
        return self.total_params - self.trainable_params

    @property
    def size_mb(self) -> float:
        """Memory the parameters take, in megabytes (10^6 bytes), at their actual dtypes."""
        return self.size_bytes / 1e6

    def __str__(self) -> str:
        lines: list[str] = []
        if self.layers:
            header = ("", "Name", "Type", "Params", "Trainable")
            rows = [
                (
                    str(i),
                    layer.name,
                    layer.type,
                    human_count(layer.params),
                    human_count(layer.trainable),
                )
                for i, layer in enumerate(self.layers)
            ]
            widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]

            def fmt(row: tuple[str, ...]) -> str:
                return " | ".join(
                    cell.ljust(w) for cell, w in zip(row, widths, strict=True)
                ).rstrip()

            rule = "-" * len(fmt(tuple("x" * w for w in widths)))
            lines += [fmt(header), rule, *(fmt(r) for r in rows), rule]
        totals = [
            (human_count(self.trainable_params), "Trainable params"),
            (human_count(self.non_trainable_params), "Non-trainable params"),
            (human_count(self.total_params), "Total params"),
            (f"{self.size_mb:.3f}", "Total estimated model params size (MB)"),
        ]
        width = max(len(v) for v, _ in totals)
        lines += [f"{v.ljust(width)}  {label}" for v, label in totals]
        return "\n".join(lines)


def _count(params: list[nn.Parameter]) -> tuple[int, int, int]:
    """(total, trainable, bytes) over unique, materialised parameters."""
    seen: set[int] = set()
    total = trainable = size = 0
    for p in params:
        if id(p) in seen or isinstance(p, UninitializedParameter):
            continue
        seen.add(id(p))
        n = p.numel()
        total += n
        size += n * p.element_size()
        if p.requires_grad:
            trainable += n
    return total, trainable, size


def summarize(module: nn.Module, max_depth: int = 1) -> Summary:
    """Summarise ``module``: its submodules down to ``max_depth`` levels (-1: all levels,
    0: totals only) and its parameter totals."""
    if max_depth < -1:
        raise ValueError(f"max_depth must be -1 (all levels) or >= 0, got {max_depth}")
    layers = []
    for name, sub in module.named_modules():
        depth = name.count(".") + 1
        if not name or (max_depth != -1 and depth > max_depth):
            continue
        total, trainable, _ = _count(list(sub.parameters()))
        layers.append(LayerSummary(name, type(sub).__name__, total, trainable))
    total, trainable, size = _count(list(module.parameters()))
    return Summary(tuple(layers), total, trainable, size)


class ModelSummary(Callback):
    """Print the model's layers, their parameter counts and the totals when ``fit`` starts.

    :param max_depth: how many levels of submodules to list: 1 for the direct children,
        -1 for every level, 0 to print nothing.
    """

    role: ClassVar[str | None] = "model_summary"

    def __init__(self, max_depth: int = 1) -> None:
        if not isinstance(max_depth, int) or max_depth < -1:
            raise ValueError(
                f"ModelSummary(max_depth=...) must be -1 (all levels) or an integer >= 0, "
                f"got {max_depth!r}"
            )
        self.max_depth = max_depth

    def on_fit_start(self, trainer: Any, module: Any) -> None:
        if self.max_depth == 0:
            return
        trainer.print(str(summarize(module, self.max_depth)))
