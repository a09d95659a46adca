"""A fit that would do nothing, or part of nothing, says so (issue 13, item 16): each case
warns once, or raises where the run cannot be meant, instead of ending ``success``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from ember.trainer import MisconfigurationError
from ember.trainer.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, IterableDataset, TensorDataset
from trainer_helpers import TinyModel, make_loader


def empty_loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0).long()), batch_size=4)


def messages(record: Any) -> list[str]:
    return [str(w.message) for w in record]


def fit_quietly(trainer: Any, *args: Any, **kwargs: Any) -> list[str]:
    """Fit and return every warning raised meanwhile."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(*args, **kwargs)
    return messages(record)


class NoneStep(TinyModel):
    """training_step that never returns the loss (a forgotten ``return``)."""

    def training_step(self, batch: Any, batch_idx: int) -> None:
        super().training_step(batch, batch_idx)


def test_training_step_returning_none_for_a_whole_epoch_warns_once(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=3)
    with pytest.warns(UserWarning) as record:
        trainer.fit(NoneStep(), make_loader(48, 16))
    assert trainer.global_step == 0
    nothing = [m for m in messages(record) if "returned None for all" in m]
    assert nothing == [
        "training_step returned None for all 3 batch(es) of epoch 0, so no optimizer step was "
        "taken and nothing trained: return the loss tensor (or {'loss': loss}); None skips a "
        "batch on purpose"
    ]


