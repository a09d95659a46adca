"""Bad input gets an error that names what to change."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ember.trainer import EmberModule, MisconfigurationError, NonFiniteLossError
from trainer_helpers import TinyModel, make_loader


class NaNAt(TinyModel):
    """Returns a NaN loss at global batch ``bad``."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.bad = bad
        self.count = 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self.count += 1
        return loss * float("nan") if self.count - 1 == self.bad else loss


def test_nan_loss_names_epoch_batch_and_step(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=3, log_every_n_steps=4)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit(NaNAt(bad=6), make_loader(80, 16))  # epoch 1, batch 1
    assert str(info.value) == (
        "training_step returned a loss of nan at epoch 1, batch 1 (global step 6). Look for a "
        "too-high learning rate, bad inputs, or a log/division of zero; "
        "Trainer(detect_anomaly=True) makes torch name the operation that produced it."
    )
    # found at the next flush point (step 8), without a host read per step
    assert trainer.global_step == 8


def test_infinite_loss_is_caught_at_epoch_end(make_trainer: Any) -> None:
    class Inf(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = super().training_step(batch, batch_idx)
            return loss + float("inf") if batch_idx == 1 else loss

    with pytest.raises(
        NonFiniteLossError, match=r"loss of inf at epoch 0, batch 1 \(global step 1\)"
    ):
        make_trainer(max_epochs=1).fit(Inf(), make_loader(48, 16))


def test_missing_training_data(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer().fit(TinyModel())
    assert str(info.value) == (
        "fit() needs training data: pass trainer.fit(model, train_dataloader), a datamodule "
        "with train_dataloader(), or define train_dataloader() on TinyModel"
    )


def test_missing_training_step(make_trainer: Any) -> None:
    class NoStep(EmberModule):
        def configure_optimizers(self) -> None:
            return None

    with pytest.raises(MisconfigurationError) as info:
        make_trainer().fit(NoStep(), make_loader(16, 16))
    assert str(info.value) == (
        "NoStep has no training_step: define `def training_step(self, batch, batch_idx)` "
        "returning the loss"
    )


def test_training_step_returning_something_else(make_trainer: Any) -> None:
    class Wrong(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return [super().training_step(batch, batch_idx)]

    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(Wrong(), make_loader(16, 16))
    assert str(info.value) == (
        "training_step returned list: return the loss tensor, a dict with a 'loss' key, or "
        "None to skip the optimizer step"
    )

    class NoLoss(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return {"los": super().training_step(batch, batch_idx)}

    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(NoLoss(), make_loader(16, 16))
    assert str(info.value) == (
        "training_step returned a dict without a 'loss' key (keys: 'los'): add the loss under "
        "'loss'"
    )


def test_not_an_ember_module(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer().fit(torch.nn.Linear(2, 2), make_loader(16, 16))  # type: ignore[arg-type]
    assert str(info.value) == (
        "expected an EmberModule, got Linear: subclass ember.trainer.EmberModule (from "
        "ember.trainer import EmberModule)"
    )


def test_dataloaders_and_datamodule_together(make_trainer: Any) -> None:
    from ember.trainer import EmberDataModule

    with pytest.raises(MisconfigurationError) as info:
        make_trainer().fit(TinyModel(), make_loader(16, 16), datamodule=EmberDataModule())
    assert str(info.value) == "fit() got both dataloaders and a datamodule: pass one or the other"


def test_several_training_loaders(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer().fit(TinyModel(), [make_loader(16, 16), make_loader(16, 16)])
    assert str(info.value) == (
        "fit() needs exactly one training loader; got 2. Combine several datasets into one "
        "(torch.utils.data.ConcatDataset)."
    )


def test_validate_before_any_model(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer().validate()
    assert str(info.value) == (
        "validate() needs a model: pass one, e.g. trainer.validate(model, ...), or call "
        "trainer.fit(model) first"
    )


def test_validation_data_without_validation_step_warns(make_trainer: Any) -> None:
    class NoVal(TinyModel):
        validation_step = EmberModule.validation_step

    with pytest.warns(UserWarning, match="NoVal has no validation_step: validation is skipped"):
        make_trainer(max_epochs=1).fit(NoVal(), make_loader(16, 16), make_loader(16, 16))
