"""`ember fit | validate | test | predict` on a user's own project: class paths from the
current directory, loaders given as functions, --ckpt-path, and the exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_helpers import TINY_MODULE, run_ember

RUN = """
seed_everything = 1

[trainer]
max_epochs = 2
enable_progress_bar = false
enable_model_summary = false

[model]
class_path = "tinyproject:Tiny"
init_args = { lr = 0.05 }

[data.train]
class_path = "tinyproject:loader"
init_args = { n = 64, seed = 0 }

[data.val]
class_path = "tinyproject.loader"
init_args = { seed = 1 }

[data.test]
class_path = "tinyproject:loader"
init_args = { seed = 2 }

[data.predict]
class_path = "tinyproject:loader"
init_args = { n = 20, seed = 3 }
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "tinyproject.py").write_text(TINY_MODULE)
    (root / "run.toml").write_text(RUN)
    return root


def _ok(proc) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    return output


def _last_checkpoint(project: Path) -> Path:
    """The last.ckpt of the one run under ``project`` (each run keeps its own folder)."""
    (found,) = (project / "ember_runs").glob("*/checkpoints/last.ckpt")
    return found


def test_fit_then_evaluate_from_the_last_checkpoint(project: Path) -> None:
    _ok(run_ember("fit", "--config", "run.toml", cwd=project))
    assert _last_checkpoint(project).is_file()

    out = _ok(run_ember("validate", "--config", "run.toml", "--ckpt-path", "last", cwd=project))
    assert "val_loss" in out
    out = _ok(run_ember("test", "--config", "run.toml", "--ckpt-path", "last", cwd=project))
    assert "test_loss" in out
    out = _ok(run_ember("predict", "--config", "run.toml", "--ckpt-path", "last", cwd=project))
    assert "ember predict: 3 prediction batches" in out


def test_resume_fit_from_last(project: Path) -> None:
    """Fit again with --ckpt-path last and one more epoch: it continues, not restarts."""
    proc = run_ember(
        "fit",
        "--config",
        "run.toml",
        "--ckpt-path",
        "last",
        "--set",
        "trainer.max_epochs=3",
        cwd=project,
    )
    _ok(proc)
    import torch

    ckpt = torch.load(_last_checkpoint(project), weights_only=True)
    assert ckpt["epoch"] == 2


def test_a_failing_run_exits_1_with_its_traceback(project: Path) -> None:
    """An error inside the user's training code is not a configuration problem: the
    traceback is what the user needs."""
    (project / "broken.py").write_text(
        TINY_MODULE.replace(
            "loss = nn.functional.mse_loss(self.layer(x), y)\n",
            "raise RuntimeError('boom in training_step')\n",
            1,
        )
    )
    (project / "broken.toml").write_text(RUN.replace("tinyproject:Tiny", "broken:Tiny"))
    proc = run_ember("fit", "--config", "broken.toml", cwd=project)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "ember fit: the run failed: RuntimeError: boom in training_step"
    )


def test_missing_data_for_the_entry_point_is_a_config_error(project: Path) -> None:
    (project / "nodata.toml").write_text(RUN.split("[data.train]")[0])
    proc = run_ember("fit", "--config", "nodata.toml", cwd=project)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith("nodata.toml: fit: fit() needs training data")


def test_usage_error_exits_2(project: Path) -> None:
    proc = run_ember("fit", cwd=project)
    assert proc.returncode == 2
    assert "--config" in proc.stderr
