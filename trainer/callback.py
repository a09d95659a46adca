"""The ``Callback`` base class: code that reacts to training events without living in
the model.

A subclass writes hooks under the names Lightning users know and the hub adapts them
(``ember.hub.lifecycle.callback_plugin``); this module defines no hook methods itself,
so an event that no callback overrides costs nothing in the training loop. Importing it
imports no torch.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: the roles a callback may declare (``Callback.role``); the trainer adds a default
#: progress bar, model summary and checkpointer only when no given callback has the role
ROLES = ("progress_bar", "model_summary", "checkpointer", "early_stopping")


def callback_role(callback: object) -> str | None:
    """The role ``callback`` declares (any object may set a ``role`` attribute)."""
    role = getattr(callback, "role", None)
    return role if isinstance(role, str) else None


class Callback:
    """Base class of every callback: subclass it and define the hooks you need.

    Hooks are plain methods named after the event; define only the ones you use. Each
    takes the event's arguments in the order below, under any names
    (``def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx)`` works
    as in Lightning), or a subset of them by exactly these names
    (``def on_train_batch_end(self, trainer, outputs)``)::

        setup(trainer, module, stage)
        teardown(trainer, module, stage)
        on_fit_start(trainer, module)
        on_fit_end(trainer, module)
        on_sanity_check_start(trainer, module)
        on_sanity_check_end(trainer, module)
        on_train_start(trainer, module)
        on_train_end(trainer, module)
        on_train_epoch_start(trainer, module)
        on_train_epoch_end(trainer, module)
        on_train_batch_start(trainer, module, batch, batch_idx)
        on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        on_validation_start(trainer, module)
        on_validation_end(trainer, module)
        on_validation_epoch_start(trainer, module)
        on_validation_epoch_end(trainer, module)
        on_validation_batch_start(trainer, module, batch, batch_idx, dataloader_idx)
        on_validation_batch_end(trainer, module, outputs, batch, batch_idx, dataloader_idx)
        on_test_start(trainer, module)
        on_test_end(trainer, module)
        on_test_epoch_start(trainer, module)
        on_test_epoch_end(trainer, module)
        on_test_batch_start(trainer, module, batch, batch_idx, dataloader_idx)
        on_test_batch_end(trainer, module, outputs, batch, batch_idx, dataloader_idx)
        on_predict_start(trainer, module)
        on_predict_end(trainer, module)
        on_predict_epoch_start(trainer, module)
        on_predict_epoch_end(trainer, module)
        on_predict_batch_start(trainer, module, batch, batch_idx, dataloader_idx)
        on_predict_batch_end(trainer, module, outputs, batch, batch_idx, dataloader_idx)
        on_before_backward(trainer, module, loss)
        on_after_backward(trainer, module)
        on_before_optimizer_step(trainer, module, optimizer)
        on_before_zero_grad(trainer, module, optimizer)
        on_save_checkpoint(trainer, module, checkpoint)
        on_load_checkpoint(trainer, module, checkpoint)
        on_exception(trainer, module, exception)

    The list is ``ember.hub.CALLBACK_HOOKS``. A method whose name starts with ``on_`` but
    is not a hook (``on_train_epoch_ned``) is an error when the ``Trainer`` is built; name
    helpers with a leading underscore. Callbacks run in the order they were given.

    State that must survive a restart goes through :meth:`state_dict` and
    :meth:`load_state_dict`; checkpoints file it under :attr:`state_key`.

    A callback that *is* the run's progress bar, model summary or checkpointer says so
    with :attr:`role`; the trainer then adds no default of that role. Any callback may
    publish metrics with ``trainer.log_metrics({...})``.
    """

    #: ``"progress_bar"``, ``"model_summary"``, ``"checkpointer"``, ``"early_stopping"``
    #: or ``None``: what this callback stands for in the run (see :data:`ROLES`)
    role: ClassVar[str | None] = None

    @property
    def state_key(self) -> str:
        """The key this callback's state is stored under in a checkpoint.

        The class's qualified name by default. A callback of which a run may hold several
        instances (an ``EarlyStopping`` per monitored metric) overrides it with
        :meth:`_generate_state_key`, so each instance gets back its own state.
        """
        return type(self).__qualname__

    def _generate_state_key(self, **kwargs: Any) -> str:
        """A state key made of the class name and the arguments that tell instances apart.

        The format is Lightning's (``EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}``),
        so checkpoint keys read the same in both.
        """
        return f"{type(self).__qualname__}{kwargs!r}"

    def state_dict(self) -> dict[str, Any]:
        """The callback's state to save in a checkpoint (empty by default)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state that :meth:`state_dict` returned (nothing to do by default)."""
