"""Two TensorBoard loggers of one run never share an events folder: the same folder,
however it is spelled or reached, is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from ember.hub import OptionsError
from ember.hub.tracking import resolve_loggers


@pytest.mark.parametrize(
    "second",
    [
        "tensorboard",
        # options that do not move the folder: still one folder
        {"name": "tensorboard", "log_graph": True, "flush_secs": 5.0},
    ],
)
def test_two_default_tensorboard_loggers_are_refused(second: object) -> None:
    with pytest.raises(OptionsError, match=r"would both write to <run dir>/tensorboard: "):
        resolve_loggers(["tensorboard", second])


def test_one_save_dir_spelled_twice_is_refused(tmp_path: Path) -> None:
    first = {"name": "tensorboard", "save_dir": str(tmp_path / "tb")}
    second = {"name": "tensorboard", "save_dir": f"{tmp_path}/other/../tb/", "log_graph": True}
    with pytest.raises(OptionsError, match=r"/tb/ember/<run id>: two loggers of one run"):
        resolve_loggers([first, second])


def test_distinct_folders_are_accepted(tmp_path: Path) -> None:
    entries = resolve_loggers(
        [
            "tensorboard",
            {"name": "tensorboard", "experiment_name": "second"},
            {"name": "tensorboard", "save_dir": str(tmp_path), "version": "a"},
            {"name": "tensorboard", "save_dir": str(tmp_path), "version": "b"},
        ]
    )
    assert [e.logger.destination() for e in entries] == [
        "<run dir>/tensorboard",
        "<run dir>/tensorboard/second",
        f"{tmp_path.resolve()}/ember/a",
        f"{tmp_path.resolve()}/ember/b",
    ]
