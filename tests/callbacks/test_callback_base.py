"""The Callback base class and how callbacks plug into a real Trainer: signatures, order,
misspelled hooks, selection by provider name, state keys."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ember.hub import CALLBACK_HOOKS, OptionsError, UnknownHookError, get_plugin_manager
from ember.hub.lifecycle import hook_signature
from ember.trainer import Callback
from ember.trainer.callbacks import (
    EarlyStopping,
    GradientNormMonitor,
    LearningRateMonitor,
    ModelSummary,
    ProgressBar,
    Timer,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"
BUILT_INS = [
    "early_stopping",
    "learning_rate_monitor",
    "progress_bar",
    "model_summary",
    "gradient_norm_monitor",
    "timer",
    "gradient_accumulation_scheduler",
]


def test_base_class_defines_no_hooks() -> None:
    # any hook defined on the base would be registered for every callback and cost a call
    defined = [a for a in vars(Callback) if a.startswith("on_") or a in ("setup", "teardown")]
    assert defined == []


@pytest.mark.parametrize("hook", list(CALLBACK_HOOKS))
def test_every_hook_is_documented_with_its_arguments(hook: str) -> None:
    assert hook_signature(hook) in (Callback.__doc__ or "")
    args = hook_signature(hook).split("(", 1)[1].rstrip(")")
    rows = [line for line in DOCS.read_text().splitlines() if f"`{hook}`" in line]
    assert any(f"`{args}`" in row for row in rows), f"docs/callbacks.md lacks a row for {hook}"


def test_state_key_and_state_defaults() -> None:
    class Plain(Callback):
        pass

    assert Plain().state_key == "test_state_key_and_state_defaults.<locals>.Plain"
    assert Plain().state_dict() == {}
    Plain().load_state_dict({})
    assert (
        EarlyStopping("val_loss").state_key == "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"
    )
    assert EarlyStopping("acc", mode="max").state_key != EarlyStopping("acc").state_key


def test_misspelled_hook_fails_when_the_trainer_is_built(make_trainer: Any) -> None:
    class Typo(Callback):
        def on_train_epoch_ned(self, trainer: Any, pl_module: Any) -> None:
            pass

    with pytest.raises(UnknownHookError) as info:
        make_trainer(callbacks=[Typo()])
    message = str(info.value)
    assert "Typo.on_train_epoch_ned" in message
    assert "Did you mean 'on_train_epoch_end'" in message


def test_lightning_positional_and_ember_keyword_signatures(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    seen: dict[str, list[Any]] = {"positional": [], "subset": [], "setup": []}

    class LightningStyle(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen["positional"].append((trainer, pl_module, float(outputs["loss"]), batch_idx))

        def setup(self, trainer, pl_module, stage):
            seen["setup"].append(stage)

    class EmberStyle(Callback):
        def on_train_batch_end(self, batch_idx: int, trainer: Any) -> None:
            seen["subset"].append((trainer, batch_idx))

    trainer = make_trainer(max_epochs=1, callbacks=[LightningStyle(), EmberStyle()])
    model = model_cls()
    trainer.fit(model, make_loader(n=24))
    assert [s[3] for s in seen["positional"]] == [0, 1, 2]
    assert all(s[0] is trainer and s[1] is model for s in seen["positional"])
    assert seen["subset"] == [(trainer, 0), (trainer, 1), (trainer, 2)]
    assert seen["setup"] == ["fit"]


def test_callbacks_run_in_the_order_given(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    calls: list[tuple[str, str]] = []

    class Recorder(Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_train_epoch_start(self, trainer: Any) -> None:
            calls.append((self.name, "epoch_start"))

        def on_train_batch_end(self, batch_idx: int) -> None:
            calls.append((self.name, f"batch{batch_idx}"))

    trainer = make_trainer(max_epochs=1, callbacks=[Recorder("b"), Recorder("a")])
    trainer.fit(model_cls(), make_loader(n=16))
    assert calls == [
        ("b", "epoch_start"),
        ("a", "epoch_start"),
        ("b", "batch0"),
        ("a", "batch0"),
        ("b", "batch1"),
        ("a", "batch1"),
    ]


def test_callbacks_selected_by_provider_name(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    trainer = make_trainer(
        max_epochs=2,
        callbacks=[
            "model_summary",
            {"name": "early_stopping", "monitor": "val_loss", "patience": 7},
            "lr_monitor",
            {"name": "tqdm", "refresh_rate": 5},
            {"name": "timer", "duration": "00:01:00:00", "interval": "epoch"},
            "gradient_norm_monitor",
        ],
    )
    kinds = [type(c) for c in trainer.callbacks]
    assert kinds == [
        ModelSummary,
        EarlyStopping,
        LearningRateMonitor,
        ProgressBar,
        Timer,
        GradientNormMonitor,
    ]
    es = trainer.callbacks[1]
    assert (es.monitor, es.patience) == ("val_loss", 7)
    assert trainer.callbacks[3].refresh_rate == 5
    assert trainer.callbacks[4].time_remaining() == 3600
    trainer.fit(model_cls(), make_loader(), make_loader(seed=1))
    assert trainer.current_epoch == 2


def test_provider_option_errors_name_the_problem(make_trainer: Any) -> None:
    with pytest.raises(OptionsError, match="needs option 'monitor'"):
        make_trainer(callbacks=["early_stopping"])
    with pytest.raises(OptionsError, match="did you mean 'patience'"):
        make_trainer(callbacks=[{"name": "early_stopping", "monitor": "x", "patiense": 2}])
    with pytest.raises(OptionsError, match="must be one of 'min', 'max'"):
        make_trainer(callbacks=[{"name": "early_stopping", "monitor": "x", "mode": "up"}])


@pytest.mark.parametrize("name", BUILT_INS)
def test_provider_schema_matches_the_constructor(name: str) -> None:
    spec = get_plugin_manager().get("callback", name)
    params = inspect.signature(spec.load()).parameters
    assert set(spec.options) == set(params), "the schema and __init__ list different options"
    for key, option in spec.options.items():
        default = params[key].default
        if default is inspect.Parameter.empty:
            assert option.required, f"{name}.{key} has no default, so it must be required"
        else:
            assert option.default == default, f"{name}.{key}: schema and __init__ defaults differ"
        assert option.description, f"{name}.{key} has no description"
    assert spec.description and spec.distribution == "ember"


def test_aliases_and_lambda_is_not_a_provider() -> None:
    pm = get_plugin_manager()
    assert pm.get("callback", "lr_monitor") is pm.get("callback", "learning_rate_monitor")
    assert pm.get("callback", "tqdm") is pm.get("callback", "progress_bar")
    assert "lambda_callback" not in pm.providers("callback")


def test_early_stopping_state_survives_a_checkpoint(
    make_trainer: Any, model_cls: Any, make_loader: Any, tmp_path: Path
) -> None:
    es = EarlyStopping("val_loss", patience=3)
    trainer = make_trainer(max_epochs=3, callbacks=[es])
    trainer.fit(model_cls(val_values=[1.0, 0.5, 0.7]), make_loader(), make_loader(seed=1))
    assert (es.wait_count, es.best_score) == (1, 0.5)
    path = tmp_path / "es.ckpt"
    trainer.save_checkpoint(path)

    restored = EarlyStopping("val_loss", patience=3)
    trainer2 = make_trainer(max_epochs=5, callbacks=[restored])
    trainer2.fit(
        model_cls(val_values=[1.0, 0.5, 0.7, 0.8, 0.9]),
        make_loader(),
        make_loader(seed=1),
        ckpt_path=path,
    )
    # resumed with wait_count 1: epochs 3 and 4 exhaust the patience of 3
    assert restored.stopped_epoch == 4
    assert restored.wait_count == 3
    assert restored.best_score == 0.5


@pytest.mark.parametrize("name", BUILT_INS)
def test_every_built_in_is_documented_with_its_options(name: str) -> None:
    spec = get_plugin_manager().get("callback", name)
    text = DOCS.read_text()
    heading = next(
        line for line in text.splitlines() if line.startswith(f"### {spec.load().__name__}")
    )
    assert f"`{name}`" in heading
    for alias in spec.aliases:
        assert f"`{alias}`" in heading
    for option in spec.options:
        assert f"| `{option}` |" in text, f"docs/callbacks.md does not describe {name}.{option}"


def test_callback_base_imports_no_torch() -> None:
    code = (
        "import sys, ember.trainer.callback, ember.trainer.builtins; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
