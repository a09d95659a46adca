"""Trainer flags: how much data runs, when validation runs, when training stops, and the
errors bad values give."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import torch
from ember.trainer import Callback, MisconfigurationError, Trainer
from torch.utils.data import DataLoader
from trainer_helpers import TinyModel, make_dataset, make_loader


class Counting(TinyModel):
    """Records which batches ran where: ``train`` (epoch, batch_idx), ``val`` and
    ``sanity`` (epoch, batch_idx, dataloader_idx), ``test``, and data reloads."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, list[Any]] = {"train": [], "val": [], "sanity": [], "test": []}
        self.loads = {"train": 0, "val": 0}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.seen["train"].append((self.current_epoch, batch_idx))
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        kind = "sanity" if self.trainer.sanity_checking else "val"
        self.seen[kind].append((self.current_epoch, batch_idx, dataloader_idx))
        return super().validation_step(batch, batch_idx)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        self.seen["test"].append(batch_idx)
        return super().test_step(batch, batch_idx)

    def train_dataloader(self) -> DataLoader:
        self.loads["train"] += 1
        return make_loader(80, 16)  # 5 batches

    def val_dataloader(self) -> DataLoader:
        self.loads["val"] += 1
        return make_loader(48, 16)  # 3 batches


def fit(make_trainer: Any, **flags: Any) -> tuple[Counting, Trainer]:
    model = Counting()
    trainer = make_trainer(**flags)
    trainer.fit(model)
    return model, trainer


def test_defaults_follow_lightning() -> None:
    trainer = Trainer(enable_progress_bar=False, enable_model_summary=False)
    assert trainer.max_epochs == 1000
    assert trainer.max_steps == -1
    assert trainer.num_sanity_val_steps == 2
    assert trainer.log_every_n_steps == 50
    assert trainer.default_root_dir
    assert Trainer(max_steps=10, enable_progress_bar=False).max_epochs == -1
    assert trainer.is_global_zero and trainer.world_size == 1 and trainer.global_rank == 0


def test_limit_batches_as_count_and_fraction(make_trainer: Any) -> None:
    model, trainer = fit(make_trainer, max_epochs=1, limit_train_batches=2, limit_val_batches=0.34)
    assert model.seen["train"] == [(0, 0), (0, 1)]
    assert [b for _, b, _ in model.seen["val"]] == [0]
    assert trainer.num_training_batches == 2
    assert trainer.num_val_batches == [1]


def test_limit_val_batches_zero_disables_validation(make_trainer: Any) -> None:
    model, _ = fit(make_trainer, max_epochs=1, limit_val_batches=0)
    assert model.seen["val"] == [] and model.seen["sanity"] == []


def test_num_sanity_val_steps(make_trainer: Any) -> None:
    model, _ = fit(make_trainer, max_epochs=1)
    assert model.seen["sanity"] == [(0, 0, 0), (0, 1, 0)]
    model, _ = fit(make_trainer, max_epochs=1, num_sanity_val_steps=-1)
    assert len(model.seen["sanity"]) == 3
    model, _ = fit(make_trainer, max_epochs=1, num_sanity_val_steps=0)
    assert model.seen["sanity"] == []


def test_sanity_check_leaves_no_metrics_behind(make_trainer: Any) -> None:
    seen: list[Any] = []

    class Probe(Callback):
        def on_train_start(self, trainer: Any) -> None:
            seen.append(dict(trainer.callback_metrics))

    fit(make_trainer, max_epochs=1, callbacks=[Probe()])
    assert seen == [{}]


def test_val_check_interval_fraction(make_trainer: Any) -> None:
    model, _ = fit(make_trainer, max_epochs=1, val_check_interval=0.4, num_sanity_val_steps=0)
    # every 2 of the 5 training batches: after batches 2 and 4
    assert len(model.seen["val"]) == 2 * 3


def test_val_check_interval_batches_across_epochs(make_trainer: Any) -> None:
    model, _ = fit(
        make_trainer,
        max_epochs=2,
        val_check_interval=4,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
    )
    # 10 training batches over two epochs: validation after the 4th and the 8th
    assert [epoch for epoch, batch, _ in model.seen["val"] if batch == 0] == [0, 1]


