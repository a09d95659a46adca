"""Where batches come from: DataLoaders, plain lists, iterables without a length, several
validation loaders, data modules, and what validate/test/predict return."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ember.trainer import EmberDataModule, MisconfigurationError
from torch.utils.data import DataLoader, IterableDataset
from trainer_helpers import TinyModel, make_dataset, make_loader


class Stream(IterableDataset):
    """An iterable dataset without ``__len__``: ``n`` rows, then it stops."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Any:
        x, y = make_dataset(self.n).tensors
        return iter(zip(x, y, strict=True))


def test_a_plain_list_of_batches_is_a_loader(make_trainer: Any) -> None:
    batches = list(make_loader(48, 16))
    trainer = make_trainer(max_epochs=2)
    trainer.fit(TinyModel(), batches, batches)
    assert trainer.global_step == 6
    assert trainer.num_training_batches == 3
    assert "val_loss" in trainer.callback_metrics


def test_iterable_dataset_without_length(make_trainer: Any) -> None:
    train = DataLoader(Stream(80), batch_size=16)
    trainer = make_trainer(max_epochs=2, accumulate_grad_batches=2)
    trainer.fit(TinyModel(), train, DataLoader(Stream(32), batch_size=16))
    assert trainer.num_training_batches == float("inf")
    # 5 batches per epoch, accumulating 2: steps after batches 2, 4 and the last one
    assert trainer.global_step == 6
    assert "val_loss" in trainer.callback_metrics


def test_iterable_without_length_and_a_batch_limit(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=1, limit_train_batches=3, val_check_interval=2)
    trainer.fit(TinyModel(), DataLoader(Stream(80), batch_size=16), make_loader(16, 16))
    assert trainer.global_step == 3


