"""Lifecycle events: turning callbacks into hook implementations, and the typed facade
through which the trainer fires every event.

A ``Callback`` writes hooks under the names Lightning users know (``on_train_batch_end``,
``setup``); :func:`callback_plugin` maps those methods onto the ``ember_*`` hookspecs
without any decoration. A method that looks like a hook but is not one
(``on_train_epoch_ned``) is an error here, not a silent no-op.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from typing import Any

from ember.hub import hookspecs
from ember.hub.errors import UnknownHookError
from ember.hub.lifecycle_events import LifecycleEvents
from ember.hub.manager import LIFECYCLE_HOOKS, _EmberPluggy

#: the short names a Callback uses (``on_fit_start``, ``setup``) -> their hookspec names
CALLBACK_HOOKS: dict[str, str] = {name.removeprefix("ember_"): name for name in LIFECYCLE_HOOKS}
_HOOK_ARGS: dict[str, tuple[str, ...]] = {
    name: tuple(inspect.signature(getattr(hookspecs, name)).parameters) for name in LIFECYCLE_HOOKS
}


def _looks_like_hook(attr: str) -> bool:
    return attr.startswith("on_") or attr in ("setup", "teardown")


def hook_signature(short_name: str) -> str:
    """``on_train_batch_end(trainer, module, outputs, batch, batch_idx)``, for messages."""
    return f"{short_name}({', '.join(_HOOK_ARGS[CALLBACK_HOOKS[short_name]])})"


#: parameter names that code written for Lightning gives hook arguments
_ARGUMENT_ALIASES = {"pl_module": "module"}


def _make_impl(spec_name: str, method: Any, owner: str, attr: str) -> Any:
    """Wrap a callback method as a function whose parameters are hookspec names.

    A method whose parameter names are all hookspec names takes them by keyword (so
    ``def on_fit_start(self, trainer)`` works); Lightning's ``pl_module`` counts as
    ``module`` (so ``def on_train_batch_end(self, trainer, pl_module, outputs)`` works).
    Otherwise it takes every argument positionally in the spec's order, which is how a
    Lightning callback (``def on_train_batch_end(self, trainer, pl_module, outputs, batch,
    batch_idx)``) reads.
    """
    spec_args = _HOOK_ARGS[spec_name]
    sig = inspect.signature(method)
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword_only = [p for p in params if p.kind == p.KEYWORD_ONLY]
    has_varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
    by_name = {p.name: _ARGUMENT_ALIASES.get(p.name, p.name) for p in positional + keyword_only}
    required = [p for p in positional if p.default is p.empty]
    if (
        not has_varargs
        and set(by_name.values()) <= set(spec_args)
        and len(set(by_name.values())) == len(by_name)
        and all(p.kind != p.POSITIONAL_ONLY for p in positional)
    ):
        wanted = [a for a in spec_args if a in by_name.values()]
        call = ", ".join(f"{name}={arg}" for name, arg in by_name.items())
    elif not any(p.default is p.empty for p in keyword_only) and (
        has_varargs or (len(required) <= len(spec_args) <= len(positional))
    ):
        wanted = list(spec_args)
        call = ", ".join(wanted)
    else:
        raise UnknownHookError(
            f"{owner}.{attr}{sig} does not fit the hook {hook_signature(attr)}: take these "
            "arguments in this order (any names), or a subset of them by exactly these names "
            "(pl_module may stand for module)"
        )
    namespace: dict[str, Any] = {"_method": method}
    exec(
        f"def {spec_name}({', '.join(wanted)}):\n    return _method({call})\n",
        namespace,
    )
    return namespace[spec_name]


class _CallbackPlugin:
    """The hook implementations of one callback object."""

    def __init__(self, callback: object) -> None:
        self.callback = callback

    def __repr__(self) -> str:
        return f"<hooks of {self.callback!r}>"


def callback_plugin(callback: object, base: type | None = None) -> _CallbackPlugin:
    """Collect ``callback``'s hook methods as pluggy hook implementations.

    Methods inherited unchanged from ``base`` (the no-op defaults of the ``Callback``
    class) are skipped, so an event nobody overrides costs nothing. A method named like a
    hook that is not one raises :class:`UnknownHookError` with the closest real name.
    """
    plugin = _CallbackPlugin(callback)
    owner = type(callback).__name__
    for attr in dir(type(callback)):
        if not _looks_like_hook(attr):
            continue
        func = inspect.getattr_static(type(callback), attr)
        if base is not None and getattr(base, attr, None) is func:
            continue
        if not callable(func) and not isinstance(func, (staticmethod, classmethod)):
            continue
        spec_name = CALLBACK_HOOKS.get(attr)
        if spec_name is None:
            hint = difflib.get_close_matches(attr, list(CALLBACK_HOOKS), n=1)
            msg = f"{owner}.{attr} is not a hook ember knows."
            if hint:
                msg += f" Did you mean {hint[0]!r}, i.e. {hook_signature(hint[0])}?"
            msg += " Rename it, or prefix it with an underscore if it is a helper."
            raise UnknownHookError(msg)
        impl = _make_impl(spec_name, getattr(callback, attr), owner, attr)
        setattr(plugin, spec_name, hookspecs.hookimpl(impl))
    return plugin


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


class Lifecycle(LifecycleEvents):
    """The typed face of the lifecycle hooks, as the trainer uses it.

    Built once per trainer from the active plugins and the user's callbacks. Callbacks
    run in the order given, after plugin hook implementations. An event with no
    implementation is bound to a no-op, so firing it costs one Python call. The event
    methods (``on_fit_start(trainer, module)``, ...) are generated from the hookspecs into
    :mod:`ember.hub.lifecycle_events`.
    """

    def __init__(
        self,
        plugins: Iterable[object] = (),
        callbacks: Iterable[object] = (),
        callback_base: type | None = None,
    ) -> None:
        self._pm = _EmberPluggy(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        adapters = [callback_plugin(cb, callback_base) for cb in callbacks]
        # pluggy calls the most recently registered implementation first
        for adapter in reversed(adapters):
            self._pm.register(adapter)
        for plugin in reversed(list(plugins)):
            self._pm.register(plugin)
        self._pm.check_pending()
        self._hook = self._pm.hook
        for short, spec_name in CALLBACK_HOOKS.items():
            if not getattr(self._hook, spec_name).get_hookimpls():
                setattr(self, short, _noop)

    def implemented(self, short_name: str) -> bool:
        """Whether anything implements ``short_name`` (e.g. ``"on_train_batch_end"``)."""
        return bool(getattr(self._hook, CALLBACK_HOOKS[short_name]).get_hookimpls())
