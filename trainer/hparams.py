"""``save_hyperparameters()``: record the arguments a module or data module was built with,
so checkpoints, loggers and the run journal know how to rebuild it."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any


class AttributeDict(dict):
    """A dict whose keys read as attributes too: ``self.hparams.lr``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(
                f"no hyperparameter {key!r}; saved ones: {', '.join(self) or 'none'}"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]


def _init_args(frame: FrameType) -> dict[str, Any]:
    """The named arguments (and ``**kwargs``) of the ``__init__`` running in ``frame``."""
    info = inspect.getargvalues(frame)
    values: dict[str, Any] = {}
    for name in info.args[1:]:  # skip self
        values[name] = info.locals[name]
    if info.keywords:
        values.update(info.locals[info.keywords])
    return values


def _collect_init_args(frame: FrameType | None, owner: object) -> dict[str, Any]:
    """Arguments of every ``__init__`` of ``owner`` on the stack, the most derived winning.

    Walking up from the caller passes first through the base class that called
    ``save_hyperparameters`` and then through the subclasses that called ``super().__init__``.
    """
    chain: list[dict[str, Any]] = []
    while frame is not None:
        if frame.f_code.co_name != "__init__" or frame.f_locals.get("self") is not owner:
            break
        chain.append(_init_args(frame))
        frame = frame.f_back
    merged: dict[str, Any] = {}
    for args in chain:
        merged.update(args)
    return merged


class HyperparametersMixin:
    """Gives a class ``save_hyperparameters()`` and ``hparams`` (as in Lightning)."""

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: str | Iterable[str] | None = None,
        frame: FrameType | None = None,
        logger: bool = True,
    ) -> None:
        """Save the ``__init__`` arguments of the caller into ``self.hparams``.

        With no arguments every ``__init__`` argument is saved; with argument names
        (``save_hyperparameters("lr", "hidden")``) only those; with one mapping, that
        mapping. ``ignore`` drops names (large objects such as a backbone module).
        ``logger=False`` keeps them out of loggers and the run journal.
        """
        if frame is None:
            current = inspect.currentframe()
            frame = current.f_back if current is not None else None
        init_args = _collect_init_args(frame, self)
        if len(args) == 1 and isinstance(args[0], Mapping):
            hparams = dict(args[0])
        elif len(args) == 1 and hasattr(args[0], "__dict__") and not isinstance(args[0], str):
            hparams = dict(vars(args[0]))
        elif args:
            unknown = [a for a in args if not isinstance(a, str) or a not in init_args]
            if unknown:
                raise ValueError(
                    f"save_hyperparameters({', '.join(map(repr, args))}): {unknown[0]!r} is "
                    f"not an argument of __init__; its arguments are: "
                    f"{', '.join(init_args) or 'none'}"
                )
            hparams = {name: init_args[name] for name in args}
        else:
            hparams = init_args
        if ignore is not None:
            dropped = {ignore} if isinstance(ignore, str) else set(ignore)
            hparams = {k: v for k, v in hparams.items() if k not in dropped}
        self._set_hparams(hparams)
        self._log_hyperparams = logger
        try:
            self._hparams_initial = copy.deepcopy(self._hparams)
        except Exception:  # an argument that cannot be copied (an open file): keep it as is
            self._hparams_initial = AttributeDict(self._hparams)

    def _set_hparams(self, hparams: Mapping[str, Any]) -> None:
        self._hparams = AttributeDict(hparams)

    @property
    def hparams(self) -> AttributeDict:
        """The saved hyperparameters (empty until ``save_hyperparameters()`` is called)."""
        if not hasattr(self, "_hparams"):
            self._hparams = AttributeDict()
        return self._hparams

    @property
    def hparams_initial(self) -> AttributeDict:
        """A copy of the hyperparameters as first saved, unaffected by later edits."""
        if not hasattr(self, "_hparams_initial"):
            return AttributeDict()
        return AttributeDict(self._hparams_initial)
