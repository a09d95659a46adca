"""Where ``self.log`` may be called and what it may be given: every module and callback
hook either records the value or refuses it with an error naming the hook (never a silent
drop), one logged name is one series (never two values at one step from two places), and
a value that is not one real number is refused, not coerced."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.hub.tracking import JournalReader
from ember.trainer import Callback, MisconfigurationError
from ember.trainer.callbacks import ModelCheckpoint
from ember.trainer.hooks import NO_LOGGING_HOOKS
from torch.utils.data import DataLoader, TensorDataset
from trainer_helpers import TinyModel, make_loader


def journal_series(trainer: Any) -> dict[str, list[tuple[int, float]]]:
    """Every metric series of the trainer's run journal: ``name -> [(step, value)]``."""
    with JournalReader(trainer.log_dir) as reader:
        return {
            name: [(step, value) for step, value, _ in reader.metric_series(name)]
            for name in reader.metric_names()
        }


# ---------------------------------------------------------------- every hook, item 5
CALLBACK_HOOKS = (
    "setup",
    "on_fit_start",
    "on_sanity_check_start",
    "on_sanity_check_end",
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
    "on_validation_start",
    "on_validation_epoch_start",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_validation_epoch_end",
    "on_validation_end",
    "on_save_checkpoint",
    "on_train_epoch_end",
    "on_train_end",
    "on_fit_end",
    "on_test_start",
    "on_test_epoch_start",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_test_epoch_end",
    "on_test_end",
    "teardown",
)
MODULE_ONLY_HOOKS = (
    "on_before_batch_transfer",
    "on_after_batch_transfer",
    "on_validation_model_eval",
    "on_validation_model_train",
    "on_test_model_eval",
    "on_test_model_train",
    "lr_scheduler_step",
    "configure_optimizers",
)
MODULE_HOOKS = (
    tuple(h for h in CALLBACK_HOOKS if not h.startswith("on_sanity_check")) + MODULE_ONLY_HOOKS
)


def _attempt(module: Any, who: str, hook: str, outcome: dict[str, Any]) -> None:
    """Log ``who.hook`` and note the error, if any (a hook fires many times)."""
    try:
        module.log(f"{who}.{hook}", 1.0)
    except MisconfigurationError as exc:
        outcome[f"{who}.{hook}"] = str(exc)


class EveryCallbackHook(Callback):
    """Logs from every callback hook."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        self.outcome = outcome


def _callback_hook(hook: str) -> Any:
    if hook in ("setup", "teardown"):
        return lambda self, trainer, module, stage: _attempt(module, "cb", hook, self.outcome)
    return lambda self, trainer, module, *args: _attempt(module, "cb", hook, self.outcome)


for _hook in CALLBACK_HOOKS:
    setattr(EveryCallbackHook, _hook, _callback_hook(_hook))


class EveryModuleHook(TinyModel):
    """Logs from every module hook (and still does what each hook must)."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__()
        self.outcome = outcome

    def configure_optimizers(self) -> Any:
        _attempt(self, "mod", "configure_optimizers", self.outcome)
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        _attempt(self, "mod", "lr_scheduler_step", self.outcome)
        scheduler.step()

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        _attempt(self, "mod", "on_before_batch_transfer", self.outcome)
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        _attempt(self, "mod", "on_after_batch_transfer", self.outcome)
        return batch


def _module_hook(hook: str) -> Any:
    mode = {"eval": "eval", "train": "train"}.get(hook.rsplit("_", 1)[-1])

    def method(self: Any, *args: Any) -> None:
        _attempt(self, "mod", hook, self.outcome)
        if mode is not None:  # on_*_model_eval/train must still switch the mode
            getattr(self, mode)()

    return method


for _hook in MODULE_HOOKS:
    if _hook not in EveryModuleHook.__dict__:
        setattr(EveryModuleHook, _hook, _module_hook(_hook))


