"""Hyperparameters as plain data, so that a checkpoint loads with ``weights_only=True``
and a tracker can record them without importing the user's classes."""

from __future__ import annotations

import dataclasses
import enum
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch

_PRIMITIVES = (type(None), bool, int, float, str)


def _import_path(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def to_plain(obj: Any, name: str = "hparams") -> Any:
    """Convert hyperparameters to dicts, lists, tuples, str, int, float, bool and None.

    Lossless conversions happen silently: mappings become dicts, sets become sorted lists,
    paths become strings, numpy and one-element tensor scalars become Python numbers;
    ``torch.dtype`` and ``torch.device`` stay as they are (the safe loader accepts them).
    Anything else is described and a warning names the entry: a class or function becomes
    ``{"class_path": "module:Name"}``, a dataclass ``{"class_path": ..., "init_args":
    {...}}``, an enum its value, an array or tensor a nested list, any other object its
    ``repr``. Nothing is ever imported back from such a description, so pass the real
    object again when loading (``load_from_checkpoint(path, name=obj)``).

    :param name: how the warnings refer to ``obj`` (``hparams['model']['act']``).
    """
    kind = type(obj)
    if kind in _PRIMITIVES or kind in (torch.dtype, torch.device):
        return obj
    if isinstance(obj, Mapping):
        return {_plain_key(k, name): to_plain(v, f"{name}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, f"{name}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, (set, frozenset)):
        items = [to_plain(v, f"{name}[...]") for v in obj]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        _warn(name, obj, "its value")
        return to_plain(obj.value, name)
    for base in (bool, int, float, str):  # subclasses, e.g. numpy.float64
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, torch.Tensor) or _is_numpy(obj):
        if obj.ndim == 0:
            return obj.item()
        _warn(name, obj, "a nested list")
        return obj.tolist()
    if _is_numpy_scalar(obj):
        return obj.item()
    if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__")):
        _warn(name, obj, "{'class_path': ...}")
        return {"class_path": _import_path(obj)}
    if dataclasses.is_dataclass(obj):
        _warn(name, obj, "{'class_path': ..., 'init_args': {...}}")
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"class_path": _import_path(type(obj)), "init_args": to_plain(fields, name)}
    _warn(name, obj, "its repr")
    return repr(obj)


def _plain_key(key: Any, name: str) -> Any:
    if type(key) in _PRIMITIVES:
        return key
    _warn(f"{name} (key {key!r})", key, "its str")
    return str(key)


def _is_numpy(obj: Any) -> bool:
    return type(obj).__module__ == "numpy" and type(obj).__name__ == "ndarray"


def _is_numpy_scalar(obj: Any) -> bool:
    return type(obj).__module__ == "numpy" and hasattr(obj, "item") and hasattr(obj, "dtype")


def _warn(name: str, obj: Any, stored_as: str) -> None:
    kind = type(obj) if not isinstance(obj, type) else obj
    warnings.warn(
        f"hyperparameter {name} is a {kind.__module__}.{kind.__qualname__}, not plain data; "
        f"the checkpoint stores {stored_as}. When loading, pass the object again: "
        "load_from_checkpoint(path, <name>=...).",
        UserWarning,
        stacklevel=3,
    )
