"""ember-tensorboard against the logger contract, read back with TensorBoard's own
reader (``EventAccumulator`` with no sampling: every step and value)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ember.hub.testing import LoggerConformance, ReadBack, make_run_info
from ember.hub.tracking import Logger, RunInfo
from ember_tensorboard.logger import TensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import metadata as hp_metadata

STATUS_NAMES = {1: "success", 2: "failed", 0: "interrupted"}


def read_tensorboard(log_dir: str | Path) -> ReadBack:
    """Everything TensorBoard holds in ``log_dir``, after its own restart purges."""
    acc = ea.EventAccumulator(
        str(log_dir),
        size_guidance={ea.SCALARS: 0, ea.TENSORS: 0, ea.IMAGES: 0, ea.HISTOGRAMS: 0},
    )
    acc.Reload()
    tags = acc.Tags()
    back = ReadBack()
    for tag in tags[ea.SCALARS]:
        back.metrics += [(tag, e.step, e.value) for e in acc.Scalars(tag)]
    for tag in _plugin_tags(acc, "text"):
        for event in acc.Tensors(tag):
            text = event.tensor_proto.string_val[0].decode("utf-8")
            if tag.startswith("artifacts/"):
                name, _, path = text.partition(": ")
                back.artifacts.append((tag.split("/", 1)[1], name, Path(path).read_bytes()))
            else:
                back.texts.append((tag, event.step, text))
    for tag in tags[ea.IMAGES]:
        back.images += [(tag, e.step, e.encoded_image_string) for e in acc.Images(tag)]
    hparams = _plugin_tags(acc, hp_metadata.PLUGIN_NAME)
    if hp_metadata.SESSION_START_INFO_TAG in hparams:
        start = hp_metadata.parse_session_start_info_plugin_data(
            hparams[hp_metadata.SESSION_START_INFO_TAG]
        )
        for key, value in start.hparams.items():
            back.hyperparams[key] = getattr(value, value.WhichOneof("kind"))
    if hp_metadata.SESSION_END_INFO_TAG in hparams:
        end = hp_metadata.parse_session_end_info_plugin_data(
            hparams[hp_metadata.SESSION_END_INFO_TAG]
        )
        back.status = STATUS_NAMES.get(end.status)
    return back


def _plugin_tags(acc: ea.EventAccumulator, plugin: str) -> dict[str, bytes]:
    try:
        return acc.PluginTagToContent(plugin)
    except KeyError:  # nothing of that plugin was written
        return {}


class TestTensorBoardConformance(LoggerConformance):
    provider_name = "tensorboard"
    sdk_modules = ("tensorboard", "torch")
    rel_tol = 1e-6  # simple_value is float32: compared with this relative tolerance

    @pytest.fixture
    def make_logger(self, tmp_path: Path) -> Any:
        # no hp_metric: the kit compares the metrics it sent with those read back
        return lambda: TensorBoardLogger(save_dir=tmp_path / "tb", default_hp_metric=False)

    def read_back(self, logger: Logger, run: RunInfo) -> ReadBack:
        assert isinstance(logger, TensorBoardLogger) and logger.log_dir is not None
        return read_tensorboard(logger.log_dir)

    def test_finalize_status(self, make_logger: Any, ember_run_info: RunInfo, status: str) -> None:
        """The HPARAMS session records the status; it exists once hyperparameters were
        logged, so log some first."""
        logger = make_logger()
        logger.open(ember_run_info)
        logger.log_hyperparams({"lr": 0.1})
        logger.finalize(status)
        assert self.read_back(logger, ember_run_info).status == status

    test_finalize_status = pytest.mark.parametrize("status", ["success", "failed", "interrupted"])(
        test_finalize_status
    )


class TestTensorBoardInRunDir(TestTensorBoardConformance):
    """The default: the events go under the run directory."""

    @pytest.fixture
    def make_logger(self, tmp_path: Path) -> Any:
        return lambda: TensorBoardLogger(default_hp_metric=False)


def test_folders_and_hp_metric(tmp_path: Path) -> None:
    ember_run_info = make_run_info(tmp_path / "runs")
    logger = TensorBoardLogger(save_dir=tmp_path / "tb", name="exp", version="v1")
    assert logger.open(ember_run_info) == str(tmp_path / "tb" / "exp" / "v1")
    logger.log_hyperparams({"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}, "note": None})
    logger.finalize("success")
    back = read_tensorboard(tmp_path / "tb" / "exp" / "v1")
    assert back.metrics == [("hp_metric", 0, -1.0)]  # Lightning's placeholder, by default
    assert back.hyperparams == {
        "optimizer/lr": pytest.approx(0.1),
        "optimizer/betas": "[0.9, 0.99]",
        "note": "None",
    }
    default = TensorBoardLogger(save_dir=tmp_path / "tb")
    assert default.open(ember_run_info) == str(tmp_path / "tb" / "ember" / ember_run_info.id)
    default.finalize("success")
    in_run = TensorBoardLogger(version="v2")
    assert in_run.open(ember_run_info) == str(Path(ember_run_info.dir) / "tensorboard" / "v2")
    in_run.finalize("success")