def test_check_val_every_n_epoch(make_trainer: Any) -> None:
    model, _ = fit(make_trainer, max_epochs=4, check_val_every_n_epoch=2, num_sanity_val_steps=0)
    assert sorted({epoch for epoch, _, _ in model.seen["val"]}) == [1, 3]


def test_fast_dev_run(make_trainer: Any) -> None:
    model, trainer = fit(make_trainer, fast_dev_run=2, max_epochs=5)
    assert model.seen["train"] == [(0, 0), (0, 1)]
    assert len(model.seen["val"]) == 2
    assert model.seen["sanity"] == []
    assert trainer.current_epoch == 1 and trainer.global_step == 2
    model, trainer = fit(make_trainer, fast_dev_run=True)
    assert len(model.seen["train"]) == 1 and trainer.fast_dev_run is True
    trainer.test(model, verbose=False, dataloaders=make_loader(48, 16))
    assert model.seen["test"] == [0]


def test_overfit_batches_validates_on_the_same_unshuffled_training_batches(
    make_trainer: Any,
) -> None:
    batches: dict[str, list[torch.Tensor]] = {"train": [], "val": []}

    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            batches["train"].append(batch[0])
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            if not self.trainer.sanity_checking:
                batches["val"].append(batch[0])

    shuffled = DataLoader(make_dataset(80), batch_size=16, shuffle=True)
    trainer = make_trainer(max_epochs=2, overfit_batches=2)
    trainer.fit(Model(), shuffled)
    train, val = batches["train"], batches["val"]
    assert len(train) == 4 and len(val) == 4
    data = make_dataset(80).tensors[0]
    for i, batch in enumerate(train[:2]):
        assert torch.equal(batch, data[16 * i : 16 * (i + 1)])
    assert all(torch.equal(a, b) for a, b in zip(train, val, strict=True))


def test_max_steps_stops_mid_epoch(make_trainer: Any) -> None:
    model, trainer = fit(make_trainer, max_steps=7, num_sanity_val_steps=0)
    assert trainer.global_step == 7
    assert model.seen["train"][-1] == (1, 1)
    assert trainer.current_epoch == 2


def test_min_epochs_overrides_should_stop(make_trainer: Any) -> None:
    class StopNow(Callback):
        def on_train_batch_end(self, trainer: Any) -> None:
            trainer.should_stop = True

    model, trainer = fit(make_trainer, min_epochs=2, max_epochs=5, callbacks=[StopNow()])
    assert trainer.current_epoch == 2
    assert len(model.seen["train"]) == 2 * 5  # two full epochs, then it stops at once


def test_min_steps_overrides_should_stop(make_trainer: Any) -> None:
    class StopNow(Callback):
        def on_train_batch_end(self, trainer: Any) -> None:
            trainer.should_stop = True

    _, trainer = fit(make_trainer, min_steps=3, max_epochs=5, callbacks=[StopNow()])
    assert trainer.global_step == 3


@pytest.mark.parametrize("max_time", ["00:00:00:00", timedelta(seconds=0), {"seconds": 0}])
def test_max_time(make_trainer: Any, max_time: Any) -> None:
    model, trainer = fit(make_trainer, max_time=max_time, num_sanity_val_steps=0)
    assert len(model.seen["train"]) <= 1
    assert trainer.max_time == timedelta(0)


def test_max_time_stops_a_long_run(make_trainer: Any) -> None:
    class Slow(Counting):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            time.sleep(0.02)
            return super().training_step(batch, batch_idx)

    model = Slow()
    trainer = make_trainer(max_time={"seconds": 0.1}, max_epochs=100, num_sanity_val_steps=0)
    trainer.fit(model)
    # stopped by the clock, long before 100 epochs (no bound on speed: the machine may be
    # busy, so only "at least one step, far fewer than all" is certain)
    steps = len(model.seen["train"])
    assert 1 <= steps < 100 * trainer.num_training_batches / 2
    assert trainer.current_epoch < 50


def test_reload_dataloaders_every_n_epochs(make_trainer: Any) -> None:
    model, _ = fit(make_trainer, max_epochs=4, reload_dataloaders_every_n_epochs=2)
    assert model.loads == {"train": 2, "val": 2}
    model, _ = fit(make_trainer, max_epochs=4)
    assert model.loads == {"train": 1, "val": 1}


