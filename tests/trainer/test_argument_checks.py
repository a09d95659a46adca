"""Every Trainer argument is checked for its type and range at ``Trainer(...)``, and a
misspelled or Lightning-only argument names the right one (issue 13, items 17 and 18)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from ember.trainer import MisconfigurationError, Trainer

QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "logger": False}

REJECTED = {
    "enable_checkpointing='no'": (
        {"enable_checkpointing": "no"},
        "enable_checkpointing (whether fit saves checkpoints) must be True, False or None; "
        "got 'no'",
    ),
    "enable_progress_bar=0": (
        {"enable_progress_bar": 0},
        "enable_progress_bar (whether a progress bar is shown) must be True, False or None; got 0",
    ),
    "enable_model_summary='false'": (
        {"enable_model_summary": "false"},
        "enable_model_summary (whether fit prints a model summary) must be True, False or "
        "None; got 'false'",
    ),
    "inference_mode=None": (
        {"inference_mode": None},
        "inference_mode (evaluate under torch.inference_mode) must be True or False; got None",
    ),
    "detect_anomaly=1": (
        {"detect_anomaly": 1},
        "detect_anomaly (whether torch.autograd detects anomalies) must be True or False; got 1",
    ),
    "benchmark='yes'": (
        {"benchmark": "yes"},
        "benchmark (cuDNN's autotuner; None leaves it) must be True, False or None; got 'yes'",
    ),
    "deterministic=1": (
        {"deterministic": 1},
        "deterministic must be True, False, 'warn' or None; got 1",
    ),
    "min_steps > max_steps": (
        {"min_steps": 10, "max_steps": 5},
        "min_steps=10 is more than max_steps=5: lower min_steps or raise max_steps",
    ),
    "gradient_clip_val=nan": (
        {"gradient_clip_val": float("nan")},
        "gradient_clip_val must be a finite number >= 0 (or None for no clipping); got nan",
    ),
    "gradient_clip_val=inf": (
        {"gradient_clip_val": float("inf")},
        "gradient_clip_val must be a finite number >= 0 (or None for no clipping); got inf",
    ),
    "default_root_dir=123": (
        {"default_root_dir": 123},
        "default_root_dir must be a folder path (a str or a pathlib.Path) under which runs "
        "and checkpoints are written; got 123 (int)",
    ),
    "default_root_dir=''": (
        {"default_root_dir": ""},
        "default_root_dir must name a folder; got an empty path (leave it out to use the "
        "current folder)",
    ),
    "precision=32.0": (
        {"precision": 32.0},
        "precision=32.0 (float): pass a name (e.g. precision='32-true'; installed: 16-mixed, "
        "16-true, 32-true, 64-true, bf16-mixed, bf16-true), an int 16, 32 or 64, a mapping "
        "{'name': ..., **options}, or a Precision instance",
    ),
    "accelerator=3": (
        {"accelerator": 3},
        "accelerator=3 (int): pass a name (e.g. accelerator='auto'; installed: cpu, cuda, "
        "mps), a mapping {'name': ..., **options}, or an Accelerator instance",
    ),
    "max_time negative": (
        {"max_time": {"hours": -1}},
        "max_time={'hours': -1} is a duration of -1 day, 23:00:00: it must be zero or more",
    ),
    "val_check_interval negative": (
        {"val_check_interval": {"minutes": -5}},
        "val_check_interval={'minutes': -5} is a duration of -1 day, 23:55:00: it must be zero "
        "or more",
    ),
    "devices='two'": (
        {"devices": "two"},
        "devices='two' is not valid: pass 'auto', a count such as '2', or device indices "
        "such as '0,1'",
    ),
    "devices=[0.5]": (
        {"devices": [0.5]},
        "devices=[0.5] is not valid: a list names device indices, ints >= 0 (got 0.5)",
    ),
    "callbacks=3": (
        {"callbacks": 3},
        "callbacks got 3 (int), which is not a callback: pass Callback instances, provider "
        "names such as 'early_stopping', or {'name': ..., **options} mappings",
    ),
    "plugin_manager='default'": (
        {"plugin_manager": "default"},
        "plugin_manager must be an ember.hub.PluginManager (or None for the process-wide "
        "one); got str",
    ),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_bad_argument_values_are_rejected(case: str) -> None:
    """Regression: each of these was accepted (a truthy string as True, NaN clipping, a
    negative time limit) or failed with a raw TypeError/AttributeError."""
    given, message = REJECTED[case]
    with pytest.raises(MisconfigurationError) as info:
        Trainer(**{**QUIET, **given})
    assert str(info.value) == message


def test_each_flag_is_checked() -> None:
    """Every argument of Trainer(...) refuses a value of an absurd type with
    MisconfigurationError (a new argument without a check fails this test)."""
    absurd = object()
    unchecked = []
    for name in inspect.signature(Trainer).parameters:
        if name in ("self", "logger"):  # logger has its own TypeError, tested in tracking
            continue
        try:
            Trainer(**{**QUIET, name: absurd})
        except MisconfigurationError:
            continue
        unchecked.append(name)
    assert unchecked == []


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"max_epoch": 3},
            "Trainer has no argument 'max_epoch'; did you mean 'max_epochs'? Its arguments: ",
        ),
        (
            {"gpus": 1},
            "Trainer has no argument 'gpus' (PyTorch Lightning's; ember's Trainer does not "
            'take it): pass accelerator="gpu", devices=1',
        ),
        (
            {"resume_from_checkpoint": "last.ckpt"},
            "Trainer has no argument 'resume_from_checkpoint' (PyTorch Lightning's; ember's "
            "Trainer does not take it): pass trainer.fit(model, ckpt_path='last.ckpt')",
        ),
        ({"epochs": 3}, "Trainer has no argument 'epochs'; did you mean 'max_epochs'?"),
        ({"zzz": 1}, "Trainer has no argument 'zzz'. Its arguments: accelerator, "),
    ],
)
def test_unknown_arguments_get_a_did_you_mean(given: dict[str, Any], message: str) -> None:
    """Regression: a raw 'unexpected keyword argument' TypeError named no right argument."""
    with pytest.raises(MisconfigurationError) as info:
        Trainer(**QUIET, **given)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, TypeError)  # as Python's own error for such a keyword


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(MisconfigurationError, match=r"keyword arguments only .* got 1 positional"):
        Trainer(3)  # type: ignore[misc]


def test_the_signature_is_unchanged_for_run_file_schemas() -> None:
    parameters = inspect.signature(Trainer).parameters
    assert "max_epochs" in parameters
    assert all(p.kind is p.KEYWORD_ONLY for n, p in parameters.items() if n != "self")


def test_good_values_still_pass(tmp_path: Path) -> None:
    trainer = Trainer(
        **QUIET,
        enable_checkpointing=False,
        min_steps=2,
        max_steps=5,
        gradient_clip_val=0.5,
        default_root_dir=tmp_path,
        precision=32,
        devices="1",
        max_time={"seconds": 0},
        inference_mode=False,
        benchmark=None,
    )
    assert trainer.default_root_dir == str(tmp_path)
    assert trainer.precision == "32-true"


def test_the_same_callback_object_twice_is_an_error() -> None:
    """Regression: each of its hooks ran twice."""
    from ember.trainer.callbacks import LambdaCallback

    callback = LambdaCallback(on_train_epoch_end=lambda trainer: None)
    with pytest.raises(MisconfigurationError, match="holds the same LambdaCallback object twice"):
        Trainer(**QUIET, callbacks=[callback, callback])


@pytest.mark.parametrize(
    ("entry", "given", "message"),
    [
        (
            "fit",
            {"ckpt_path": 123},
            "fit(ckpt_path=...) must be a checkpoint file's path, 'last' or 'best' (or None); "
            "got 123 (int)",
        ),
        ("validate", {"verbose": "no"}, "validate(verbose=...) must be True or False; got 'no'"),
        (
            "predict",
            {"return_predictions": "no"},
            "predict(return_predictions=...) must be True or False; got 'no'",
        ),
    ],
)
def test_entry_point_arguments_are_checked(
    entry: str, given: dict[str, Any], message: str, tmp_path: Path
) -> None:
    """Regression: a raw TypeError deep in checkpoint loading; 'no' read as True."""
    import torch
    from ember.trainer import EmberModule

    class Model(EmberModule):
        def training_step(self, batch: Any, batch_idx: int) -> Any: ...

    trainer = Trainer(**QUIET, default_root_dir=tmp_path)
    with pytest.raises(MisconfigurationError) as info:
        getattr(trainer, entry)(Model(), [torch.zeros(1)], **given)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"patience": 2.5}, "EarlyStopping(patience=...) must be an int >= 0, got 2.5"),
        (
            {"min_delta": float("nan")},
            "EarlyStopping(min_delta=...) must be a finite number, got nan",
        ),
        (
            {"stopping_threshold": "0.1"},
            "EarlyStopping(stopping_threshold=...) must be a finite number or None, got '0.1'",
        ),
        ({"strict": "no"}, "EarlyStopping(strict=...) must be True or False, got 'no'"),
    ],
)
def test_early_stopping_arguments_are_checked(given: dict[str, Any], message: str) -> None:
    from ember.trainer.callbacks import EarlyStopping

    with pytest.raises(ValueError) as info:
        EarlyStopping("val_loss", **given)
    assert str(info.value) == message
