"""The typed methods of :class:`ember.hub.Lifecycle`, one per lifecycle hookspec.

Generated from hub/hookspecs.py by scripts/gen_lifecycle.py: do not edit by hand (a test
fails when this file and the hookspecs disagree).
"""

from __future__ import annotations

from typing import Any

from ember.hub.views import ModuleView, TrainerView


class LifecycleEvents:
    """Fire each lifecycle hook through ``self._hook`` (a pluggy hook relay)."""

    _hook: Any

    def setup(self, trainer: TrainerView, module: ModuleView, stage: str) -> None:
        """Fire ``ember_setup``."""
        self._hook.ember_setup(trainer=trainer, module=module, stage=stage)

    def teardown(self, trainer: TrainerView, module: ModuleView, stage: str) -> None:
        """Fire ``ember_teardown``."""
        self._hook.ember_teardown(trainer=trainer, module=module, stage=stage)

    def on_fit_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_fit_start``."""
        self._hook.ember_on_fit_start(trainer=trainer, module=module)

    def on_fit_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_fit_end``."""
        self._hook.ember_on_fit_end(trainer=trainer, module=module)

    def on_sanity_check_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_sanity_check_start``."""
        self._hook.ember_on_sanity_check_start(trainer=trainer, module=module)

    def on_sanity_check_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_sanity_check_end``."""
        self._hook.ember_on_sanity_check_end(trainer=trainer, module=module)

    def on_train_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_train_start``."""
        self._hook.ember_on_train_start(trainer=trainer, module=module)

    def on_train_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_train_end``."""
        self._hook.ember_on_train_end(trainer=trainer, module=module)

    def on_train_epoch_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_train_epoch_start``."""
        self._hook.ember_on_train_epoch_start(trainer=trainer, module=module)

    def on_train_epoch_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_train_epoch_end``."""
        self._hook.ember_on_train_epoch_end(trainer=trainer, module=module)

    def on_train_batch_start(
        self,
        trainer: TrainerView,
        module: ModuleView,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Fire ``ember_on_train_batch_start``."""
        self._hook.ember_on_train_batch_start(
            trainer=trainer,
            module=module,
            batch=batch,
            batch_idx=batch_idx,
        )

    def on_train_batch_end(
        self,
        trainer: TrainerView,
        module: ModuleView,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Fire ``ember_on_train_batch_end``."""
        self._hook.ember_on_train_batch_end(
            trainer=trainer,
            module=module,
            outputs=outputs,
            batch=batch,
            batch_idx=batch_idx,
        )

    def on_validation_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_validation_start``."""
        self._hook.ember_on_validation_start(trainer=trainer, module=module)

    def on_validation_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_validation_end``."""
        self._hook.ember_on_validation_end(trainer=trainer, module=module)

    def on_validation_epoch_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_validation_epoch_start``."""
        self._hook.ember_on_validation_epoch_start(trainer=trainer, module=module)

    def on_validation_epoch_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_validation_epoch_end``."""
        self._hook.ember_on_validation_epoch_end(trainer=trainer, module=module)

    def on_validation_batch_start(
        self,
        trainer: TrainerView,
        module: ModuleView,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Fire ``ember_on_validation_batch_start``."""
        self._hook.ember_on_validation_batch_start(
            trainer=trainer,
            module=module,
            batch=batch,
            batch_idx=batch_idx,
            dataloader_idx=dataloader_idx,
        )

    def on_validation_batch_end(
        self,
        trainer: TrainerView,
        module: ModuleView,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Fire ``ember_on_validation_batch_end``."""
        self._hook.ember_on_validation_batch_end(
            trainer=trainer,
            module=module,
            outputs=outputs,
            batch=batch,
            batch_idx=batch_idx,
            dataloader_idx=dataloader_idx,
        )

    def on_test_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_test_start``."""
        self._hook.ember_on_test_start(trainer=trainer, module=module)

    def on_test_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_test_end``."""
        self._hook.ember_on_test_end(trainer=trainer, module=module)

    def on_test_epoch_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_test_epoch_start``."""
        self._hook.ember_on_test_epoch_start(trainer=trainer, module=module)

    def on_test_epoch_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_test_epoch_end``."""
        self._hook.ember_on_test_epoch_end(trainer=trainer, module=module)

    def on_test_batch_start(
        self,
        trainer: TrainerView,
        module: ModuleView,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Fire ``ember_on_test_batch_start``."""
        self._hook.ember_on_test_batch_start(
            trainer=trainer,
            module=module,
            batch=batch,
            batch_idx=batch_idx,
            dataloader_idx=dataloader_idx,
        )

    def on_test_batch_end(
        self,
        trainer: TrainerView,
        module: ModuleView,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Fire ``ember_on_test_batch_end``."""
        self._hook.ember_on_test_batch_end(
            trainer=trainer,
            module=module,
            outputs=outputs,
            batch=batch,
            batch_idx=batch_idx,
            dataloader_idx=dataloader_idx,
        )

    def on_predict_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_predict_start``."""
        self._hook.ember_on_predict_start(trainer=trainer, module=module)

    def on_predict_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_predict_end``."""
        self._hook.ember_on_predict_end(trainer=trainer, module=module)

    def on_predict_epoch_start(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_predict_epoch_start``."""
        self._hook.ember_on_predict_epoch_start(trainer=trainer, module=module)

    def on_predict_epoch_end(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_predict_epoch_end``."""
        self._hook.ember_on_predict_epoch_end(trainer=trainer, module=module)

    def on_predict_batch_start(
        self,
        trainer: TrainerView,
        module: ModuleView,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Fire ``ember_on_predict_batch_start``."""
        self._hook.ember_on_predict_batch_start(
            trainer=trainer,
            module=module,
            batch=batch,
            batch_idx=batch_idx,
            dataloader_idx=dataloader_idx,
        )

    def on_predict_batch_end(
        self,
        trainer: TrainerView,
        module: ModuleView,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Fire ``ember_on_predict_batch_end``."""
        self._hook.ember_on_predict_batch_end(
            trainer=trainer,
            module=module,
            outputs=outputs,
            batch=batch,
            batch_idx=batch_idx,
            dataloader_idx=dataloader_idx,
        )

    def on_before_backward(self, trainer: TrainerView, module: ModuleView, loss: Any) -> None:
        """Fire ``ember_on_before_backward``."""
        self._hook.ember_on_before_backward(trainer=trainer, module=module, loss=loss)

    def on_after_backward(self, trainer: TrainerView, module: ModuleView) -> None:
        """Fire ``ember_on_after_backward``."""
        self._hook.ember_on_after_backward(trainer=trainer, module=module)

    def on_before_optimizer_step(
        self,
        trainer: TrainerView,
        module: ModuleView,
        optimizer: Any,
    ) -> None:
        """Fire ``ember_on_before_optimizer_step``."""
        self._hook.ember_on_before_optimizer_step(
            trainer=trainer,
            module=module,
            optimizer=optimizer,
        )

    def on_before_zero_grad(self, trainer: TrainerView, module: ModuleView, optimizer: Any) -> None:
        """Fire ``ember_on_before_zero_grad``."""
        self._hook.ember_on_before_zero_grad(trainer=trainer, module=module, optimizer=optimizer)

    def on_save_checkpoint(
        self,
        trainer: TrainerView,
        module: ModuleView,
        checkpoint: dict[str, Any],
    ) -> None:
        """Fire ``ember_on_save_checkpoint``."""
        self._hook.ember_on_save_checkpoint(trainer=trainer, module=module, checkpoint=checkpoint)

    def on_load_checkpoint(
        self,
        trainer: TrainerView,
        module: ModuleView,
        checkpoint: dict[str, Any],
    ) -> None:
        """Fire ``ember_on_load_checkpoint``."""
        self._hook.ember_on_load_checkpoint(trainer=trainer, module=module, checkpoint=checkpoint)

    def on_exception(
        self,
        trainer: TrainerView,
        module: ModuleView,
        exception: BaseException,
    ) -> None:
        """Fire ``ember_on_exception``."""
        self._hook.ember_on_exception(trainer=trainer, module=module, exception=exception)
