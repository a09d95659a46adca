"""Options, images, checkpoint policies and the lazy SDK import of ember-comet."""

from __future__ import annotations

from pathlib import Path

import pytest
from comet_helpers import archive, images, read_back
from ember.hub import OptionsError, get_plugin_manager
from ember.hub.testing import make_run_info
from ember_comet.logger import MODEL_NAME, CometLogger

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a3f3"
    "5d0000000049454e44ae426082"
)


def test_api_key_is_not_an_option() -> None:
    """An API key in a run file is refused: Comet reads it from COMET_API_KEY."""
    spec = get_plugin_manager().get("logger", "comet")
    assert "api_key" not in spec.options
    with pytest.raises(OptionsError, match="unknown option 'api_key'"):
        spec.validate_options({"online": False, "api_key": "secret"})


def test_options_reach_the_experiment(tmp_path: Path) -> None:
    """Project, workspace, name and tags are those of the experiment; a given key is used."""
    logger = (
        get_plugin_manager()
        .get("logger", "comet")
        .create(
            online=False,
            offline_directory=str(tmp_path / "archives"),
            project_name="proj",
            workspace="team",
            experiment_name="my-experiment",
            tags=["a", "b"],
            experiment_key="0123456789abcdef0123456789abcdef",
        )
    )
    assert logger.open(make_run_info(tmp_path / "runs")) == "0123456789abcdef0123456789abcdef"
    logger.finalize("success")
    found = archive(logger)
    [experiment] = found.experiments
    assert experiment["project_name"] == "proj" and experiment["workspace"] == "team"
    assert sorted(experiment["tags"]) == ["a", "b"]
    names = [m.payload["value"] for m in found.messages if m.type == "log_other"]
    assert "my-experiment" in names


def test_bad_options_are_clear() -> None:
    with pytest.raises(ValueError, match="log_checkpoints='some'"):
        CometLogger(log_checkpoints="some")
    with pytest.raises(TypeError, match="tags must be a list of strings"):
        CometLogger(tags=[1, 2])


def test_image_round_trip(tmp_path: Path) -> None:
    """An image arrives in the archive at its step, its bytes and metadata intact."""
    png = tmp_path / "sample.png"
    png.write_bytes(PNG)
    logger = CometLogger(online=False, offline_directory=tmp_path / "archives")
    logger.open(make_run_info(tmp_path / "runs"))
    logger.log_image("samples/first", str(png), step=7, metadata={"caption": "one pixel"})
    logger.finalize("success")
    assert images(logger) == [("samples/first", 7, PNG, {"caption": "one pixel"})]


@pytest.mark.parametrize(("policy", "expected"), [("none", []), ("best", [2]), ("all", [1, 2])])
def test_checkpoint_policy(tmp_path: Path, policy: str, expected: list[int]) -> None:
    """Checkpoints become files of the 'checkpoints' model per the policy ('best' follows
    the metadata ember attaches to the best checkpoint); other files are assets."""
    ckpt = tmp_path / "epoch=0.ckpt"
    ckpt.write_bytes(b"weights")
    other = tmp_path / "report.txt"
    other.write_bytes(b"report")
    logger = CometLogger(
        online=False, offline_directory=tmp_path / "archives", log_checkpoints=policy
    )
    logger.open(make_run_info(tmp_path / "runs"))
    logger.log_artifact(str(ckpt), "checkpoint", name=ckpt.name, step=1, metadata={})
    logger.log_artifact(
        str(ckpt), "checkpoint", name=ckpt.name, step=2, metadata={"best": True, "score": 0.5}
    )
    logger.log_artifact(str(other), "report", name="report.txt", step=2, metadata={})
    logger.finalize("success")
    uploads = [m.payload for m in archive(logger).messages if m.type == "file_upload"]
    models = [p for p in uploads if p["upload_type"] == "model-element"]
    assert [p["metadata"]["ember_step"] for p in models] == expected
    assert all(p["additional_params"]["groupingName"] == MODEL_NAME for p in models)
    assert ("report", "report.txt", b"report") in read_back(logger).artifacts
