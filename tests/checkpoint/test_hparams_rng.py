"""Hyperparameters as plain data, and random generator states, through a real save/load."""

from __future__ import annotations

import dataclasses
import enum
import random
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from ember.trainer.checkpoint import (
    capture_rng_state,
    checkpoint_header,
    load_checkpoint_safe,
    restore_rng_state,
    save_checkpoint_atomic,
    to_plain,
)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Optim:
    lr: float = 0.1
    betas: tuple = (0.9, 0.99)


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


def test_plain_values_pass_through_silently(recwarn: pytest.WarningsRecorder) -> None:
    hparams = {
        "lr": 1e-3,
        "layers": [64, 32],
        "betas": (0.9, 0.999),
        "name": "net",
        "flag": True,
        "none": None,
        "nested": OrderedDict(a={"b": 1}),
        "path": Path("/data/x"),
        "tags": {"b", "a"},
        "np_float": np.float64(0.5),
        "np_int": np.int64(3),
        "scalar": torch.tensor(2.5),
        "dtype": torch.float16,
    }
    plain = to_plain(hparams)
    assert plain == {
        "lr": 1e-3,
        "layers": [64, 32],
        "betas": (0.9, 0.999),
        "name": "net",
        "flag": True,
        "none": None,
        "nested": {"a": {"b": 1}},
        "path": "/data/x",
        "tags": ["a", "b"],
        "np_float": 0.5,
        "np_int": 3,
        "scalar": 2.5,
        "dtype": torch.float16,
    }
    assert type(plain["np_float"]) is float and type(plain["np_int"]) is int
    assert len(recwarn) == 0


def test_objects_are_described_with_a_warning() -> None:
    with pytest.warns(UserWarning) as record:
        plain = to_plain(
            {
                "act": torch.nn.ReLU,
                "optim": Optim(),
                "color": Color.RED,
                "thing": Opaque(),
                "table": np.ones((2, 2)),
            }
        )
    assert plain == {
        "act": {"class_path": "torch.nn.modules.activation:ReLU"},
        "optim": {
            "class_path": f"{__name__}:Optim",
            "init_args": {"lr": 0.1, "betas": (0.9, 0.99)},
        },
        "color": "red",
        "thing": "Opaque()",
        "table": [[1.0, 1.0], [1.0, 1.0]],
    }
    messages = " ".join(str(w.message) for w in record)
    assert "hyperparameter hparams['thing'] is a " in messages
    assert "load_from_checkpoint(path, <name>=...)" in messages


def test_plain_hparams_load_with_weights_only(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        plain = to_plain({"act": torch.nn.Tanh, "optim": Optim(), "x": Opaque()})
    path = save_checkpoint_atomic(
        {**checkpoint_header(), "hyper_parameters": plain}, tmp_path / "h.ckpt"
    )
    assert load_checkpoint_safe(path)["hyper_parameters"] == plain


def _draw() -> tuple:
    return (random.random(), float(np.random.rand()), float(torch.rand(())), random.gauss(0, 1))


def test_rng_state_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.standard_normal()
    state = capture_rng_state()
    expected = [_draw() for _ in range(3)]
    path = save_checkpoint_atomic({**checkpoint_header(), "rng": state}, tmp_path / "rng.ckpt")

    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint_safe(path)["rng"])
    assert [_draw() for _ in range(3)] == expected
    assert "cuda" not in state  # CUDA was never used in this process


def test_cuda_state_without_cuda_warns() -> None:
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    state = capture_rng_state()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
    with pytest.warns(UserWarning, match="CUDA is not available"):
        restore_rng_state(state)
