"""``self.log``: defaults per hook, reductions, batch-size weighting, names, the three
metric dicts, and no host reads between flush points."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from ember.trainer import MisconfigurationError
from torch.utils.data import DataLoader, TensorDataset
from trainer_helpers import TinyModel, make_loader


class Logged(TinyModel):
    """Logs what the test asks for, from ``training_step`` or ``validation_step``."""

    def __init__(self, train_logs: Any = None, val_logs: Any = None) -> None:
        super().__init__()
        self.train_logs = train_logs
        self.val_logs = val_logs

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        if self.train_logs:
            self.train_logs(self, batch, batch_idx)
        return loss

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.val_logs:
            self.val_logs(self, batch, batch_idx)


def weighted_batches(sizes: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of the given sizes, features all equal to the batch's index."""
    return [
        (torch.full((n, 8), float(i)), torch.zeros(n, dtype=torch.long))
        for i, n in enumerate(sizes)
    ]


def test_training_defaults_log_on_step_and_flush_every_n_steps(make_trainer: Any) -> None:
    published: list[tuple[dict[str, float], int]] = []
    trainer = make_trainer(max_epochs=1, log_every_n_steps=2)
    original = trainer.metrics.publish
    trainer.metrics.publish = lambda metrics, step: (
        published.append((dict(metrics), step)),
        original(metrics, step),
    )
    trainer.fit(Logged(), make_loader(96, 16))  # 6 steps
    steps = [step for metrics, step in published if "train_loss" in metrics]
    assert steps == [2, 4, 6]
    assert set(trainer.logged_metrics) == {"train_loss", "epoch"}
    assert isinstance(trainer.logged_metrics["train_loss"], float)
    assert isinstance(trainer.callback_metrics["train_loss"], torch.Tensor)


def test_on_step_and_on_epoch_fork_names(make_trainer: Any) -> None:
    def logs(module: Any, batch: Any, batch_idx: int) -> None:
        module.log("m", float(batch_idx), on_step=True, on_epoch=True, prog_bar=True)

    trainer = make_trainer(max_epochs=1, log_every_n_steps=1)
    trainer.fit(Logged(train_logs=logs), make_loader(64, 16))  # batch_idx 0..3
    assert trainer.logged_metrics["m_step"] == 3.0
    assert trainer.logged_metrics["m_epoch"] == 1.5
    assert trainer.callback_metrics["m"].item() == 1.5
    assert trainer.callback_metrics["m_epoch"].item() == 1.5
    assert trainer.callback_metrics["m_step"].item() == 3.0
    assert trainer.progress_bar_metrics == {"m_step": 3.0, "m_epoch": 1.5}


@pytest.mark.parametrize(
    ("reduce_fx", "expected"),
    [
        ("mean", (0 * 4 + 1 * 2 + 2 * 6) / 12),
        (torch.mean, (0 * 4 + 1 * 2 + 2 * 6) / 12),
        ("sum", 0 + 1 + 2),
        ("max", 2.0),
        (torch.min, 0.0),
    ],
)
def test_epoch_reductions_weight_the_mean_by_batch_size(
    make_trainer: Any, reduce_fx: Any, expected: float
) -> None:
    def logs(module: Any, batch: Any, batch_idx: int) -> None:
        x, _ = batch
        module.log("v", x[0, 0], on_step=False, on_epoch=True, reduce_fx=reduce_fx)

    trainer = make_trainer(max_epochs=1)
    trainer.fit(Logged(train_logs=logs), weighted_batches([4, 2, 6]))
    assert trainer.logged_metrics["v"] == pytest.approx(expected)


def test_explicit_batch_size_overrides_the_inferred_one(make_trainer: Any) -> None:
    def logs(module: Any, batch: Any, batch_idx: int) -> None:
        module.log("v", float(batch_idx), on_epoch=True, on_step=False, batch_size=batch_idx + 1)

    trainer = make_trainer(max_epochs=1)
    trainer.fit(Logged(train_logs=logs), weighted_batches([4, 4, 4]))
    assert trainer.logged_metrics["v"] == pytest.approx((0 * 1 + 1 * 2 + 2 * 3) / 6)


