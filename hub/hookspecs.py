"""Hook specifications: every hook a plugin or callback can implement.

Two kinds, kept apart:

* **provider hooks** (``ember_loggers`` ... ``ember_callbacks``) return or yield typed
  registration records; the hub collects them from every plugin into a registry and a
  provider is then chosen *by name*, never by ``firstresult`` or registration order;
* **lifecycle hooks** (``ember_setup``, ``ember_on_train_batch_end`` ...) are 1:N events
  the trainer fires. A ``Callback`` writes them under their familiar names without the
  ``ember_`` prefix (``on_train_batch_end``), and pluggy's argument subsetting lets a
  plugin's ``@hookimpl`` take only the arguments it needs.

This module imports neither torch nor ``ember.trainer``: ``trainer`` and ``module`` are
typed by the Protocols of :mod:`ember.hub.views` (what a hook may rely on), tensors and
optimizers as ``Any``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy
from ember.hub.records import (
    AcceleratorSpec,
    CallbackSpec,
    LoggerSpec,
    PrecisionSpec,
    StrategySpec,
)
from ember.hub.views import ModuleView, TrainerView

PROJECT = "ember"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# --------------------------------------------------------------------------- providers


@hookspec
def ember_loggers() -> Iterable[LoggerSpec]:
    """Return (or yield) the experiment trackers this plugin provides.

    Called once at discovery. Keep the body cheap: name the factory with an import
    string so that the tracker's SDK is imported only when the logger is built.

    Example::

        @hookimpl
        def ember_loggers():
            yield LoggerSpec(
                name="wandb",
                factory="ember_wandb.logger:WandbLogger",
                description="Weights & Biases runs",
                options={"project": Option("str", description="W&B project")},
            )
    """


@hookspec
def ember_accelerators() -> Iterable[AcceleratorSpec]:
    """Return (or yield) the accelerators this plugin provides (``accelerator="NAME"``).

    Example::

        @hookimpl
        def ember_accelerators():
            return [AcceleratorSpec(name="xpu", factory="my_pkg.xpu:XPUAccelerator")]
    """


@hookspec
def ember_precisions() -> Iterable[PrecisionSpec]:
    """Return (or yield) the precision modes this plugin provides (``precision="NAME"``).

    Example::

        @hookimpl
        def ember_precisions():
            return [PrecisionSpec(name="fp8_mixed", factory="my_pkg.fp8:FP8Precision")]
    """


@hookspec
def ember_strategies() -> Iterable[StrategySpec]:
    """Return (or yield) the strategies this plugin provides (``strategy="NAME"``).

    Example::

        @hookimpl
        def ember_strategies():
            return [StrategySpec(name="deepspeed", factory="my_pkg.ds:DeepSpeedStrategy")]
    """


@hookspec
def ember_callbacks() -> Iterable[CallbackSpec]:
    """Return (or yield) the callbacks this plugin makes selectable by name.

    Example::

        @hookimpl
        def ember_callbacks():
            return [CallbackSpec(name="ema", factory="my_pkg.ema:EMACallback")]
    """


# --------------------------------------------------------------------------- lifecycle


@hookspec
def ember_setup(trainer: TrainerView, module: ModuleView, stage: str) -> None:
    """Fires at the start of fit, validate, test or predict, before any loop runs; ``stage`` is
    ``"fit"``, ``"validate"``, ``"test"`` or ``"predict"``. Build what the run needs here.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param stage: which entry point is running.

    Example::

        @hookimpl
        def ember_setup(trainer, stage):
            print("starting", stage)
    """


@hookspec
def ember_teardown(trainer: TrainerView, module: ModuleView, stage: str) -> None:
    """Fires once at the very end of fit, validate, test or predict, also after an error.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param stage: which entry point ran.

    Example::

        @hookimpl
        def ember_teardown(trainer, stage):
            print("done with", stage)
    """


@hookspec
def ember_on_fit_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when ``trainer.fit`` starts.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_fit_start(trainer):
            trainer.print("fit begins")
    """


@hookspec
def ember_on_fit_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when ``trainer.fit`` ends.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_fit_end(trainer):
            trainer.print("fit over")
    """


@hookspec
def ember_on_sanity_check_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when the sanity check (a few validation batches before training) starts.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_sanity_check_start(trainer):
            trainer.print("sanity_check begins")
    """


@hookspec
def ember_on_sanity_check_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when the sanity check (a few validation batches before training) ends.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_sanity_check_end(trainer):
            trainer.print("sanity_check over")
    """


@hookspec
def ember_on_train_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when the training loop starts, before its first epoch.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_train_start(module):
            module.train()
    """


@hookspec
def ember_on_train_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when the training loop ends.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_train_end(trainer):
            trainer.print("training finished")
    """


@hookspec
def ember_on_train_epoch_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires at the start of each training epoch.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_train_epoch_start(trainer):
            print(trainer.current_epoch)
    """


