"""Options, images, checkpoint policies and the lazy SDK import of ember-wandb."""

from __future__ import annotations

from pathlib import Path

import pytest
from ember.hub import OptionsError, get_plugin_manager
from ember.hub.testing import make_run_info
from ember_wandb.logger import WandbLogger
from wandb_helpers import files_under, images, offline_run, read_back

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a3f3"
    "5d0000000049454e44ae426082"
)


def test_api_key_is_not_an_option() -> None:
    """An API key in a run file is refused: W&B reads it from WANDB_API_KEY or its login."""
    spec = get_plugin_manager().get("logger", "wandb")
    assert "api_key" not in spec.options
    with pytest.raises(OptionsError, match="unknown option 'api_key'"):
        spec.validate_options({"mode": "offline", "api_key": "secret"})


def test_options_reach_the_run(tmp_path: Path) -> None:
    """Name, tags, notes, group and job type are those of the W&B run."""
    logger = (
        get_plugin_manager()
        .get("logger", "wandb")
        .create(
            mode="offline",
            dir=str(tmp_path / "wb"),
            run_name="my-run",
            tags=["a", "b"],
            notes="why this run",
            group="sweep-1",
            job_type="train",
            id="fixedid123",
        )
    )
    assert logger.open(make_run_info(tmp_path / "runs")) == "fixedid123"
    logger.finalize("success")
    run = offline_run(logger)
    assert run.display_name == "my-run" and run.tags == ["a", "b"]
    assert run.files[0].parent.name.endswith("-fixedid123")


def test_bad_options_are_clear() -> None:
    with pytest.raises(ValueError, match="log_checkpoints='some'"):
        WandbLogger(log_checkpoints="some")
    with pytest.raises(TypeError, match="tags must be a list of strings"):
        WandbLogger(tags=[1, 2])


def test_image_round_trip(tmp_path: Path) -> None:
    """An image arrives as a W&B image at its step, its bytes and caption intact."""
    png = tmp_path / "sample.png"
    png.write_bytes(PNG)
    logger = WandbLogger(mode="offline", dir=tmp_path / "wb")
    logger.open(make_run_info(tmp_path / "runs"))
    logger.log_image("samples/first", str(png), step=7, metadata={"caption": "one pixel"})
    logger.finalize("success")
    [(key, step, data, record)] = images(logger)
    assert (key, step, data) == ("samples/first", 7, PNG)
    assert record["caption"] == "one pixel" and record["width"] == 1


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("none", []),
        ("best", [["best", "latest"]]),
        ("all", [["latest"], ["best", "latest"]]),
    ],
)
def test_checkpoint_policy(tmp_path: Path, policy: str, expected: list[list[str]]) -> None:
    """Checkpoints become versions of one model artifact; 'best' follows the metadata
    ember attaches to the best checkpoint; other artifacts are always uploaded."""
    ckpt = tmp_path / "epoch=0.ckpt"
    ckpt.write_bytes(b"weights")
    other = tmp_path / "report.txt"
    other.write_bytes(b"report")
    logger = WandbLogger(mode="offline", dir=tmp_path / "wb", log_checkpoints=policy)
    logger.open(make_run_info(tmp_path / "runs"))
    logger.log_artifact(str(ckpt), "checkpoint", name=ckpt.name, step=1, metadata={})
    logger.log_artifact(
        str(ckpt), "checkpoint", name=ckpt.name, step=2, metadata={"best": True, "score": 0.5}
    )
    logger.log_artifact(str(other), "report", name="report.txt", step=2, metadata={})
    logger.finalize("success")
    run = offline_run(logger)
    models = [a for a in run.artifacts if a.type == "model"]
    assert [sorted(a.aliases) for a in models] == expected
    assert all(a.name == f"model-{logger.run_id}" for a in models)
    assert [(a.type, a.name) for a in run.artifacts if a.type != "model"] == [
        ("report", "report.txt")
    ]
    back = read_back(logger)
    assert ("report", "report.txt", b"report") in back.artifacts


def test_disabled_mode_writes_nothing(tmp_path: Path) -> None:
    """mode='disabled' accepts every call and writes no run file."""
    logger = WandbLogger(mode="disabled", dir=tmp_path / "wb")
    run = make_run_info(tmp_path / "runs")
    logger.open(run)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_text("note", "hello", step=1)
    logger.finalize("success")
    assert not list((tmp_path / "wb").rglob("*.wandb"))
    assert files_under(Path(run.dir)) == []
