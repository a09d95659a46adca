"""A callback assembled from plain functions, for hooks too small to deserve a class."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from ember.hub import CALLBACK_HOOKS, hook_signature
from ember.trainer.callback import Callback


class LambdaCallback(Callback):
    """Run the given functions as hooks: ``LambdaCallback(on_train_epoch_end=fn, ...)``.

    Each keyword names a hook (see :class:`~ember.trainer.Callback` for the list) and each
    function takes that hook's arguments positionally in Lightning's order
    (``lambda trainer, pl_module: ...``) or a subset of them by name
    (``lambda trainer: ...``). A ``None`` function is ignored, as in Lightning. An unknown
    hook name is an error that suggests the closest real one.
    """

    def __init__(self, **hooks: Callable[..., Any] | None) -> None:
        for name, func in hooks.items():
            if name not in CALLBACK_HOOKS:
                hint = difflib.get_close_matches(name, list(CALLBACK_HOOKS), n=1)
                msg = f"LambdaCallback got {name!r}, which is not a hook ember knows."
                if hint:
                    msg += f" Did you mean {hint[0]!r}, i.e. {hook_signature(hint[0])}?"
                raise TypeError(msg + " The hooks are listed in ember.hub.CALLBACK_HOOKS.")
            if func is not None and not callable(func):
                raise TypeError(
                    f"LambdaCallback({name}=...) must be a function, got {type(func).__name__}"
                )
        self.hooks = {name: func for name, func in hooks.items() if func is not None}
        # The hub adapts hooks defined on the class, so each instance gets a class of its
        # own carrying exactly the hooks it was given: the others cost nothing.
        cls = type(self)
        self.__class__ = type(
            cls.__name__,
            (cls,),
            {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                **{name: staticmethod(func) for name, func in self.hooks.items()},
            },
        )

    def __repr__(self) -> str:
        return f"LambdaCallback({', '.join(self.hooks)})"