def test_every_hook_records_the_value_or_refuses_it_by_name(make_trainer: Any) -> None:
    """fit, validate and test with a module and a callback logging from every hook: each
    value reaches the run journal, or self.log raised an error naming the hook. On the
    old main, values logged in a callback's epoch-end hooks, in on_train_end,
    on_validation_end, on_save_checkpoint, ... were silently dropped."""
    outcome: dict[str, Any] = {}
    trainer = make_trainer(
        max_epochs=2,
        log_every_n_steps=1,
        logger=["csv"],
        callbacks=[EveryCallbackHook(outcome), ModelCheckpoint(save_last=True)],
        enable_checkpointing=True,
    )
    model = EveryModuleHook(outcome)
    trainer.fit(model, make_loader(32, 16), make_loader(32, 16))
    trainer.validate(model, make_loader(32, 16), verbose=False)
    trainer.test(model, make_loader(32, 16), verbose=False)
    series = journal_series(trainer)
    hooks = [("cb", h) for h in CALLBACK_HOOKS] + [("mod", h) for h in MODULE_HOOKS]
    for who, hook in hooks:
        key = f"{who}.{hook}"
        if hook == "configure_optimizers":  # before any loop: self.log's own words
            assert "was called where no step or epoch is being recorded" in outcome[key]
        elif hook in NO_LOGGING_HOOKS:
            assert key not in series, key
            assert outcome.get(key, "").startswith(
                f"self.log({key!r}, ...) cannot be called in {hook}:"
            ), (key, outcome.get(key))
        else:
            assert key not in outcome, (key, outcome[key])
            assert series.get(key), f"{key} was silently dropped"
    # epoch-level values are recorded once per epoch, at the epoch's last step
    assert [s for s, _ in series["cb.on_train_epoch_end"]] == [2, 4]
    assert [s for s, _ in series["cb.on_validation_epoch_end"]] == [2, 4, 4]  # + validate()
    assert [s for s, _ in series["cb.on_test_epoch_end"]] == [4]


