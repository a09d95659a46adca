"""``ember runs list | show | plot`` through the real console script."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from ember.hub.tracking import Run
from tracking_helpers import run_ember


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for name, steps, status in (("alpha", 300, "success"), ("beta", 40, "failed")):
        run = Run.start(root, config={"trainer": {"max_epochs": 2}}, name=name)
        run.log_hyperparams({"lr": 0.01, "model": {"hidden": 32}})
        for step in range(steps):
            run.log_metrics(
                {
                    "train_loss": math.exp(-step / 80) + 0.02 * math.sin(step),
                    "train_acc": 1 - math.exp(-step / 60),
                },
                step=step,
            )
            if step % 50 == 49:
                run.log_metrics({"val_loss": math.exp(-step / 90) + 0.1}, step=step)
        ckpt = root / f"{name}.ckpt"
        ckpt.write_bytes(b"weights")
        run.log_artifact(ckpt, "checkpoint", step=steps - 1)
        run.log_text("note", f"run {name} done", step=steps - 1)
        run.finish(status)
    return root


def test_list(root: Path) -> None:
    proc = run_ember("runs", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["RUN", "NAME", "STATUS", "START", "DURATION", "FINAL", "METRICS"]
    assert "alpha" in lines[1] and "success" in lines[1] and "val_loss=" in lines[1]
    assert "beta" in lines[2] and "failed" in lines[2]
    listed = json.loads(run_ember("runs", "list", "--root", str(root), "--json").stdout)
    assert [r["name"] for r in listed] == ["alpha", "beta"]
    assert listed[0]["last_metrics"]["train_acc"]["step"] == 299


def test_show(root: Path) -> None:
    proc = run_ember("runs", "show", "alpha", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in (
        "status    success",
        "model/hidden  32",
        "lr            0.01",
        "train_loss",
        "checkpoint",
        "alpha.ckpt",
        "note: run alpha done",
    ):
        assert expected in out, expected
    tracker = next(line for line in out.splitlines() if line.strip().startswith("csv"))
    assert tracker.split()[:5] == [
        "csv",
        "ok",
        "609",
        "0",
        "0",
    ]  # 600 + 6 val + hparams, artifact, text

    data = json.loads(run_ember("runs", "show", "alpha", "--root", str(root), "--json").stdout)
    assert data["metrics"]["val_loss"]["count"] == 6
    assert data["trackers"][0]["finalized"] == "success"

    missing = run_ember("runs", "show", "gamma", "--root", str(root))
    assert missing.returncode == 1 and "no run 'gamma'" in missing.stderr


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    proc = run_ember(
        "runs", "plot", "alpha", "train_*", "val_loss", "-o", str(out), "--root", str(root)
    )
    assert proc.returncode == 0, proc.stderr
    width, height = _png_size(out)
    assert width >= 800 and height >= 600
    assert out.stat().st_size > 20_000  # three panels of curves, not an empty canvas

    from matplotlib import image

    pixels = image.imread(str(out))
    # plenty of coloured (non-grey) pixels: the curves were drawn
    rgb = pixels[..., :3]
    coloured = ((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.3).sum()
    assert coloured > 2000

    bad = run_ember("runs", "plot", "alpha", "val_los", "-o", str(out), "--root", str(root))
    assert bad.returncode == 1 and "did you mean 'val_loss'" in bad.stderr


def test_imports_stay_light(root: Path) -> None:
    """`import ember.hub` loads only the logger contract; `ember runs` no torch, and no
    matplotlib unless plotting."""
    code = (
        "import sys; import ember.hub; "
        "assert 'sqlite3' not in sys.modules and 'ember.hub.tracking.run' not in sys.modules; "
        "from ember.hub.cli import main; "
        f"main(['runs', '--root', {str(root)!r}]); "
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _run_with_metrics(root: Path, name: str, steps: int = 3000) -> Run:
    run = Run.start(root, [], name=name)
    for step in range(steps):
        run.log_metrics({"loss": float(step), "acc": 0.5}, step=step)
    run.finish()
    return run


def test_a_damaged_journal_is_reported_and_skipped(tmp_path: Path) -> None:
    healthy = _run_with_metrics(tmp_path, "healthy")
    damaged = _run_with_metrics(tmp_path, "damaged")
    data = bytearray(damaged.journal_path.read_bytes())
    page = (len(data) // 4096 // 2) * 4096  # a page of the records, not the run's identity
    data[page : page + 4096] = b"\xff" * 4096
    damaged.journal_path.write_bytes(bytes(data))

    proc = run_ember("runs", "--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert healthy.id in proc.stdout and damaged.id not in proc.stdout
    assert "Traceback" not in proc.stderr
    assert f"ember: skipping {damaged.dir}: the run journal" in proc.stderr
    assert "is damaged (database disk image is malformed)" in proc.stderr

    listed = json.loads(run_ember("runs", "list", "--json", "--root", str(tmp_path)).stdout)
    assert [r["id"] for r in listed] == [healthy.id]

    show = run_ember("runs", "show", str(damaged.dir))
    assert show.returncode == 1 and "Traceback" not in show.stderr
    assert "is damaged" in show.stderr and ".recover" in show.stderr


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0", "soon"])
def test_sync_rejects_a_timeout_that_is_not_a_positive_number(value: str, tmp_path: Path) -> None:
    proc = run_ember("sync", str(tmp_path), "--to", "csv", "--timeout", value)
    assert proc.returncode == 2
    assert f"argument --timeout: {value!r} is not a positive number of seconds" in proc.stderr


def test_runs_on_a_missing_root_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    for args in (["runs", "--root", str(missing)], ["runs", "list", "--root", str(missing)]):
        proc = run_ember(*args)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr == (
            f"ember: --root {missing}: no such folder. Pass the default_root_dir of your runs, "
            "its ember_runs folder, or a run directory\n"
        )
    show = run_ember("runs", "show", "abc", "--root", str(missing))
    assert show.returncode == 1 and "does not exist (choose it with --root)" in show.stderr
    empty = run_ember("runs", "--root", str(tmp_path))  # an existing folder with no runs
    assert empty.returncode == 0 and "no runs under" in empty.stdout
