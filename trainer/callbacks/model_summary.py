"""Print a table of the model's layers and parameter counts when training starts (with
each layer's input and output sizes when the model has an ``example_input_array``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from ember.trainer.callback import Callback
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter

_UNITS = ("", " K", " M", " B", " T")
#: the size shown for a layer that the example input did not reach, or a non-tensor value
UNKNOWN_SIZE = "?"


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
    #: input and output sizes seen when ``example_input_array`` went through the model
    in_size: Any = UNKNOWN_SIZE
    out_size: Any = UNKNOWN_SIZE


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
    #: whether the sizes come from an example input (adds the size columns)
    with_sizes: bool = False

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
            header: tuple[str, ...] = ("", "Name", "Type", "Params", "Trainable")
            if self.with_sizes:
                header += ("In sizes", "Out sizes")
            rows = [
                (
                    str(i),
                    layer.name,
                    layer.type,
                    human_count(layer.params),
                    human_count(layer.trainable),
                )
                + ((str(layer.in_size), str(layer.out_size)) if self.with_sizes else ())
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


def size_of(value: Any) -> Any:
    """A tensor's shape as a list; a list of them for a tuple or list; ``"?"`` otherwise."""
    if isinstance(value, Tensor):
        return list(value.shape)
    if isinstance(value, (list, tuple)):
        return [size_of(v) for v in value]
    return UNKNOWN_SIZE


def _record_sizes(module: nn.Module, layers: dict[str, nn.Module], example: Any) -> dict[str, Any]:
    """Run ``example`` through ``module`` (eval mode, no gradients, modes restored after)
    and return each named layer's ``(input size, output size)``."""
    from ember.trainer.plugins import move_to_device

    seen: dict[str, Any] = {}

    def recorder(name: str) -> Any:
        def hook(_: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            seen[name] = (size_of(args[0] if len(args) == 1 else args), size_of(output))

        return hook

    handles = [sub.register_forward_hook(recorder(name)) for name, sub in layers.items()]
    modes = [(m, m.training) for m in module.modules()]
    device = next((p.device for p in module.parameters()), None)
    if device is not None:
        example = move_to_device(example, device)
    try:
        module.eval()
        with torch.no_grad():
            if isinstance(example, (list, tuple)):
                module(*example)
            elif isinstance(example, dict):
                module(**example)
            else:
                module(example)
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes:
            m.training = mode
    return seen


def summarize(module: nn.Module, max_depth: int = 1) -> Summary:
    """Summarise ``module``: its submodules down to ``max_depth`` levels (-1: all levels,
    0: totals only) and its parameter totals. A module with an ``example_input_array``
    (not ``None``) is run on it once to record each layer's input and output sizes."""
    if max_depth < -1:
        raise ValueError(f"max_depth must be -1 (all levels) or >= 0, got {max_depth}")
    listed: dict[str, nn.Module] = {}
    for name, sub in module.named_modules():
        depth = name.count(".") + 1
        if name and (max_depth == -1 or depth <= max_depth):
            listed[name] = sub
    example = getattr(module, "example_input_array", None)
    sizes = _record_sizes(module, listed, example) if example is not None and listed else {}
    layers = []
    for name, sub in listed.items():
        total, trainable, _ = _count(list(sub.parameters()))
        in_size, out_size = sizes.get(name, (UNKNOWN_SIZE, UNKNOWN_SIZE))
        layers.append(LayerSummary(name, type(sub).__name__, total, trainable, in_size, out_size))
    total, trainable, size = _count(list(module.parameters()))
    return Summary(tuple(layers), total, trainable, size, with_sizes=bool(sizes))


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