def test_logging_in_on_exception_warns_and_the_run_error_propagates(make_trainer: Any) -> None:
    """The run is failing already: the value is refused with a warning, not an error that
    would replace the run's own."""

    class Failing(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            raise ValueError("the run's own error")

    class OnError(Callback):
        def on_exception(self, trainer: Any, module: Any, exception: BaseException) -> None:
            module.log("crashed", 1.0)

    trainer = make_trainer(max_epochs=1, callbacks=[OnError()])
    with (
        pytest.warns(UserWarning, match=r"self.log\('crashed', ...\) cannot be called in on_exc"),
        pytest.raises(ValueError, match="the run's own error"),
    ):
        trainer.fit(Failing(), make_loader(16, 16))


def test_a_callback_logs_in_its_epoch_end_hooks(make_trainer: Any) -> None:
    """The issue's case: pl_module.log() in a callback's on_train_epoch_end reaches the
    journal, logged_metrics and callback_metrics; a checkpointer can monitor it; the same
    from on_validation_epoch_end is in what validate() returns."""

    class Measure(Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            module.log("weight_norm", float(trainer.current_epoch) + 0.5)

        def on_validation_epoch_end(self, trainer: Any, module: Any) -> None:
            module.log("val_extra", 7.0)

    best = ModelCheckpoint(monitor="weight_norm", mode="max", save_top_k=1)
    trainer = make_trainer(
        max_epochs=3, callbacks=[Measure(), best], enable_checkpointing=True, logger=["csv"]
    )
    model = TinyModel()
    trainer.fit(model, make_loader(32, 16), make_loader(32, 16))
    series = journal_series(trainer)
    assert series["weight_norm"] == [(2, 0.5), (4, 1.5), (6, 2.5)]
    assert series["val_extra"] == [(2, 7.0), (4, 7.0), (6, 7.0)]
    assert trainer.logged_metrics["weight_norm"] == 2.5
    assert trainer.callback_metrics["weight_norm"].item() == 2.5
    assert best.best_model_score is not None and best.best_model_score.item() == 2.5
    assert Path(best.best_model_path).name.startswith("epoch=2")
    (results,) = trainer.validate(model, make_loader(32, 16), verbose=False)
    assert results["val_extra"] == 7.0 and "val_loss" in results


def test_a_value_logged_after_its_epoch_value_was_published_is_refused(
    make_trainer: Any,
) -> None:
    """The module's on_train_epoch_end published 'score' for the epoch; a callback's
    on_train_epoch_end logging 'score' again would put a second value at that step."""

    class Model(TinyModel):
        def on_train_epoch_end(self) -> None:
            self.log("score", 1.0)

    class Again(Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            module.log("score", 2.0)

    trainer = make_trainer(max_epochs=1, callbacks=[Again()])
    with pytest.raises(
        MisconfigurationError,
        match=r"self.log\('score', ...\) was called in a callback's on_train_epoch_end after "
        "'score' was logged",
    ):
        trainer.fit(Model(), make_loader(32, 16))


# ---------------------------------------------------------------- one name, one series: item 4
class StepAndEpoch(TinyModel):
    """training_step logs 'loss' per step; on_train_epoch_end logs 'loss' too."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self.log("loss", loss)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("loss", 0.0)


def test_one_name_from_a_step_and_an_epoch_end_hook_is_refused(make_trainer: Any) -> None:
    """The issue's case: on the old main both went into one series 'loss', with two values
    at the epoch's last step."""
    trainer = make_trainer(max_epochs=1, log_every_n_steps=1)
    with pytest.raises(MisconfigurationError) as info:
        trainer.fit(StepAndEpoch(), make_loader(32, 16))
    assert str(info.value) == (
        "self.log('loss', ...) in an epoch-level hook (on_train_start, on_train_epoch_start "
        "or on_train_epoch_end) sends 'loss' to the loggers, but 'loss' already comes from "
        "self.log('loss', ...) in training_step or a training batch hook. One name is one "
        "series: two places would mix their values in it, with two values at some steps. "
        "Log it under another name in one of the places, or log it once with on_step=True, "
        "on_epoch=True (loggers then get 'loss_step' and 'loss_epoch')"
    )


@pytest.mark.parametrize(
    ("train_logs", "val_logs", "epoch_end"),
    [
        # validation_step and on_validation_epoch_end both send 'val_loss' (one would be lost)
        (None, "val_loss", "val_loss"),
        # training and validation both send 'loss': their values would interleave
        ("loss", "loss", None),
        # a forked name: 'acc' with on_step and on_epoch sends 'acc_epoch' already
        ("acc", None, "acc_epoch"),
    ],
)
def test_every_other_way_to_send_one_name_from_two_places_is_refused(
    make_trainer: Any, train_logs: str | None, val_logs: str | None, epoch_end: str | None
) -> None:
    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = super().training_step(batch, batch_idx)
            if train_logs:
                self.log(train_logs, loss, on_step=True, on_epoch=train_logs == "acc")
            return loss

        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            if val_logs:
                self.log(val_logs, 1.0)

        def on_validation_epoch_end(self) -> None:
            if epoch_end and val_logs:
                self.log(epoch_end, 2.0)

        def on_train_epoch_end(self) -> None:
            if epoch_end and not val_logs:
                self.log(epoch_end, 2.0)

    trainer = make_trainer(max_epochs=1, num_sanity_val_steps=0)
    with pytest.raises(MisconfigurationError, match="One name is one series"):
        trainer.fit(Model(), make_loader(32, 16), make_loader(32, 16))


def test_the_trainers_own_epoch_series_is_not_shared(make_trainer: Any) -> None:
    """The trainer sends 'epoch' with every flush; on the old main a value logged as
    'epoch' was silently replaced by it."""

    class Model(TinyModel):
        def on_train_epoch_end(self) -> None:
            self.log("epoch", 10.0)

    with pytest.raises(MisconfigurationError, match="the trainer records 'epoch' itself"):
        make_trainer(max_epochs=1).fit(Model(), make_loader(32, 16))


def test_distinct_names_and_forked_names_still_work(make_trainer: Any) -> None:
    """What the error suggests works: 'loss' once with on_step and on_epoch gives two
    series, and one name logged from two hooks of one phase stays one series."""

    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = super().training_step(batch, batch_idx)
            self.log("loss", loss, on_step=True, on_epoch=True)
            return loss

        def on_train_epoch_end(self) -> None:
            self.log("loss_mean_again", self.trainer.callback_metrics["loss_epoch"])

    trainer = make_trainer(max_epochs=2, log_every_n_steps=1)
    trainer.fit(Model(), make_loader(32, 16))
    series = journal_series(trainer)
    assert [s for s, _ in series["loss_step"]] == [1, 2, 3, 4]
    assert [s for s, _ in series["loss_epoch"]] == [2, 4]
    assert [v for _, v in series["loss_epoch"]] == pytest.approx(
        [v for _, v in series["loss_mean_again"]]
    )


def test_a_name_shared_by_loaders_reduces_over_all_of_them(make_trainer: Any) -> None:
    """add_dataloader_idx=False: one series for every loader, reduced over all their
    batches (as in Lightning). On the old main each loader kept its own value and the
    last loader's silently replaced the others'."""

    class Model(TinyModel):
        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            self.log("shared", batch[0][0, 0], add_dataloader_idx=False)

    def loader(value: float, n: int) -> DataLoader:
        return DataLoader(
            TensorDataset(torch.full((n, 8), value), torch.zeros(n, dtype=torch.long)),
            batch_size=2,
        )

    trainer = make_trainer(max_epochs=1, logger=["csv"])
    results = trainer.validate(Model(), [loader(1.0, 2), loader(4.0, 6)], verbose=False)
    expected = (1.0 * 2 + 4.0 * 6) / 8  # a mean weighted by batch size, over both loaders
    assert results == [{"shared": expected}, {"shared": expected}]
    assert journal_series(trainer)["shared"] == [(0, expected)]


def test_on_step_in_an_epoch_level_hook_is_refused(make_trainer: Any) -> None:
    """On the old main the value waited for the next step flush: published at a later
    step (the next epoch's), or never after the last epoch."""

    class Model(TinyModel):
        def on_train_epoch_end(self) -> None:
            self.log("late", 1.0, on_step=True)

    with pytest.raises(
        MisconfigurationError, match=r"on_step=True\) was called in an epoch-level hook"
    ):
        make_trainer(max_epochs=1).fit(Model(), make_loader(32, 16))


def test_epoch_level_hooks_need_no_batch_size(make_trainer: Any) -> None:
    """A value logged where there is no batch (on_validation_start, on_train_epoch_start)
    counts once; on the old main its mean was weighted by a stale or missing batch
    (an error about a 'NoneType batch' in the first validation)."""

    class Model(TinyModel):
        def on_train_epoch_start(self) -> None:
            self.log("at_start", 3.0)

        def on_validation_start(self) -> None:
            self.log("val_start", 5.0)

    trainer = make_trainer(max_epochs=1)
    trainer.fit(Model(), make_loader(32, 16), make_loader(32, 16))
    assert trainer.logged_metrics["at_start"] == 3.0
    assert trainer.logged_metrics["val_start"] == 5.0


# ---------------------------------------------------------------- values: item 17
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "0.5",
            "self.log('v', value): value must be an int, a float or a bool, a one-element "
            "real tensor, or a torchmetrics Metric; got str '0.5'",
        ),
        (
            b"1",
            "self.log('v', value): value must be an int, a float or a bool, a one-element "
            "real tensor, or a torchmetrics Metric; got bytes b'1'",
        ),
        (
            1 + 2j,
            "self.log('v', value): value must be an int, a float or a bool, a one-element "
            "real tensor, or a torchmetrics Metric; got complex (1+2j)",
        ),
        (
            torch.tensor(1 + 2j),
            "self.log('v', value): value is a complex tensor (torch.complex64); a metric is "
            "one real number: log value.real, value.imag or value.abs() (accepted: an int, a "
            "float or a bool, a one-element real tensor, or a torchmetrics Metric)",
        ),
        (
            None,
            "self.log('v', value): value must be an int, a float or a bool, a one-element "
            "real tensor, or a torchmetrics Metric; got NoneType None",
        ),
    ],
)
def test_a_value_that_is_not_one_real_number_is_refused(
    make_trainer: Any, value: Any, message: str
) -> None:
    """On the old main a string was parsed ('0.5' became 0.5) and a complex tensor lost
    its imaginary part."""

    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            self.log("v", value)
            return super().training_step(batch, batch_idx)

    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(Model(), make_loader(16, 16))
    assert str(info.value) == message