@pytest.mark.filterwarnings("ignore:Error detected in:UserWarning")
@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled:UserWarning")
def test_detect_anomaly_names_the_operation(make_trainer: Any) -> None:
    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return torch.sqrt(self(batch[0]).sum() * 0 - 1)  # sqrt(-1): NaN, in backward too

    with pytest.raises(RuntimeError, match="SqrtBackward0"):
        make_trainer(max_epochs=1, detect_anomaly=True).fit(Model(), make_loader(16, 16))
    assert not torch.is_anomaly_enabled()


def test_inference_mode_flag(make_trainer: Any) -> None:
    modes: list[tuple[bool, bool]] = []

    class Model(TinyModel):
        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            modes.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))

    make_trainer(max_epochs=1).validate(Model(), make_loader(16, 16), verbose=False)
    make_trainer(max_epochs=1, inference_mode=False).validate(
        Model(), make_loader(16, 16), verbose=False
    )
    assert modes == [(True, False), (False, False)]


BAD_FLAGS = {
    "max_epochs": (
        {"max_epochs": -3},
        "max_epochs must be an int >= -1 (-1 to train until max_steps or max_time); got -3",
    ),
    "min_epochs": (
        {"min_epochs": 4, "max_epochs": 2},
        "min_epochs=4 is more than max_epochs=2: lower min_epochs or raise max_epochs",
    ),
    "max_steps": ({"max_steps": 2.5}, "max_steps must be an int >= -1 (-1 for no limit); got 2.5"),
    "limit_train_batches": (
        {"limit_train_batches": 1.5},
        "limit_train_batches must be an int number of batches (>= 0) or a float fraction of "
        "the epoch in [0.0, 1.0]; got 1.5",
    ),
    "limit_val_batches": (
        {"limit_val_batches": -1},
        "limit_val_batches must be an int number of batches (>= 0) or a float fraction of the "
        "epoch in [0.0, 1.0]; got -1",
    ),
    "val_check_interval": (
        {"val_check_interval": 1.5},
        "val_check_interval must be a float fraction of the training epoch in (0.0, 1.0], an "
        "int number of batches, or a duration (a datetime.timedelta, 'DD:HH:MM:SS' or a dict "
        "such as {'minutes': 30}); got 1.5",
    ),
    "check_val_every_n_epoch": (
        {"check_val_every_n_epoch": 0},
        "check_val_every_n_epoch must be an int >= 1 (or None to count val_check_interval "
        "batches across epochs); got 0",
    ),
    "gradient_clip_algorithm": (
        {"gradient_clip_algorithm": "l2"},
        "gradient_clip_algorithm must be 'norm' or 'value'; got 'l2'",
    ),
    "gradient_clip_val": (
        {"gradient_clip_val": -1.0},
        "gradient_clip_val must be a finite number >= 0 (or None for no clipping); got -1.0",
    ),
    "accumulate_grad_batches": (
        {"accumulate_grad_batches": 0},
        "accumulate_grad_batches must be an int >= 1; got 0",
    ),
    "num_sanity_val_steps": (
        {"num_sanity_val_steps": -2},
        "num_sanity_val_steps must be an int >= -1 (-1 for every validation batch); got -2",
    ),
    "max_time": (
        {"max_time": "12h"},
        "max_time='12h': pass 'DD:HH:MM:SS' (e.g. '00:12:00:00'), a datetime.timedelta, or a "
        "dict such as {'hours': 12}",
    ),
    "fast_dev_run": ({"fast_dev_run": -1}, "fast_dev_run must be an int >= 0 (or a bool); got -1"),
    "devices": (
        {"devices": 2, "strategy": "single_device"},
        "strategy 'single_device' trains on one device, but devices=2 were requested: pass "
        "devices=1, or a strategy that spreads training over several devices",
    ),
}


@pytest.mark.parametrize("flag", list(BAD_FLAGS))
def test_bad_flag_values(flag: str) -> None:
    flags, message = BAD_FLAGS[flag]
    with pytest.raises(MisconfigurationError) as info:
        Trainer(enable_progress_bar=False, enable_model_summary=False, **flags)
    assert str(info.value) == message


def test_val_check_interval_longer_than_the_epoch(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        fit(make_trainer, val_check_interval=6)
    assert str(info.value) == (
        "val_check_interval=6 is more than the 5 training batches of an epoch, so validation "
        "would never run: set val_check_interval <= 5, or check_val_every_n_epoch=None to "
        "count batches across epochs"
    )
