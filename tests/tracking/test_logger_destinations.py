"""Two loggers of one run never share a destination: ``logger=["csv", "csv"]``, the same
logger object twice, two loggers whose options point at one place, or a run file that
lists one logger twice are refused before anything is written, with a message that says
how to give each its own place. Loggers with distinct destinations both receive
everything."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.hub import Logger, OptionsError
from ember.hub.tracking import Capabilities, Run, resolve_loggers
from ember.hub.tracking.csv_logger import CSVLogger
from ember.trainer import EmberModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Tiny(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("loss", loss, on_step=True, on_epoch=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


CSV_TWICE = (
    "logger[0] (csv) and logger[1] (csv) would both write to <run dir>/metrics.csv: two "
    "loggers of one run must not share a destination, since each would write over the "
    "other's records. List it once, or give each its own destination through its options "
    "(for csv and tensorboard a distinct save_dir, e.g. {'name': 'csv', 'save_dir': "
    "'logs/second'}; for a tracker, a distinct run or experiment)"
)


def test_csv_twice_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """The issue's case: on the old main both loggers wrote the run's one metrics.csv,
    with every column and row twice."""
    with pytest.raises(OptionsError) as info:
        Trainer(logger=["csv", "csv"], default_root_dir=str(tmp_path))
    assert str(info.value) == CSV_TWICE
    with pytest.raises(OptionsError, match=r"would both write to <run dir>/metrics\.csv"):
        Run.start(tmp_path, loggers=["csv", {"name": "csv"}])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "second",
    [
        "{root}/logs",
        "{root}/logs/",
        "{root}/logs/../logs",
        "{root}/link",  # a symbolic link to logs
    ],
)
def test_two_spellings_of_one_folder_are_one_destination(tmp_path: Path, second: str) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "logs")
    first = {"name": "csv", "save_dir": str(tmp_path / "logs")}
    other = {"name": "csv", "save_dir": second.format(root=tmp_path)}
    with pytest.raises(OptionsError, match=r"would both write to .*/logs/<run id>/metrics.csv"):
        resolve_loggers([first, other])


def test_one_logger_object_twice_is_refused(tmp_path: Path) -> None:
    logger = CSVLogger(save_dir=tmp_path)
    with pytest.raises(OptionsError, match=r"logger\[0\] \(csv\) and logger\[1\] \(csv\) are "):
        Trainer(logger=[logger, logger], default_root_dir=str(tmp_path))


class Folder(Logger):
    """A third-party logger that writes into a folder of its options."""

    name = "folder"
    capabilities = Capabilities(metrics=True)

    def __init__(self, where: str | None = None) -> None:
        self.where = where

    def destination(self) -> str | None:
        return self.where

    def log_metrics(self, records: Any) -> None:
        pass


def test_a_third_party_logger_declares_its_destination() -> None:
    """Any logger says where it writes; two with one destination are refused, two that
    make a fresh place each time (``None``) are not."""
    with pytest.raises(OptionsError, match="would both write to /data/a"):
        resolve_loggers([Folder("/data/a"), Folder("/data/a")])
    entries = resolve_loggers([Folder("/data/a"), Folder("/data/b"), Folder(), Folder()])
    assert [e.key for e in entries] == ["folder", "folder#2", "folder#3", "folder#4"]


def test_distinct_destinations_each_get_everything(tmp_path: Path) -> None:
    """The fix the message suggests: the run directory and a save_dir, one row per step in
    each, no duplicate column."""
    other = tmp_path / "second"
    trainer = Trainer(
        logger=["csv", {"name": "csv", "save_dir": str(other)}],
        default_root_dir=str(tmp_path),
        max_epochs=2,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Tiny(), DataLoader(TensorDataset(torch.randn(32, 4)), batch_size=8))
    for path in (Path(trainer.log_dir) / "metrics.csv", other / trainer.run.id / "metrics.csv"):
        with path.open() as f:
            rows = list(csv.reader(f))
        assert len(rows[0]) == len(set(rows[0])), rows[0]
        steps = [row[0] for row in rows[1:]]
        assert len(steps) == len(set(steps)) and steps, steps


def test_a_run_file_that_lists_a_logger_twice(tmp_path: Path) -> None:
    """Validating the run file (what `ember config validate` and `ember fit --config` do
    first) refuses it, counting the options' defaults: nothing is run."""
    from ember.hub.config import ConfigError, load_config

    config = tmp_path / "run.toml"
    config.write_text(
        f"[trainer]\nmax_epochs = 1\ndefault_root_dir = {str(tmp_path)!r}\n\n"
        '[model]\nclass_path = "examples.digits.model:DigitsClassifier"\n\n'
        '[[loggers]]\nname = "tensorboard"\n\n'
        '[[loggers]]\nname = "csv"\n\n'
        '[[loggers]]\nname = "tensorboard"\nflush_secs = 120.0\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert (
        "loggers[2]: the same logger as loggers[0] ('tensorboard' with the same options): "
        "both would write to one destination"
    ) in str(info.value)
    assert not (tmp_path / "ember_runs").exists()
