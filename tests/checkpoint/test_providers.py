"""The checkpoint callbacks as named providers: records, option schemas, building by name."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from ember.hub import OptionsError
from ember.trainer.builtins import _checkpoint_callbacks
from ember.trainer.checkpoint import ModelCheckpoint, OnExceptionCheckpoint

RECORDS = {spec.name: spec for spec in _checkpoint_callbacks()}


@pytest.mark.parametrize(
    ("name", "cls"),
    [("model_checkpoint", ModelCheckpoint), ("on_exception_checkpoint", OnExceptionCheckpoint)],
)
def test_schema_matches_the_constructor(name: str, cls: type) -> None:
    spec = RECORDS[name]
    assert spec.load() is cls
    params = inspect.signature(cls.__init__).parameters
    assert set(spec.options) == set(params) - {"self"}
    for key, option in spec.options.items():
        assert option.default == params[key].default, key


def test_build_by_name_with_options(tmp_path: Path) -> None:
    mc = RECORDS["model_checkpoint"].create(
        dirpath=str(tmp_path), monitor="val_loss", save_top_k=3, train_time_interval="00:30:00"
    )
    assert isinstance(mc, ModelCheckpoint)
    assert (mc.monitor, mc.save_top_k, mc.dirpath) == ("val_loss", 3, str(tmp_path))
    assert mc.train_time_interval.total_seconds() == 1800
    with pytest.raises(OptionsError, match="did you mean 'save_top_k'"):
        RECORDS["model_checkpoint"].create(save_topk=3)
    with pytest.raises(OptionsError, match="must be one of 'min', 'max'"):
        RECORDS["model_checkpoint"].create(mode="avg")
    exc = RECORDS["on_exception_checkpoint"].create(dirpath=str(tmp_path))
    assert exc.ckpt_path == str(tmp_path / "on_exception.ckpt")


def test_records_import_no_torch() -> None:
    code = (
        "import sys; from ember.trainer.builtins import _checkpoint_callbacks; "
        "names = [s.name for s in _checkpoint_callbacks()]; "
        "assert 'torch' not in sys.modules, 'torch imported'; print(names)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['model_checkpoint', 'on_exception_checkpoint']"
