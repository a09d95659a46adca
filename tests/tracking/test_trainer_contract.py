"""The logger contract seen from the Trainer: one tracker run for all stages (finalized
once, at exit), images from a module or callback in every form a user has, and the
escape hatch from ``self.logger``."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.hub import Logger
from ember.hub.tracking import Capabilities, JournalReader
from ember.hub.tracking.images import png_size
from ember.trainer import Callback, EmberModule, Trainer
from ember_fixture_trackers.loggers import RecorderLogger
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from tracking_helpers import read_jsonl

STAGES_SCRIPT = """
    import json, sys
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset
    from ember.hub import Logger
    from ember.hub.tracking import Capabilities
    from ember.trainer import EmberModule, Trainer

    class Tape(Logger):
        name = "tape"
        capabilities = Capabilities(metrics=True, offline=True)

        def _write(self, *entry):
            with open(sys.argv[2], "a") as f:
                f.write(json.dumps(entry) + "\\n")

        def open(self, run):
            self._write("open")

        def log_metrics(self, records):
            for r in records:
                self._write("metric", r.name, r.step)

        def finalize(self, status):
            self._write("finalize", status)

    class Model(EmberModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            return loss

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_loss", F.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x = torch.randn(32, 4)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    trainer = Trainer(max_epochs=2, log_every_n_steps=1, default_root_dir=sys.argv[1],
                      logger=Tape(), enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False)
    model = Model()
    trainer.fit(model, data)
    trainer.test(model, data, verbose=False)
    print("ended", flush=True)