def test_validation_defaults_to_epoch_means_weighted_by_batch(make_trainer: Any) -> None:
    def logs(module: Any, batch: Any, batch_idx: int) -> None:
        module.log("val_x", batch[0][0, 0])

    trainer = make_trainer(max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(Logged(val_logs=logs), make_loader(32, 16), weighted_batches([1, 3]))
    assert trainer.logged_metrics["val_x"] == pytest.approx(0.75)
    assert trainer.callback_metrics["val_x"].item() == pytest.approx(0.75)


def test_many_values_are_compacted_without_changing_the_mean(make_trainer: Any) -> None:
    def logs(module: Any, batch: Any, batch_idx: int) -> None:
        module.log("v", torch.tensor(float(batch_idx)), on_epoch=True, on_step=False)

    data = [(torch.zeros(1, 8), torch.zeros(1, dtype=torch.long))] * 200
    trainer = make_trainer(max_epochs=1)
    trainer.fit(Logged(train_logs=logs), data)
    assert trainer.logged_metrics["v"] == pytest.approx(199 / 2)


def test_no_host_reads_between_flush_points(make_trainer: Any, monkeypatch: Any) -> None:
    """Logged values stay on the device: one ``tolist`` per flush, no ``item``/``float``."""
    calls: dict[str, int] = {}

    def counting(name: str) -> Any:
        original = getattr(torch.Tensor, name)

        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return original(self, *args, **kwargs)

        return wrapper

    def logs(module: Any, batch: Any, batch_idx: int) -> None:
        module.log("loss_again", module.last_loss, on_epoch=True)
        module.log("acc", (module.last_logits.argmax(1) == batch[1]).float().mean())

    class Model(Logged):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            self.last_logits = self(x)
            self.last_loss = torch.nn.functional.cross_entropy(self.last_logits, y)
            logs(self, batch, batch_idx)
            return self.last_loss

    trainer = make_trainer(max_epochs=1, log_every_n_steps=10)
    # 30 steps: flushes at steps 10, 20, 30 and at epoch end. Pre-made batches: a DataLoader
    # itself calls item() once per epoch (to seed workers), which is not ember's doing.
    data = list(make_loader(30 * 4, 4))
    for name in ("item", "tolist", "__float__", "__bool__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    trainer.fit(Model(), data)
    monkeypatch.undo()
    assert calls == {"tolist": 4}
    assert trainer.logged_metrics["loss_again_epoch"] > 0


def test_several_loaders_get_dataloader_suffixes(make_trainer: Any) -> None:
    def logs(module: Any, batch: Any, batch_idx: int) -> None:
        module.log("val_x", batch[0][0, 0])
        module.log("shared", 1.0, add_dataloader_idx=False)

    val = [weighted_batches([2, 2]), [(torch.full((2, 8), 5.0), torch.zeros(2, dtype=torch.long))]]
    model = Logged(val_logs=logs)
    trainer = make_trainer(max_epochs=1)
    results = trainer.validate(
        model,
        [
            DataLoader(TensorDataset(*map(torch.cat, zip(*v, strict=True))), batch_size=2)
            for v in val
        ],
        verbose=False,
    )
    assert results == [
        {"val_x/dataloader_idx_0": 0.5, "shared": 1.0},
        {"val_x/dataloader_idx_1": 5.0, "shared": 1.0},
    ]


def test_python_numbers_and_log_dict(make_trainer: Any) -> None:
    def logs(module: Any, batch: Any, batch_idx: int) -> None:
        module.log_dict({"a": 1, "b": 2.5}, on_epoch=True, on_step=False)

    trainer = make_trainer(max_epochs=1)
    trainer.fit(Logged(train_logs=logs), make_loader(32, 16))
    assert trainer.logged_metrics["a"] == 1.0
    assert trainer.logged_metrics["b"] == 2.5
    assert trainer.callback_metrics["a"].item() == 1.0


def test_callback_metrics_keep_the_last_epoch_values(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=2)
    trainer.fit(TinyModel(), make_loader(32, 16), make_loader(32, 16))
    assert {"train_loss", "val_loss"} <= set(trainer.callback_metrics)
    assert not math.isnan(trainer.callback_metrics["val_loss"].item())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: m.log("v", torch.ones(3)),
            "self.log('v', value): value must hold one number, got a tensor of shape (3,); "
            "reduce it first (e.g. value.mean())",
        ),
        (
            lambda m: m.log("v", 1.0, reduce_fx="median"),
            "self.log('v', ..., reduce_fx='median'): use 'mean', 'sum', 'max' or 'min' (or "
            "torch.mean, torch.sum, torch.max, torch.min)",
        ),
        (
            lambda m: m.log("v", 1.0, on_step=False, on_epoch=False),
            "self.log('v', ..., on_step=False, on_epoch=False) records nothing: set "
            "on_step=True or on_epoch=True",
        ),
        (
            lambda m: m.log("v", {"a": 1}),
            "self.log('v', value) got a dict: use self.log_dict({...}) to log several values",
        ),
        (
            lambda m: (m.log("v", 1.0), m.log("v", 1.0, prog_bar=True)),
            "self.log('v', ...) was called twice in training_step or a training batch hook "
            "with different options; log it with the same options each time, or under another "
            "name",
        ),
    ],
)
def test_bad_log_calls_say_what_to_change(make_trainer: Any, call: Any, message: str) -> None:
    trainer = make_trainer(max_epochs=1)
    with pytest.raises(MisconfigurationError) as info:
        trainer.fit(Logged(train_logs=lambda m, b, i: call(m)), make_loader(16, 16))
    assert str(info.value) == message


def test_batch_size_that_cannot_be_inferred(make_trainer: Any) -> None:
    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> None:
            self.log("v", 1.0, on_epoch=True)

    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(Model(), [{"text": "no tensors here"}])
    assert str(info.value) == (
        "self.log('v', ...) averages over the epoch weighted by batch size, but no tensor was "
        "found in the dict batch to infer it from: pass self.log(..., batch_size=N)"
    )


def test_log_outside_a_run(make_trainer: Any) -> None:
    with pytest.raises(MisconfigurationError) as info:
        TinyModel().log("v", 1.0)
    assert str(info.value) == (
        "self.log('v', ...) was called while no fit, validate or test is running; log from "
        "training_step, validation_step, test_step or the on_* hooks"
    )