@hookspec
def ember_on_train_epoch_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires at the end of each training epoch, after epoch-level metrics are reduced,
    so ``trainer.callback_metrics`` holds this epoch's values.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_train_epoch_end(trainer):
            print(trainer.callback_metrics.get("val_loss"))
    """


@hookspec
def ember_on_train_batch_start(
    trainer: TrainerView, module: ModuleView, batch: Any, batch_idx: int
) -> None:
    """Fires before each training batch is processed.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param batch: the batch, already on the module's device.
    :param batch_idx: index of the batch within the epoch.

    Example::

        @hookimpl
        def ember_on_train_batch_start(batch_idx):
            ...
    """


@hookspec
def ember_on_train_batch_end(
    trainer: TrainerView, module: ModuleView, outputs: Any, batch: Any, batch_idx: int
) -> None:
    """Fires after each training batch; ``outputs`` is what the step returned.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param outputs: the step's return value (for training, a dict with ``loss``).
    :param batch: the batch.
    :param batch_idx: index of the batch within the epoch.

    Example::

        @hookimpl
        def ember_on_train_batch_end(outputs, batch_idx):
            ...
    """


@hookspec
def ember_on_validation_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when a validation run (inside fit, or ``trainer.validate``) starts, before its
    first epoch.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_validation_start(module):
            module.eval()
    """


@hookspec
def ember_on_validation_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when a validation run (inside fit, or ``trainer.validate``) ends.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_validation_end(trainer):
            trainer.print("validation finished")
    """


@hookspec
def ember_on_validation_epoch_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires at the start of each validation epoch.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_validation_epoch_start(trainer):
            print(trainer.current_epoch)
    """


@hookspec
def ember_on_validation_epoch_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires at the end of each validation epoch, after epoch-level metrics are reduced,
    so ``trainer.callback_metrics`` holds this epoch's values.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_validation_epoch_end(trainer):
            print(trainer.callback_metrics.get("val_loss"))
    """


@hookspec
def ember_on_validation_batch_start(
    trainer: TrainerView, module: ModuleView, batch: Any, batch_idx: int, dataloader_idx: int
) -> None:
    """Fires before each validation batch is processed.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param batch: the batch, already on the module's device.
    :param batch_idx: index of the batch within the epoch.
    :param dataloader_idx: index of the loader the batch came from.

    Example::

        @hookimpl
        def ember_on_validation_batch_start(batch_idx):
            ...
    """


@hookspec
def ember_on_validation_batch_end(
    trainer: TrainerView,
    module: ModuleView,
    outputs: Any,
    batch: Any,
    batch_idx: int,
    dataloader_idx: int,
) -> None:
    """Fires after each validation batch; ``outputs`` is what the step returned.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param outputs: the step's return value (for training, a dict with ``loss``).
    :param batch: the batch.
    :param batch_idx: index of the batch within the epoch.
    :param dataloader_idx: index of the loader the batch came from.

    Example::

        @hookimpl
        def ember_on_validation_batch_end(outputs, batch_idx):
            ...
    """


@hookspec
def ember_on_test_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when ``trainer.test`` starts, before its first epoch.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_test_start(module):
            module.eval()
    """


@hookspec
def ember_on_test_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when ``trainer.test`` ends.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_test_end(trainer):
            trainer.print("test finished")
    """


@hookspec
def ember_on_test_epoch_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires at the start of each test epoch.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_test_epoch_start(trainer):
            print(trainer.current_epoch)
    """


@hookspec
def ember_on_test_epoch_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires at the end of each test epoch, after epoch-level metrics are reduced,
    so ``trainer.callback_metrics`` holds this epoch's values.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_test_epoch_end(trainer):
            print(trainer.callback_metrics.get("val_loss"))
    """


@hookspec
def ember_on_test_batch_start(
    trainer: TrainerView, module: ModuleView, batch: Any, batch_idx: int, dataloader_idx: int
) -> None:
    """Fires before each test batch is processed.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param batch: the batch, already on the module's device.
    :param batch_idx: index of the batch within the epoch.
    :param dataloader_idx: index of the loader the batch came from.

    Example::

        @hookimpl
        def ember_on_test_batch_start(batch_idx):
            ...
    """


@hookspec
def ember_on_test_batch_end(
    trainer: TrainerView,
    module: ModuleView,
    outputs: Any,
    batch: Any,
    batch_idx: int,
    dataloader_idx: int,
) -> None:
    """Fires after each test batch; ``outputs`` is what the step returned.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param outputs: the step's return value (for training, a dict with ``loss``).
    :param batch: the batch.
    :param batch_idx: index of the batch within the epoch.
    :param dataloader_idx: index of the loader the batch came from.

    Example::

        @hookimpl
        def ember_on_test_batch_end(outputs, batch_idx):
            ...
    """


@hookspec
def ember_on_predict_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when ``trainer.predict`` starts, before its first epoch.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_predict_start(module):
            module.eval()
    """


