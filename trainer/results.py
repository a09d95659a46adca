"""Where ``self.log`` values go: one :class:`ResultCollection` per stage (training,
validation, test) holds a small slot per logged name.

The hot path is ``ResultCollection.log``: a dict lookup, a tuple compare, a ``detach``
and a list append. Values stay tensors on their device; nothing is read back to the host
here. The trainer asks for reduced values at flush points (every ``log_every_n_steps``
and at epoch ends) and reads them all back in one transfer.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from ember.trainer.errors import MisconfigurationError
from torch import Tensor

_REDUCE_NAMES = {"mean": "mean", "avg": "mean", "sum": "sum", "max": "max", "min": "min"}
_REDUCE_FUNCS: dict[Any, str] = {
    torch.mean: "mean",
    torch.sum: "sum",
    torch.max: "max",
    torch.min: "min",
    torch.amax: "max",
    torch.amin: "min",
}
#: epoch values are folded into one running tensor every this many logs, bounding memory
_COMPACT_AT = 64


def extract_batch_size(batch: Any) -> int | None:
    """The size of the first dimension of the first tensor in ``batch`` (``None`` if none)."""
    if isinstance(batch, Tensor):
        return 1 if batch.ndim == 0 else batch.size(0)
    if isinstance(batch, (str, bytes)):
        return None
    if isinstance(batch, Mapping):
        items: Any = batch.values()
    elif isinstance(batch, (list, tuple)):
        items = batch
    elif dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        items = (getattr(batch, f.name) for f in dataclasses.fields(batch))
    else:
        return None
    for item in items:
        size = extract_batch_size(item)
        if size is not None:
            return size
    return None


def _resolve_reduce(name: str, reduce_fx: Any) -> str:
    if isinstance(reduce_fx, str) and reduce_fx.lower() in _REDUCE_NAMES:
        return _REDUCE_NAMES[reduce_fx.lower()]
    if reduce_fx in _REDUCE_FUNCS:
        return _REDUCE_FUNCS[reduce_fx]
    raise MisconfigurationError(
        f"self.log({name!r}, ..., reduce_fx={reduce_fx!r}): use 'mean', 'sum', 'max' or "
        "'min' (or torch.mean, torch.sum, torch.max, torch.min)"
    )


class _Slot:
    """One logged name in one hook phase: its options and the values seen so far."""

    __slots__ = (
        "acc",
        "epoch_name",
        "epoch_value",
        "flushed_acc",
        "fresh",
        "key",
        "logger",
        "metric",
        "metric_updated",
        "name",
        "on_epoch",
        "on_step",
        "opts",
        "prog_bar",
        "reduce",
        "sizes",
        "step_name",
        "step_value",
        "sync_dist",
        "total",
        "values",
        "weighted",
        "where",
    )

    def __init__(
        self,
        name: str,
        key: str,
        opts: tuple[Any, ...],
        on_step: bool,
        on_epoch: bool,
        prog_bar: bool,
        logger: bool,
        reduce: str,
        sync_dist: bool,
    ) -> None:
        self.name = name
        self.key = key
        self.opts = opts
        self.on_step = on_step
        self.on_epoch = on_epoch
        self.prog_bar = prog_bar
        self.logger = logger
        self.reduce = reduce
        self.sync_dist = sync_dist
        self.weighted = on_epoch and reduce == "mean"
        both = on_step and on_epoch
        self.step_name = f"{key}_step" if both else key
        self.epoch_name = f"{key}_epoch" if both else key
        self.step_value: Tensor | float | None = None
        self.fresh = False
        self.values: list[Tensor | float] = []
        self.sizes: list[int] = []
        self.acc: Tensor | float | None = None
        self.total = 0
        self.epoch_value: Tensor | float | None = None
        #: ``acc`` when the epoch value was published: a later value changes it
        self.flushed_acc: Tensor | float | None = None
        #: a TorchMetrics ``Metric`` logged as the value: it reduces itself
        self.metric: Any = None
        self.metric_updated = False
        #: the hooks it was logged from, for messages
        self.where = ""

    def published_names(self) -> tuple[str, ...]:
        """The names loggers receive this slot's values under."""
        if not self.logger:
            return ()
        if self.on_step and self.on_epoch:
            return (self.step_name, self.epoch_name)
        return (self.key,)

    def compact(self) -> None:
        """Fold the pending values into the running accumulator (device ops, no sync)."""
        values = self.values
        if not values:
            return
        if all(not isinstance(v, Tensor) for v in values) and not isinstance(self.acc, Tensor):
            part: Any = self._reduce_python(values)
        else:
            part = self._reduce_tensors(values)
        if self.reduce == "mean":
            self.total += sum(self.sizes)
        acc = self.acc
        if acc is None:
            self.acc = part
        elif self.reduce in ("mean", "sum"):
            self.acc = part + acc
        elif isinstance(part, Tensor) or isinstance(acc, Tensor):
            op = torch.maximum if self.reduce == "max" else torch.minimum
            self.acc = op(*_as_tensors(part, acc))
        else:
            self.acc = max(part, acc) if self.reduce == "max" else min(part, acc)
        values.clear()
        self.sizes.clear()

    def _reduce_python(self, values: list[Any]) -> float:
        if self.reduce == "mean":
            return sum(v * s for v, s in zip(values, self.sizes, strict=True))
        if self.reduce == "sum":
            return sum(values)
        return max(values) if self.reduce == "max" else min(values)

    def _reduce_tensors(self, values: list[Any]) -> Tensor:
        device = next(v.device for v in values if isinstance(v, Tensor))
        items = [v if isinstance(v, Tensor) else torch.tensor(v, device=device) for v in values]
        try:
            stacked = torch.stack(items)
        except RuntimeError:  # mixed shapes () and (1,), or mixed devices
            stacked = torch.stack([t.reshape(()).to(device) for t in items])
        if not stacked.is_floating_point():
            stacked = stacked.float()
        if self.reduce == "mean":
            sizes = self.sizes
            if sizes.count(sizes[0]) == len(sizes):
                return stacked.sum() * sizes[0]
            return (stacked * torch.tensor(sizes, dtype=stacked.dtype, device=device)).sum()
        if self.reduce == "sum":
            return stacked.sum()
        return stacked.max() if self.reduce == "max" else stacked.min()

    def epoch_result(self) -> Tensor | float | None:
        """The value reduced over everything logged this epoch (``None`` if nothing was);
        for a TorchMetrics ``Metric``, its ``compute()``."""
        if self.metric is not None:
            return self._compute_metric() if self.metric_updated else None
        self.compact()
        if self.acc is None:
            return None
        if self.reduce == "mean":
            return self.acc / self.total if self.total else self.acc * float("nan")
        return self.acc

    def _compute_metric(self) -> Tensor:
        value = self.metric.compute()
        if not isinstance(value, Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise MisconfigurationError(
                f"self.log({self.name!r}, metric): {type(self.metric).__name__}.compute() "
                f"returned {shape}, not one number; log a metric that computes a scalar "
                "(e.g. average='macro'), or log its compute() entries one by one"
            )
        return value.detach().reshape(())

    def reset(self) -> None:
        """Forget this epoch's values (and reset a logged ``Metric``, as Lightning does)."""
        if self.metric is not None and self.metric_updated:
            self.metric.reset()
        self.metric_updated = False
        self.values.clear()
        self.sizes.clear()
        self.acc = None
        self.flushed_acc = None
        self.total = 0
        self.epoch_value = None
        self.step_value = None
        self.fresh = False


def _as_tensors(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    ref = a if isinstance(a, Tensor) else b
    return (
        a if isinstance(a, Tensor) else torch.tensor(a, dtype=ref.dtype, device=ref.device),
        b if isinstance(b, Tensor) else torch.tensor(b, dtype=ref.dtype, device=ref.device),
    )


def _as_tensor(value: Tensor | float) -> Tensor:
    return value if isinstance(value, Tensor) else torch.tensor(value)


class ResultCollection:
    """The ``self.log`` values of one stage (training, validation or test).

    :param training: training defaults (``on_step`` in batch hooks) instead of evaluation
        ones (``on_epoch`` everywhere).
    :param sync: combines a value across processes for ``sync_dist=True``
        (``strategy.reduce``).
    """

    def __init__(
        self,
        training: bool,
        sync: Callable[[Tensor, str], Tensor] | None = None,
        stage: str | None = None,
    ) -> None:
        self.training = training
        self.sync = sync
        #: ``"train"``, ``"validation"`` or ``"test"``: names hooks in messages
        self.stage = stage or ("train" if training else "validation")
        #: which slot each name loggers receive comes from; shared by the collections of
        #: one entry point (:class:`~ember.trainer.metrics.Metrics` sets it), so that one
        #: name is one series: never two values at one step from two places
        self.published: dict[str, tuple[ResultCollection, _Slot]] = {}
        self.slots: list[_Slot] = []
        self._tables: dict[tuple[str, int | None], dict[str, _Slot]] = {}
        self._phase = "step"
        self._dataloader_idx: int | None = None
        self._suffix = ""
        #: set by the loop once the epoch's batches are done: ``callback_metrics`` read in
        #: an epoch-end hook then shows the epoch values reduced so far, as Lightning does
        self.epoch_end_reached = False
        #: the current batch, set by the loop; its size is inferred only when needed
        self.batch: Any = None
        self.batch_size: int | None = None
        self._select()

    # ------------------------------------------------------------------ context
    def _select(self) -> None:
        self._cur = self._tables.setdefault((self._phase, self._dataloader_idx), {})
        in_batch = self._phase == "step" and self.training
        self._default_on_step = in_batch
        self._default_on_epoch = not in_batch

    def set_phase(self, phase: str) -> None:
        """``"step"`` inside batch hooks, ``"epoch"`` in epoch-level hooks (sets defaults).
        An epoch-level hook has no batch: each value it logs weighs 1 in a mean."""
        if phase == "epoch":
            self.batch = None
            self.batch_size = 1
        if phase != self._phase:
            self._phase = phase
            self._select()

    def set_dataloader(self, idx: int | None, several: bool) -> None:
        """Which loader the batches come from; names get ``/dataloader_idx_N`` when several."""
        self._dataloader_idx = idx
        self._suffix = f"/dataloader_idx_{idx}" if several and idx is not None else ""
        self._select()

    # ------------------------------------------------------------------ hot path
    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool,
        logger: bool | None,
        on_step: bool | None,
        on_epoch: bool | None,
        reduce_fx: Any,
        enable_graph: bool,
        sync_dist: bool,
        add_dataloader_idx: bool,
        batch_size: int | None,
    ) -> None:
        """Record one value (see ``EmberModule.log``)."""
        slot = self._cur.get(name)
        if slot is None or slot.opts != (
            prog_bar,
            logger,
            on_step,
            on_epoch,
            reduce_fx,
            sync_dist,
            add_dataloader_idx,
        ):
            slot = self._register(
                name, prog_bar, logger, on_step, on_epoch, reduce_fx, sync_dist, add_dataloader_idx
            )
        if isinstance(value, Tensor):
            if value.numel() != 1 or value.is_complex():
                raise MisconfigurationError(_bad_tensor_message(name, value))
            if not enable_graph:
                value = value.detach()
        elif _is_metric(value):
            self._log_metric(slot, value)
            return
        else:
            value = _python_number(name, value)
        if slot.on_step:
            slot.step_value = value
            slot.fresh = True
        if slot.on_epoch:
            values = slot.values
            if slot.weighted:
                if batch_size is None:
                    batch_size = self.batch_size or self._infer_batch_size(name)
                slot.sizes.append(batch_size)
            values.append(value)
            if len(values) >= _COMPACT_AT:
                slot.compact()

    @staticmethod
    def _log_metric(slot: _Slot, metric: Any) -> None:
        """A ``Metric`` accumulates itself: its step value is the last ``forward`` result,
        its epoch value ``compute()`` at the epoch's end (then it is reset)."""
        if slot.metric is not None and slot.metric is not metric:
            raise MisconfigurationError(
                f"self.log({slot.name!r}, metric) got a different Metric object than before "
                "in this stage: log each Metric under its own name"
            )
        slot.metric = metric
        slot.metric_updated = True
        if slot.on_step:
            step = getattr(metric, "_forward_cache", None)
            if isinstance(step, Tensor) and step.numel() == 1:
                slot.step_value = step.detach()
                slot.fresh = True

    def _infer_batch_size(self, name: str) -> int:
        size = extract_batch_size(self.batch)
        if size is None:
            raise MisconfigurationError(
                f"self.log({name!r}, ...) averages over the epoch weighted by batch size, but "
                f"no tensor was found in the {type(self.batch).__name__} batch to infer it "
                "from: pass self.log(..., batch_size=N)"
            )
        self.batch_size = size
        return size

    def _register(
        self,
        name: str,
        prog_bar: bool,
        logger: bool | None,
        on_step: bool | None,
        on_epoch: bool | None,
        reduce_fx: Any,
        sync_dist: bool,
        add_dataloader_idx: bool,
    ) -> _Slot:
        """Create the slot for a name logged for the first time (all validation here)."""
        if not isinstance(name, str) or not name:
            raise MisconfigurationError(
                f"self.log(name, ...) needs a non-empty str name, got {name!r}"
            )
        opts = (prog_bar, logger, on_step, on_epoch, reduce_fx, sync_dist, add_dataloader_idx)
        where = self._where()
        if name in self._cur:
            raise MisconfigurationError(
                f"self.log({name!r}, ...) was called twice in {where} with different "
                "options; log it with the same options each time, or under another name"
            )
        reduce = _resolve_reduce(name, reduce_fx)
        step = self._default_on_step if on_step is None else bool(on_step)
        epoch = self._default_on_epoch if on_epoch is None else bool(on_epoch)
        if not step and not epoch:
            raise MisconfigurationError(
                f"self.log({name!r}, ..., on_step=False, on_epoch=False) records nothing: "
                "set on_step=True or on_epoch=True"
            )
        if step and self._phase == "epoch":
            raise MisconfigurationError(
                f"self.log({name!r}, ..., on_step=True) was called in {where}, which runs "
                "once per epoch: there is no step to record it at. Use on_epoch=True (the "
                "default there), or log it per step from a step or a batch hook"
            )
        key = name + self._suffix if add_dataloader_idx else name
        if not add_dataloader_idx and self._dataloader_idx is not None:
            # one name for every loader: the loaders' values reduce together, as in Lightning
            for (phase, _), table in self._tables.items():
                shared = table.get(name)
                if phase == self._phase and shared is not None and shared.opts == opts:
                    self._cur[name] = shared
                    return shared
        slot = _Slot(
            name,
            key,
            opts,
            on_step=step,
            on_epoch=epoch,
            prog_bar=bool(prog_bar),
            logger=True if logger is None else bool(logger),
            reduce=reduce,
            sync_dist=bool(sync_dist),
        )
        slot.where = where
        self._claim_names(slot)
        self._cur[name] = slot
        self.slots.append(slot)
        return slot

    def _where(self) -> str:
        """The hooks the current phase covers, for messages."""
        stage = self.stage
        if self._phase == "step":
            label = "training" if stage == "train" else stage
            return f"{label}_step or a {label} batch hook"
        return (
            f"an epoch-level hook (on_{stage}_start, on_{stage}_epoch_start or "
            f"on_{stage}_epoch_end)"
        )

    def _claim_names(self, slot: _Slot) -> None:
        """Make ``slot`` the one source of the names loggers receive its values under; an
        error when another slot (another hook, another stage) already sends one of them,
        since the two would mix in one series, with two values at some steps."""
        published = self.published
        for name in slot.published_names():
            if name == "epoch":
                raise MisconfigurationError(
                    f"self.log({slot.name!r}, ...) in {slot.where} sends 'epoch' to the "
                    "loggers, but the trainer records 'epoch' itself (the current epoch, "
                    "with every flush): the two would mix in one series. Log your value "
                    "under another name"
                )
            owner = published.get(name)
            if owner is not None:
                results, other = owner
                if other in results.slots:
                    raise MisconfigurationError(_clash_message(name, slot, other, results, self))
            published[name] = (self, slot)

    # ------------------------------------------------------------------ reading
    def _sync_all(self, pairs: list[tuple[_Slot, Any]]) -> list[Any]:
        """The values of ``pairs`` with every ``sync_dist`` one reduced across processes:
        one collective per reduction op (usually one per flush), not one per value."""
        out = [value for _, value in pairs]
        if self.sync is None:
            return out
        buckets: dict[str, list[int]] = {}
        for i, (slot, value) in enumerate(pairs):
            # a Metric synchronises its own state in compute()
            if slot.sync_dist and value is not None and slot.metric is None:
                buckets.setdefault(slot.reduce, []).append(i)
        for op, indices in buckets.items():
            tensors = [_as_tensor(out[i]).detach() for i in indices]
            device = next((t.device for t in tensors if t.device.type != "cpu"), tensors[0].device)
            wide = any(t.dtype == torch.float64 for t in tensors)
            dtype = torch.float64 if wide else torch.float32
            flat = torch.cat([t.reshape(-1).to(device, dtype) for t in tensors])
            reduced = self.sync(flat, op)
            parts = reduced.split([t.numel() for t in tensors])
            for i, t, part in zip(indices, tensors, parts, strict=True):
                out[i] = part.reshape(t.shape)
        return out

    def step_metrics(self) -> dict[str, Tensor | float]:
        """Step values logged since the last call, for loggers (``name_step`` names)."""
        fresh = [slot for slot in self.slots if slot.fresh]
        for slot in fresh:
            slot.fresh = False
        logged = [(slot, slot.step_value) for slot in fresh if slot.logger]
        values = self._sync_all(logged)
        return {slot.step_name: v for (slot, _), v in zip(logged, values, strict=True)}

    def finish_epoch(self) -> dict[str, Tensor | float]:
        """Reduce every epoch value; return those meant for loggers (``name_epoch`` names)."""
        pairs = [(slot, slot.epoch_result()) for slot in self.slots if slot.on_epoch]
        out: dict[str, Tensor | float] = {}
        for (slot, _), value in zip(pairs, self._sync_all(pairs), strict=True):
            slot.epoch_value = value
            slot.flushed_acc = slot.acc
            if value is not None and slot.logger:
                out[slot.epoch_name] = value
        return out

    def finish_late(self, hook: str) -> tuple[dict[str, Tensor | float], list[str]]:
        """Reduce what callbacks logged in their ``hook`` (an epoch end, which they reach
        after :meth:`finish_epoch` published the epoch's metrics). Returns the values for
        loggers and the names of every value reduced here; nothing to do, and nothing
        read, when they logged nothing."""
        late = [
            slot
            for slot in self.slots
            if slot.on_epoch
            and (
                slot.values
                or slot.acc is not slot.flushed_acc
                or (slot.metric_updated and slot.epoch_value is None)
            )
        ]
        if not late:
            return {}, []
        for slot in late:
            if slot.epoch_value is not None and slot.logger:
                raise MisconfigurationError(
                    f"self.log({slot.name!r}, ...) was called in a callback's {hook} after "
                    f"{slot.epoch_name!r} was logged for this epoch elsewhere ({slot.where}) "
                    "and published: a second value at the same step would mix two sources "
                    "in one series. Log it under another name in the callback"
                )
        pairs = [(slot, slot.epoch_result()) for slot in late]
        out: dict[str, Tensor | float] = {}
        names: list[str] = []
        for (slot, _), value in zip(pairs, self._sync_all(pairs), strict=True):
            slot.epoch_value = value
            if value is not None:
                names.append(slot.epoch_name)
                if slot.logger:
                    out[slot.epoch_name] = value
        return out, names

    def epoch_metrics(self) -> dict[str, Tensor | float]:
        """Every reduced epoch value, logger or not (what validate/test return)."""
        return {
            slot.epoch_name: slot.epoch_value for slot in self.slots if slot.epoch_value is not None
        }

    def callback_view(self) -> dict[str, Tensor]:
        """Current values under plain and forked names, as tensors (``callback_metrics``)."""
        out: dict[str, Tensor] = {}
        stepped = [(slot, slot.step_value) for slot in self.slots if slot.step_value is not None]
        synced = dict(zip(map(id, (s for s, _ in stepped)), self._sync_all(stepped), strict=True))
        for slot in self.slots:
            if slot.step_value is not None:
                value = _as_tensor(synced[id(slot)])
                out[slot.step_name] = value
                out[slot.key] = value
            epoch_value = slot.epoch_value
            if epoch_value is None and self.epoch_end_reached and slot.on_epoch:
                # read in an epoch-end hook: this process's value so far (the final,
                # synchronised one replaces it once the epoch's metrics are reduced)
                epoch_value = slot.epoch_result()
            if epoch_value is not None:
                value = _as_tensor(epoch_value)
                out[slot.epoch_name] = value
                out[slot.key] = value
        return out

    def progress_view(self) -> dict[str, Tensor | float]:
        """Current values of ``prog_bar=True`` names (forked names)."""
        out: dict[str, Tensor | float] = {}
        for slot in self.slots:
            if not slot.prog_bar:
                continue
            if slot.step_value is not None:
                out[slot.step_name] = slot.step_value
            if slot.epoch_value is not None:
                out[slot.epoch_name] = slot.epoch_value
        return out

    def reset_metrics(self) -> None:
        """Reset the logged TorchMetrics objects (at the end of an evaluation epoch, after
        every hook saw them), keeping the values they computed."""
        for slot in self.slots:
            if slot.metric is not None and slot.metric_updated:
                slot.metric.reset()
                slot.metric_updated = False

    def reset(self) -> None:
        """Start a new epoch: forget values, keep slots (and their checked options)."""
        self.epoch_end_reached = False
        for slot in self.slots:
            slot.reset()

    def clear(self) -> None:
        """Forget everything, slots included (after the sanity check)."""
        self.epoch_end_reached = False
        for slot in self.slots:
            slot.reset()
        self.slots.clear()
        self._tables.clear()
        self._select()


def _is_metric(value: Any) -> bool:
    """Whether ``value`` is a TorchMetrics ``Metric`` (never imports torchmetrics: an
    object of its class exists only once it was imported)."""
    torchmetrics = sys.modules.get("torchmetrics")
    return torchmetrics is not None and isinstance(value, torchmetrics.Metric)


#: what ``self.log`` takes as a value, for messages
ACCEPTED_VALUES = "an int, a float or a bool, a one-element real tensor, or a torchmetrics Metric"


def _python_number(name: str, value: Any) -> float:
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, Mapping):
        raise MisconfigurationError(
            f"self.log({name!r}, value) got a dict: use self.log_dict({{...}}) to log "
            "several values"
        )
    # float() would parse a string ("0.5") and drop the imaginary part of a numpy complex
    if not isinstance(value, (str, bytes, bytearray)) and not is_complex(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise MisconfigurationError(
        f"self.log({name!r}, value): value must be {ACCEPTED_VALUES}; got "
        f"{type(value).__name__} {_short_repr(value)}"
    )


def plain_metric(call: str, name: Any, value: Any) -> float:
    """``value`` as a float for ``call`` (e.g. ``trainer.log_metrics``), or an error that
    says what is accepted: a real number or a one-element real tensor (read back here)."""
    if not isinstance(name, str) or not name:
        raise MisconfigurationError(f"{call} needs non-empty str metric names, got {name!r}")
    if isinstance(value, Tensor):
        if value.numel() == 1 and not value.is_complex():
            return float(value.detach().reshape(()).item())
    elif isinstance(value, (bool, int, float)):
        return float(value)
    elif not isinstance(value, (str, bytes, bytearray, Mapping)) and not is_complex(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    shown = (
        f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
        if isinstance(value, Tensor)
        else f"{type(value).__name__} {_short_repr(value)}"
    )
    raise MisconfigurationError(
        f"{call}: the value of {name!r} must be a real number (int, float, bool) or a "
        f"one-element real tensor; got {shown}"
    )


def is_complex(value: Any) -> bool:
    """Whether ``value`` is a complex number (Python, numpy or a tensor's dtype)."""
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return True
    dtype = getattr(value, "dtype", None)
    return getattr(dtype, "is_complex", False) is True or getattr(dtype, "kind", "") == "c"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bad_tensor_message(name: str, value: Tensor) -> str:
    if value.is_complex():
        return (
            f"self.log({name!r}, value): value is a complex tensor ({value.dtype}); a metric "
            f"is one real number: log value.real, value.imag or value.abs() (accepted: "
            f"{ACCEPTED_VALUES})"
        )
    return (
        f"self.log({name!r}, value): value must hold one number, got a tensor of shape "
        f"{tuple(value.shape)}; reduce it first (e.g. value.mean())"
    )


def _clash_message(
    name: str, slot: _Slot, other: _Slot, other_results: ResultCollection, results: ResultCollection
) -> str:
    if other_results is results:
        fix = (
            "Log it under another name in one of the places, or log it once with "
            f"on_step=True, on_epoch=True (loggers then get '{other.name}_step' and "
            f"'{other.name}_epoch')"
        )
    else:
        fix = (
            f"Name them after their stage (e.g. '{other_results.stage}_{other.name}' and "
            f"'{results.stage}_{slot.name}')"
        )
    return (
        f"self.log({slot.name!r}, ...) in {slot.where} sends {name!r} to the loggers, but "
        f"{name!r} already comes from self.log({other.name!r}, ...) in {other.where}. One "
        "name is one series: two places would mix their values in it, with two values at "
        f"some steps. {fix}"
    )


def to_host(
    values: Mapping[str, Tensor | float], extra: Sequence[Tensor] = ()
) -> tuple[dict[str, float], list[float]]:
    """Read ``values`` (and ``extra`` tensors) back as Python floats: one transfer per device."""
    out: dict[str, float] = {}
    groups: dict[torch.device, tuple[list[str], list[Tensor]]] = {}
    for key, value in values.items():
        if isinstance(value, Tensor):
            names, tensors = groups.setdefault(value.device, ([], []))
            names.append(key)
            tensors.append(value)
        else:
            out[key] = float(value)
    extra_keys = [f"\0extra{i}" for i in range(len(extra))]
    for key, tensor in zip(extra_keys, extra, strict=True):
        names, tensors = groups.setdefault(tensor.device, ([], []))
        names.append(key)
        tensors.append(tensor)
    for names, tensors in groups.values():
        try:
            stacked = torch.stack(tensors)
        except RuntimeError:
            stacked = torch.stack([t.reshape(()) for t in tensors])
        if stacked.dtype != torch.float64:
            stacked = stacked.float()
        out.update(zip(names, stacked.tolist(), strict=True))
    extras = [out.pop(k) for k in extra_keys]
    order = {k: None for k in values}
    return {k: out[k] for k in order}, extras


def closest_metric(name: str, available: Mapping[str, Any]) -> str:
    """`` Did you mean 'x'?`` or an empty string."""
    hint = difflib.get_close_matches(name, list(available), n=1)
    return f" Did you mean {hint[0]!r}?" if hint else ""
