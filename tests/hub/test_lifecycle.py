"""Callbacks become hook implementations; the facade fires each event once, in order."""

from __future__ import annotations

import pytest
from ember.hub import CALLBACK_HOOKS, Lifecycle, UnknownHookError, hookimpl


class Base:
    """Stands for the trainer's Callback base: defines no hooks."""


class LightningStyle(Base):
    def __init__(self, log: list, tag: str) -> None:
        self.log, self.tag = log, tag

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.log.append((self.tag, trainer, pl_module, outputs, batch, batch_idx))

    def setup(self, trainer, pl_module, stage):
        self.log.append((self.tag, "setup", stage))


class KeywordSubset(Base):
    def __init__(self, log: list) -> None:
        self.log = log

    def on_train_batch_end(self, batch_idx, trainer):
        self.log.append(("subset", trainer, batch_idx))


def test_callbacks_run_in_the_order_given_with_both_signature_styles() -> None:
    log: list = []
    hooks = Lifecycle(
        callbacks=[LightningStyle(log, "a"), KeywordSubset(log), LightningStyle(log, "b")],
        callback_base=Base,
    )
    hooks.on_train_batch_end(trainer="T", module="M", outputs="O", batch="B", batch_idx=3)
    hooks.setup(trainer="T", module="M", stage="fit")
    assert log == [
        ("a", "T", "M", "O", "B", 3),
        ("subset", "T", 3),
        ("b", "T", "M", "O", "B", 3),
        ("a", "setup", "fit"),
        ("b", "setup", "fit"),
    ]


def test_plugins_fire_before_callbacks() -> None:
    log: list = []

    class Plugin:
        @hookimpl
        def ember_on_fit_start(self, trainer):
            log.append("plugin")

    class Cb(Base):
        def on_fit_start(self, trainer, pl_module):
            log.append("callback")

    Lifecycle(plugins=[Plugin()], callbacks=[Cb()], callback_base=Base).on_fit_start("T", "M")
    assert log == ["plugin", "callback"]


def test_misspelled_hook_is_an_error_with_the_right_name() -> None:
    class Typo(Base):
        def on_train_epoch_ned(self, trainer, pl_module):
            pass

    with pytest.raises(UnknownHookError) as err:
        Lifecycle(callbacks=[Typo()], callback_base=Base)
    assert str(err.value) == (
        "Typo.on_train_epoch_ned is not a hook ember knows. Did you mean 'on_train_epoch_end', "
        "i.e. on_train_epoch_end(trainer, module)? Rename it, or prefix it with an underscore "
        "if it is a helper."
    )


def test_wrong_arity_is_explained() -> None:
    class Short(Base):
        def on_train_batch_end(self, trainer, pl_module, outs):
            pass

    with pytest.raises(UnknownHookError, match=r"does not fit the hook on_train_batch_end\("):
        Lifecycle(callbacks=[Short()], callback_base=Base)


def test_unimplemented_events_are_bound_to_a_no_op() -> None:
    hooks = Lifecycle(callbacks=[KeywordSubset([])], callback_base=Base)
    assert hooks.implemented("on_train_batch_end")
    assert not hooks.implemented("on_validation_batch_end")
    assert "on_validation_batch_end" in vars(hooks)  # instance-level no-op shadows the method
    assert hooks.on_validation_batch_end("T", "M", None, None, 0, 0) is None


def test_base_class_methods_are_not_registered() -> None:
    class WithDefaults:
        def on_fit_start(self, trainer, pl_module):
            raise AssertionError("the base's default must not be called")

    class Sub(WithDefaults):
        pass

    hooks = Lifecycle(callbacks=[Sub()], callback_base=WithDefaults)
    assert not hooks.implemented("on_fit_start")


def test_every_lifecycle_hook_has_a_facade_method() -> None:
    for short in CALLBACK_HOOKS:
        assert callable(getattr(Lifecycle, short)), short