@hookspec
def ember_on_predict_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires when ``trainer.predict`` ends.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_predict_end(trainer):
            trainer.print("predict finished")
    """


@hookspec
def ember_on_predict_epoch_start(trainer: TrainerView, module: ModuleView) -> None:
    """Fires at the start of each predict epoch.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_predict_epoch_start(trainer):
            print(trainer.current_epoch)
    """


@hookspec
def ember_on_predict_epoch_end(trainer: TrainerView, module: ModuleView) -> None:
    """Fires at the end of each predict epoch, after epoch-level metrics are reduced,
    so ``trainer.callback_metrics`` holds this epoch's values.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_predict_epoch_end(trainer):
            print(trainer.callback_metrics.get("val_loss"))
    """


@hookspec
def ember_on_predict_batch_start(
    trainer: TrainerView, module: ModuleView, batch: Any, batch_idx: int, dataloader_idx: int
) -> None:
    """Fires before each predict batch is processed.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param batch: the batch, already on the module's device.
    :param batch_idx: index of the batch within the epoch.
    :param dataloader_idx: index of the loader the batch came from.

    Example::

        @hookimpl
        def ember_on_predict_batch_start(batch_idx):
            ...
    """


@hookspec
def ember_on_predict_batch_end(
    trainer: TrainerView,
    module: ModuleView,
    outputs: Any,
    batch: Any,
    batch_idx: int,
    dataloader_idx: int,
) -> None:
    """Fires after each predict batch; ``outputs`` is what the step returned.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param outputs: the step's return value (for training, a dict with ``loss``).
    :param batch: the batch.
    :param batch_idx: index of the batch within the epoch.
    :param dataloader_idx: index of the loader the batch came from.

    Example::

        @hookimpl
        def ember_on_predict_batch_end(outputs, batch_idx):
            ...
    """


@hookspec
def ember_on_before_backward(trainer: TrainerView, module: ModuleView, loss: Any) -> None:
    """Fires just before ``loss.backward()`` in automatic optimization (and in ``manual_backward``).

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param loss: the (scaled-for-accumulation) loss tensor.

    Example::

        @hookimpl
        def ember_on_before_backward(loss):
            ...
    """


@hookspec
def ember_on_after_backward(trainer: TrainerView, module: ModuleView) -> None:
    """Fires after the backward pass, before gradients are unscaled or clipped.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.

    Example::

        @hookimpl
        def ember_on_after_backward(module):
            ...
    """


@hookspec
def ember_on_before_optimizer_step(
    trainer: TrainerView, module: ModuleView, optimizer: Any
) -> None:
    """Fires before ``optimizer.step()``, after gradients are unscaled; the place to inspect
    gradient norms.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param optimizer: the optimizer about to step.

    Example::

        @hookimpl
        def ember_on_before_optimizer_step(module, optimizer):
            ...
    """


@hookspec
def ember_on_before_zero_grad(trainer: TrainerView, module: ModuleView, optimizer: Any) -> None:
    """Fires before ``optimizer.zero_grad()``.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param optimizer: the optimizer whose gradients are about to be cleared.

    Example::

        @hookimpl
        def ember_on_before_zero_grad(optimizer):
            ...
    """


@hookspec
def ember_on_save_checkpoint(
    trainer: TrainerView, module: ModuleView, checkpoint: dict[str, Any]
) -> None:
    """Fires while a checkpoint dictionary is being built; add entries to ``checkpoint``.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param checkpoint: the dictionary that will be saved; mutate it in place.

    Example::

        @hookimpl
        def ember_on_save_checkpoint(checkpoint):
            checkpoint["my_state"] = {"seen": 3}
    """


@hookspec
def ember_on_load_checkpoint(
    trainer: TrainerView, module: ModuleView, checkpoint: dict[str, Any]
) -> None:
    """Fires when a checkpoint is restored, before training resumes.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param checkpoint: the loaded checkpoint dictionary.

    Example::

        @hookimpl
        def ember_on_load_checkpoint(checkpoint):
            print(checkpoint.get("my_state"))
    """


@hookspec
def ember_on_exception(trainer: TrainerView, module: ModuleView, exception: BaseException) -> None:
    """Fires when fit, validate, test or predict raises, before teardown; the exception is
    re-raised afterwards.

    :param trainer: the running ``Trainer``.
    :param module: the ``EmberModule`` being trained.
    :param exception: the exception that stopped the run.

    Example::

        @hookimpl
        def ember_on_exception(exception):
            print(type(exception).__name__)
    """