"""


def test_fit_then_test_is_one_tracker_run_finalized_once_at_exit(tmp_path: Path) -> None:
    script = tmp_path / "stages.py"
    script.write_text(textwrap.dedent(STAGES_SCRIPT))
    tape = tmp_path / "tape.jsonl"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "root"), str(tape)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ended") and "LOGGER" not in proc.stderr
    entries = [tuple(e) for e in read_jsonl(tape)]
    assert entries[0] == ("open",) and entries[-1] == ("finalize", "success")
    assert entries.count(("open",)) == 1
    assert sum(1 for e in entries if e[0] == "finalize") == 1
    # each record once ("epoch" is logged by both stages at the last step)
    metrics = [e[1:] for e in entries if e[0] == "metric" and e[1] != "epoch"]
    assert len(metrics) == len(set(metrics))
    assert [s for n, s in metrics if n == "loss"] == list(range(1, 9))
    assert [n for n, _ in metrics].count("test_loss") == 1
    (run_dir,) = (tmp_path / "root" / "ember_runs").iterdir()
    with JournalReader(run_dir) as reader:
        assert reader.status()[0] == "success"
        stages = [e["data"] for e in reader.events("stage_end")]
    assert stages == [
        {"stage": "fit", "outcome": "success"},
        {"stage": "test", "outcome": "success"},
    ]


def loader() -> DataLoader:
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)


class Imaging(EmberModule):
    """Logs one image per input form on the first step."""

    def __init__(self, forms: dict[str, Any]) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)
        self.forms = forms

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if batch_idx == 0:
            for key, image in self.forms.items():
                self.log_image(key, image)
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_log_image_accepts_every_form_and_delivers_pngs(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    pil = pytest.importorskip("PIL.Image")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1), dpi=20)
    figure.add_subplot().plot([0, 1], [1, 0])
    existing = tmp_path / "existing.png"
    pil.new("RGB", (6, 2), (0, 0, 255)).save(existing)
    forms = {
        "tensor/chw": torch.ones(3, 5, 7) * 0.5,
        "tensor/hw_uint8": torch.full((4, 3), 200, dtype=torch.uint8),
        "numpy/hwc": np.zeros((2, 3, 4), dtype=np.uint8),
        "pil": pil.new("L", (3, 3), 9),
        "figure": figure,
        "file": str(existing),
    }

    class FromCallback(Callback):
        def on_train_end(self, trainer: Trainer, pl_module: EmberModule) -> None:
            trainer.log_image("callback/last", torch.zeros(1, 2, 2), step=99)

    recorder = RecorderLogger(str(tmp_path / "rec.jsonl"))
    trainer = Trainer(
        max_epochs=1,
        default_root_dir=str(tmp_path),
        logger=["csv", recorder],
        callbacks=[FromCallback()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Imaging(forms), loader())
    report = trainer.run.flush()
    assert report.complete, str(report)
    received = {e["key"]: e for e in read_jsonl(tmp_path / "rec.jsonl") if e["type"] == "image"}
    assert sorted(received) == sorted([*forms, "callback/last"])
    sizes = {key: png_size(e["path"])[:2] for key, e in received.items()}
    assert sizes["tensor/chw"] == (7, 5) and sizes["tensor/hw_uint8"] == (3, 4)
    assert sizes["numpy/hwc"] == (3, 2) and sizes["pil"] == (3, 3)
    assert sizes["figure"] == (40, 20) and sizes["file"] == (6, 2)
    assert received["callback/last"]["step"] == 99 and received["pil"]["step"] == 0
    run_dir = Path(trainer.log_dir)
    for e in received.values():  # stored in the run directory, described by metadata
        assert Path(e["path"]).is_relative_to(run_dir / "images")
        assert (e["meta"]["width"], e["meta"]["height"]) == png_size(e["path"])[:2]
    with pil.open(received["tensor/chw"]["path"]) as img:
        assert img.getpixel((0, 0)) == (128, 128, 128)
    with JournalReader(run_dir) as reader:
        assert len(reader.records("image")) == len(forms) + 1
    with pytest.raises(ValueError, match="1 to 4 channels"):
        trainer.log_image("bad", torch.zeros(5, 6, 7))
    trainer.run.finish()


class Hatch(Logger):
    name = "hatch"
    capabilities = Capabilities(metrics=True, offline=True, experiment=True)

    def __init__(self) -> None:
        self.store: dict[str, Any] = {"histograms": [], "metrics": 0}

    @property
    def experiment(self) -> dict[str, Any]:
        return self.store

    def log_metrics(self, records: Any) -> None:
        self.store["metrics"] += len(records)


def test_a_module_reaches_the_trackers_object_through_self_logger(tmp_path: Path) -> None:
    class Histograms(EmberModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4, 2)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            weights = self.net.weight.detach().cpu().clone()  # fn runs later, elsewhere
            step = self.global_step
            self.logger.call(
                lambda exp: exp["histograms"].append((step, exp["metrics"], weights.sum().item()))
            )
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    hatch = Hatch()
    trainer = Trainer(
        max_epochs=1,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path),
        logger=hatch,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    model = Histograms()
    assert model.logger is None  # no trainer yet
    trainer.fit(model, loader())
    trainer.run.finish()
    # in step order, each after the metrics flushed before it
    assert [(s, m) for s, m, _ in hatch.store["histograms"]] == [(0, 0), (1, 2)]
    assert trainer.loggers["hatch"].name == "hatch" and trainer.logger is not None
    assert json.dumps(hatch.store["histograms"])  # plain values came back


def test_a_collected_trainer_finalizes_its_tracker_runs(tmp_path: Path) -> None:
    hatch = Hatch()
    finalized: list[str] = []
    hatch.finalize = finalized.append  # type: ignore[method-assign]
    trainer = Trainer(
        max_epochs=1,
        default_root_dir=str(tmp_path),
        logger=hatch,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    model = Imaging({})
    trainer.fit(model, loader())
    run = trainer.run
    assert run.report is None and finalized == []  # open for a later stage
    del trainer, model
    gc.collect()
    deadline = time.monotonic() + 60
    while run.report is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.report is not None and run.report.status == "success"
    assert finalized == ["success"]