def test_fraction_of_an_iterable_without_length(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer(limit_train_batches=0.5).fit(
            TinyModel(), DataLoader(Stream(32), batch_size=16)
        )
    assert str(info.value) == (
        "limit_train_batches=0.5 is a fraction of the epoch, but the loader has no length (an "
        "IterableDataset or a generator): pass an int number of batches instead"
    )


def test_several_validation_loaders(make_trainer: Any) -> None:
    seen: list[tuple[int, int]] = []
    gathered: list[Any] = []

    class Model(TinyModel):
        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
            seen.append((dataloader_idx, batch_idx))
            return super().validation_step(batch, batch_idx, dataloader_idx)

        def validation_epoch_end(self, outputs: list[list[torch.Tensor]]) -> None:
            gathered.append([len(o) for o in outputs])

    trainer = make_trainer(max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(Model(), make_loader(32, 16), [make_loader(32, 16), make_loader(48, 16, seed=3)])
    assert seen == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert gathered == [[2, 3]]
    assert {"val_loss/dataloader_idx_0", "val_loss/dataloader_idx_1"} <= set(trainer.logged_metrics)
    assert trainer.num_val_batches == [2, 3]
    assert len(trainer.val_dataloaders) == 2


class Data(EmberDataModule):
    """A data module that records its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def prepare_data(self) -> None:
        self.calls.append("prepare_data")

    def setup(self, stage: str) -> None:
        self.calls.append(f"setup {stage}")

    def teardown(self, stage: str) -> None:
        self.calls.append(f"teardown {stage}")

    def train_dataloader(self) -> DataLoader:
        return make_loader(32, 16)

    def val_dataloader(self) -> DataLoader:
        return make_loader(16, 16)

    def test_dataloader(self) -> DataLoader:
        return make_loader(16, 8)

    def predict_dataloader(self) -> list[torch.Tensor]:
        return [torch.zeros(4, 8), torch.ones(2, 8)]


def test_datamodule_through_every_entry_point(make_trainer: Any) -> None:
    data = Data()
    model = TinyModel()
    trainer = make_trainer(max_epochs=1)
    trainer.fit(model, datamodule=data)
    assert trainer.datamodule is data and data.trainer is trainer
    assert trainer.global_step == 2
    (metrics,) = trainer.test(datamodule=data, verbose=False)
    assert set(metrics) == {"test_loss"}
    predictions = trainer.predict(datamodule=data)
    assert [p.shape for p in predictions] == [torch.Size([4, 3]), torch.Size([2, 3])]
    assert data.calls == [
        "prepare_data",
        "setup fit",
        "teardown fit",
        "prepare_data",
        "setup test",
        "teardown test",
        "prepare_data",
        "setup predict",
        "teardown predict",
    ]


def test_fit_accepts_a_datamodule_positionally(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=1)
    trainer.fit(TinyModel(), Data())
    assert trainer.global_step == 2


def test_validate_returns_epoch_metrics_per_loader(make_trainer: Any) -> None:
    trainer = make_trainer()
    model = TinyModel()
    (single,) = trainer.validate(model, make_loader(32, 16), verbose=False)
    assert set(single) == {"val_loss"} and isinstance(single["val_loss"], float)
    results = trainer.test(model, [make_loader(16, 16), make_loader(16, 16, seed=4)], verbose=False)
    assert [set(r) for r in results] == [
        {"test_loss/dataloader_idx_0"},
        {"test_loss/dataloader_idx_1"},
    ]
    assert trainer.num_test_batches == [1, 1]


def test_validate_without_data_or_step(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer().validate(TinyModel())
    assert str(info.value) == (
        "validate() needs data: pass dataloaders=..., a datamodule with val_dataloader(), or "
        "define val_dataloader() on TinyModel"
    )

    class NoTest(TinyModel):
        test_step = TinyModel.__mro__[1].test_step

    with pytest.raises(MisconfigurationError) as info:
        make_trainer().test(NoTest(), make_loader(16, 16))
    assert str(info.value) == (
        "NoTest has no test_step: define `def test_step(self, batch, batch_idx)` to test"
    )


def test_predict_outputs(make_trainer: Any) -> None:
    model = TinyModel()
    trainer = make_trainer()
    out = trainer.predict(model, [torch.zeros(3, 8)])
    assert len(out) == 1 and out[0].shape == (3, 3)
    x = make_dataset(16).tensors[0]
    several = trainer.predict(model, [DataLoader(x, batch_size=8), DataLoader(x, batch_size=16)])
    assert [len(o) for o in several] == [2, 1]
    assert trainer.predict(model, [torch.zeros(3, 8)], return_predictions=False) is None
    assert model.training  # back in the mode it was in


def test_predict_step_with_several_loaders_gets_the_loader_index(make_trainer: Any) -> None:
    class Model(TinyModel):
        def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> int:
            return dataloader_idx

    out = make_trainer().predict(Model(), [DataLoader([1, 2]), DataLoader([3])])
    assert out == [[0, 0], [1]]


def test_log_in_predict_is_an_error(make_trainer: Any) -> None:
    class Model(TinyModel):
        def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
            self.log("p", 1.0)

    with pytest.raises(MisconfigurationError) as info:
        make_trainer().predict(Model(), [torch.zeros(1, 8)])
    assert str(info.value) == (
        "self.log('p', ...) was called during predict, which records no metrics: return what "
        "you need from predict_step instead"
    )


def test_batch_transfer_hooks(make_trainer: Any) -> None:
    calls: list[str] = []

    class Model(TinyModel):
        def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            calls.append("before")
            return batch

        def transfer_batch_to_device(
            self, batch: Any, device: torch.device, dataloader_idx: int
        ) -> Any:
            calls.append(f"transfer {device.type}")
            return batch

        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            calls.append("after")
            return batch

    make_trainer(max_epochs=1, limit_train_batches=1).fit(Model(), make_loader(16, 16))
    assert calls == ["before", "transfer cpu", "after"]


def test_shuffling_is_per_epoch_and_the_sampler_hears_the_epoch(make_trainer: Any) -> None:
    epochs: list[int] = []

    class Sampler(torch.utils.data.SequentialSampler):
        def set_epoch(self, epoch: int) -> None:
            epochs.append(epoch)

    data = make_dataset(32)
    make_trainer(max_epochs=3).fit(
        TinyModel(), DataLoader(data, batch_size=16, sampler=Sampler(data))
    )
    assert epochs == [0, 1, 2]


def test_a_dict_of_loaders_is_refused(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        make_trainer().validate(TinyModel(), {"a": make_loader(16, 16)})
    assert str(info.value) == (
        "got a dict of loaders for val_dataloader (keys 'a'): pass one loader, or a list of "
        "DataLoaders"
    )
