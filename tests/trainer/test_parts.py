"""The engine's parts keep their contracts: loops read nothing private of the Trainer,
trainer code imports only what the hub exports, and one batch walker serves every
container a loader yields."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path
from typing import Any

import torch
from ember.trainer import EmberModule
from ember.trainer.plugins import map_batch, move_to_device
from torch import nn

TRAINER = Path(__file__).resolve().parents[2] / "trainer"


def test_loops_read_no_private_attribute_of_another_object() -> None:
    """Regression: the loops read about 90 private Trainer attributes."""
    offences = []
    for path in sorted((TRAINER / "loops").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                offences.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offences == []


def test_callbacks_use_no_private_trainer_method() -> None:
    """Regression: the learning-rate and gradient-norm monitors logged through a private
    trainer method that no third-party callback could use."""
    offences = []
    for folder in ("callbacks", "checkpoint"):
        for path in sorted((TRAINER / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr.startswith("_")
                    and isinstance(node.value, ast.Name)
                    and node.value.id in ("trainer", "t")
                ):
                    offences.append(f"{folder}/{path.name}:{node.lineno} .{node.attr}")
    assert offences == []


def test_trainer_code_imports_only_what_the_hub_exports() -> None:
    """Regression: the trainer imported hub names the hub does not export."""
    offences = []
    for path in sorted(TRAINER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ember.hub"):
                public = node.module in ("ember.hub", "ember.hub.tracking", "ember.hub.testing")
                exported = set(getattr(importlib.import_module(node.module), "__all__", ()))
                for alias in node.names:
                    if not public or alias.name not in exported:
                        offences.append(f"{path.relative_to(TRAINER)}: {node.module}.{alias.name}")
    assert offences == []


@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor
    note: str = "kept"


class DataclassModel(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.dtypes: list[torch.dtype] = []

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        self.dtypes.append(batch.x.dtype)
        return ((self.layer(batch.x) - batch.y) ** 2).mean()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_64_true_casts_dataclass_batches(make_trainer: Any) -> None:
    """Regression: the float64 cast walked lists, tuples and dicts but not dataclasses,
    so ``precision="64-true"`` silently fed float32 dataclass batches."""
    batches = [Batch(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(3)]
    model = DataclassModel()
    make_trainer(max_epochs=1, precision="64-true").fit(model, batches)
    assert model.dtypes == [torch.float64] * 3


def test_one_walker_rebuilds_every_container() -> None:
    Point = __import__("collections").namedtuple("Point", "a b")
    batch = {
        "p": Point(torch.ones(1), [torch.zeros(2), "text"]),
        "d": Batch(torch.ones(1), torch.ones(1)),
    }
    doubled = map_batch(batch, lambda v: v * 2 if isinstance(v, torch.Tensor) else v)
    assert isinstance(doubled["p"], Point) and doubled["p"].b[1] == "text"
    assert torch.equal(doubled["p"].a, torch.full((1,), 2.0))
    assert isinstance(doubled["d"], Batch) and doubled["d"].note == "kept"
    moved = move_to_device(batch, torch.device("cpu"))
    assert torch.equal(moved["d"].x, batch["d"].x)