def test_log_dict_refuses_what_is_not_a_mapping_and_checks_each_value(
    make_trainer: Any,
) -> None:
    calls = [
        (lambda m: m.log_dict([("a", 1.0)]), r"self.log_dict\(dictionary, ...\) takes a mapping"),
        (lambda m: m.log_dict({"a": "1"}), r"self.log\('a', value\): value must be an int"),
    ]
    for call, match in calls:

        class Model(TinyModel):
            def training_step(self, batch: Any, batch_idx: int, call: Any = call) -> torch.Tensor:
                call(self)
                return super().training_step(batch, batch_idx)

        with pytest.raises(MisconfigurationError, match=match):
            make_trainer(max_epochs=1).fit(Model(), make_loader(16, 16))


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        ({"lr": "0.1"}, r"the value of 'lr' must be a real number .*; got str '0.1'"),
        (
            {"z": torch.tensor(1j)},
            r"the value of 'z' .* got a tensor of shape \(\) and dtype torch.complex64",
        ),
        ({"v": torch.ones(2)}, r"got a tensor of shape \(2,\)"),
        ({3: 1.0}, "needs non-empty str metric names, got 3"),
    ],
)
def test_trainer_log_metrics_refuses_what_is_not_one_real_number(
    make_trainer: Any, metrics: dict[Any, Any], match: str
) -> None:
    """A callback's way to log: the same rule as self.log. On the old main a string was
    parsed, and a complex or non-scalar tensor gave a raw torch or Python error."""

    class Publish(Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            trainer.log_metrics(metrics)

    with pytest.raises(MisconfigurationError, match=f"^trainer.log_metrics:? .*{match}"):
        make_trainer(max_epochs=1, callbacks=[Publish()]).fit(TinyModel(), make_loader(16, 16))


def test_log_metrics_still_takes_numbers_and_real_tensors(make_trainer: Any) -> None:
    class Publish(Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            trainer.log_metrics({"a": 1, "b": torch.tensor([2.5]), "c": True, "d": math.inf})

    trainer = make_trainer(max_epochs=1, callbacks=[Publish()])
    trainer.fit(TinyModel(), make_loader(16, 16))
    assert {k: trainer.logged_metrics[k] for k in "abcd"} == {
        "a": 1.0,
        "b": 2.5,
        "c": 1.0,
        "d": math.inf,
    }