def test_training_step_skipping_some_batches_does_not_warn(make_trainer: Any) -> None:
    class SkipFirst(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            return None if batch_idx == 0 else loss

    trainer = make_trainer(max_epochs=2)
    seen = fit_quietly(trainer, SkipFirst(), make_loader(48, 16))
    assert trainer.global_step == 4
    assert not [m for m in seen if "returned None" in m]


def test_validation_step_without_validation_data_warns(make_trainer: Any) -> None:
    with pytest.warns(UserWarning, match="TinyModel defines validation_step but fit has no "):
        make_trainer(max_epochs=1).fit(TinyModel(), make_loader(16, 16))


def test_an_empty_training_loader_is_an_error(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=1)
    with pytest.raises(MisconfigurationError) as info:
        trainer.fit(TinyModel(), empty_loader())
    assert str(info.value) == (
        "the training loader has no batches (len 0), so fit would train nothing: the dataset "
        "is empty, or smaller than batch_size with drop_last=True"
    )


def test_a_batch_size_larger_than_the_data_with_drop_last_is_an_error(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError, match="has no batches"):
        make_trainer(max_epochs=1).fit(TinyModel(), make_loader(8, 16, drop_last=True))


def test_an_empty_validation_loader_warns_and_is_skipped(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=1)
    with pytest.warns(UserWarning, match=r"the validation loader has no batches \(len 0\)"):
        trainer.fit(TinyModel(), make_loader(32, 16), empty_loader())
    assert trainer.global_step == 2
    assert not trainer.enable_validation


def test_limit_train_batches_zero_warns(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=1, limit_train_batches=0)
    with pytest.warns(UserWarning, match="limit_train_batches=0: fit trains no batch"):
        trainer.fit(TinyModel(), make_loader(32, 16), make_loader(16, 16))
    assert trainer.global_step == 0


def test_a_fraction_of_less_than_one_batch_is_an_error(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1, limit_train_batches=0.1).fit(TinyModel(), make_loader(64, 16))
    assert str(info.value) == (
        "limit_train_batches=0.1 of the loader's 4 batches is less than one batch, so none "
        "would run: pass at least limit_train_batches=0.25, an int number of batches, or "
        "limit_train_batches=0 to run none on purpose"
    )
    with pytest.raises(MisconfigurationError, match=r"limit_val_batches=0\.2 of the loader's 1 "):
        make_trainer(max_epochs=1, limit_val_batches=0.2).fit(
            TinyModel(), make_loader(32, 16), make_loader(16, 16)
        )


def test_a_single_use_generator_stops_training_with_a_warning(make_trainer: Any) -> None:
    """A generator is empty from the second epoch on: training stops there (not 999 empty
    epochs, each checkpointed), and says why."""
    batches = (b for b in make_loader(32, 16))
    trainer = make_trainer(max_epochs=5)
    with pytest.warns(UserWarning, match="yielded no batch in epoch 1 after yielding batches"):
        trainer.fit(TinyModel(), batches)
    assert trainer.global_step == 2
    assert trainer.current_epoch == 2


def test_an_iterable_dataset_yielding_nothing_is_an_error(make_trainer: Any) -> None:
    class Nothing(IterableDataset):
        def __iter__(self) -> Iterator[Any]:
            return iter(())

    with pytest.raises(MisconfigurationError, match="yielded no batch in epoch 0, so fit"):
        make_trainer(max_epochs=2).fit(TinyModel(), DataLoader(Nothing(), batch_size=None))


def test_a_reiterable_iterable_without_length_trains_every_epoch(make_trainer: Any) -> None:
    class Stream(IterableDataset):
        def __iter__(self) -> Iterator[Any]:
            return iter(make_loader(32, 16))

    trainer = make_trainer(max_epochs=3)
    seen = fit_quietly(trainer, TinyModel(), DataLoader(Stream(), batch_size=None))
    assert trainer.global_step == 6
    assert not [m for m in seen if "yielded no batch" in m]


def test_log_every_n_steps_longer_than_the_run_warns(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=2, log_every_n_steps=50)
    with pytest.warns(UserWarning) as record:
        trainer.fit(TinyModel(), make_loader(32, 16))
    assert (
        "log_every_n_steps=50 is more than the 4 optimizer step(s) this fit takes, so values "
        "logged per step (self.log(..., on_step=True), the default in training_step) are "
        "never recorded: set log_every_n_steps to at most 4, or log with on_epoch=True"
    ) in messages(record)


def test_log_every_n_steps_within_the_run_does_not_warn(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=3, log_every_n_steps=4)  # 6 steps in all
    seen = fit_quietly(trainer, TinyModel(), make_loader(32, 16), make_loader(16, 16))
    assert not [m for m in seen if "log_every_n_steps" in m]
    assert "train_loss" in trainer.logged_metrics


def test_an_optimizer_over_none_of_the_modules_parameters_is_an_error(make_trainer: Any) -> None:
    class Elsewhere(TinyModel):
        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(torch.nn.Linear(8, 3).parameters(), lr=0.1)

    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(Elsewhere(), make_loader(16, 16))
    assert str(info.value).startswith(
        "SGD from Elsewhere.configure_optimizers steps 2 tensor(s), none of which is a "
        "parameter of Elsewhere, so training would change nothing of it"
    )


def test_an_optimizer_over_some_foreign_tensors_warns(make_trainer: Any) -> None:
    class Extra(TinyModel):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.ones(3, requires_grad=True)  # a plain tensor: not registered

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD([*self.parameters(), self.scale], lr=0.1)

    with pytest.warns(UserWarning, match=r"steps 1 of its 5 tensor\(s\) that are not parameters"):
        make_trainer(max_epochs=1).fit(Extra(), make_loader(16, 16))


@pytest.mark.parametrize("callback", ["checkpoint", "early_stopping"])
def test_monitoring_a_validation_metric_without_validation_says_why(
    make_trainer: Any, callback: str
) -> None:
    """Regression: the hint suggested 'train_loss' for a missing 'val_loss'."""
    if callback == "checkpoint":
        monitor: Any = ModelCheckpoint(monitor="val_loss")
        trainer = make_trainer(max_epochs=1, callbacks=[monitor], enable_checkpointing=None)
    else:
        monitor = EarlyStopping(monitor="val_loss")
        trainer = make_trainer(max_epochs=1, callbacks=[monitor])
    name = type(monitor).__name__
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if callback == "checkpoint":
            trainer.fit(TinyModel(), make_loader(16, 16))
        else:
            with pytest.raises(RuntimeError) as info:
                trainer.fit(TinyModel(), make_loader(16, 16))
            assert "Did you mean" not in str(info.value)
            assert "this fit does not validate (no validation data was given)" in str(info.value)
    seen = messages(record)
    assert (
        f"{name}(monitor='val_loss') watches a validation metric, but this fit does not "
        "validate (no validation data was given), so it is never logged: add validation "
        "data, or monitor a metric that training logs"
    ) in seen
    assert not [m for m in seen if "Did you mean 'train_loss'" in m]


def test_monitoring_a_validation_metric_with_limit_val_batches_zero(make_trainer: Any) -> None:
    trainer = make_trainer(
        max_epochs=1,
        limit_val_batches=0,
        callbacks=[ModelCheckpoint(monitor="val_loss")],
        enable_checkpointing=None,
    )
    with pytest.warns(UserWarning, match=r"does not validate \(limit_val_batches=0\)"):
        trainer.fit(TinyModel(), make_loader(16, 16), make_loader(16, 16))


def test_a_validating_fit_warns_about_none_of_this(make_trainer: Any) -> None:
    trainer = make_trainer(
        max_epochs=2,
        log_every_n_steps=1,
        callbacks=[ModelCheckpoint(monitor="val_loss"), EarlyStopping(monitor="val_loss")],
        enable_checkpointing=None,
    )
    assert fit_quietly(trainer, TinyModel(), make_loader(32, 16), make_loader(16, 16)) == []


# ---------------------------------------------------------------------- more of the kind
@pytest.mark.parametrize("flag", ["max_epochs", "max_steps"])
def test_a_zero_training_length_warns(make_trainer: Any, flag: str) -> None:
    trainer = make_trainer(**{flag: 0})
    with pytest.warns(UserWarning, match=f"^{flag}=0: fit trains nothing"):
        trainer.fit(TinyModel(), make_loader(32, 16), make_loader(16, 16))
    assert trainer.global_step == 0


def test_validating_less_often_than_the_run_lasts_warns(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=2, check_val_every_n_epoch=5)
    with pytest.warns(UserWarning, match="check_val_every_n_epoch=5 is more than max_epochs=2"):
        trainer.fit(TinyModel(), make_loader(32, 16), make_loader(16, 16))


def test_a_checkpointer_that_saves_nothing_warns(make_trainer: Any) -> None:
    trainer = make_trainer(
        max_epochs=1, callbacks=[ModelCheckpoint(save_top_k=0)], enable_checkpointing=None
    )
    with pytest.warns(UserWarning, match=r"ModelCheckpoint\(save_top_k=0\) without save_last"):
        trainer.fit(TinyModel(), make_loader(32, 16), make_loader(16, 16))


@pytest.mark.parametrize(
    ("entry", "flags", "reason"),
    [
        ("validate", {}, "its loaders have no batches"),
        ("test", {"limit_test_batches": 0}, "limit_test_batches=0"),
        ("predict", {"limit_predict_batches": 0}, "limit_predict_batches=0"),
    ],
)
def test_an_evaluation_that_runs_no_batch_warns(
    make_trainer: Any, entry: str, flags: dict[str, Any], reason: str
) -> None:
    trainer = make_trainer(**flags)
    data = empty_loader() if entry == "validate" else make_loader(16, 16)
    with pytest.warns(UserWarning, match=rf"^{entry}\(\) runs no batch \({reason}\)"):
        getattr(trainer, entry)(TinyModel(), data)


def test_an_optimizer_over_frozen_parameters_only_warns(make_trainer: Any) -> None:
    class FrozenBackbone(TinyModel):
        def __init__(self) -> None:
            super().__init__()
            self.net[0].requires_grad_(False)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.net[0].parameters(), lr=0.1)

    with pytest.warns(UserWarning, match=r"steps only parameters with requires_grad=False"):
        make_trainer(max_epochs=1).fit(FrozenBackbone(), make_loader(16, 16))
