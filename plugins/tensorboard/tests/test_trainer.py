"""ember-tensorboard driven by the real Trainer, chosen by name: every step and value,
text, images, hyperparameters, the graph, one folder for fit then test, and a training
process killed with SIGKILL then resumed into the same folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.hub.tracking import JournalReader
from ember.trainer import EmberModule, Trainer
from ember.trainer.callbacks import ModelCheckpoint
from tensorboard.backend.event_processing import event_accumulator as ea
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

HERE = Path(__file__).parent


def accumulator(log_dir: str | Path) -> ea.EventAccumulator:
    acc = ea.EventAccumulator(
        str(log_dir), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0, ea.IMAGES: 0}
    )
    acc.Reload()
    return acc


def loader(n: int = 32, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)


class Model(EmberModule):
    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.example_input_array = torch.zeros(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("loss", loss)
        if batch_idx == 0:
            self.log_image("inputs", torch.sigmoid(x[:3]))  # HW: a grey 4x3 image
            self.trainer.log_text("note", f"epoch {self.current_epoch}")
        return loss

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


@pytest.mark.parametrize("delivery", ["thread", "process"])
def test_a_fit_and_a_test_land_in_one_folder_whole(tmp_path: Path, delivery: str) -> None:
    trainer = Trainer(
        logger_delivery=delivery,
        max_epochs=2,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path),
        logger={"name": "tensorboard", "log_graph": True},
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=1)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = Model()
    trainer.fit(model, loader())
    trainer.test(model, loader(16, seed=1), verbose=False)
    report = trainer.run.finish(trainer.run.exit_status)
    assert report.complete, str(report)

    log_dir = Path(trainer.log_dir) / "tensorboard"
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1  # one writer, one tracker run
    acc = accumulator(log_dir)
    with JournalReader(trainer.log_dir) as reader:
        for name in ("loss", "test_loss", "epoch"):
            expected = [(s, v) for s, v, _ in reader.metric_series(name)]
            got = [(e.step, e.value) for e in acc.Scalars(name)]
            assert [s for s, _ in got] == [s for s, _ in expected], name
            assert got == [(s, pytest.approx(v, rel=1e-6)) for s, v in expected], name
    assert [e.step for e in acc.Images("inputs")] == [0, 4]
    assert acc.Images("inputs")[0].width == 4 and acc.Images("inputs")[0].height == 3
    notes = [e.tensor_proto.string_val[0].decode() for e in acc.Tensors("note")]
    assert notes == ["epoch 0", "epoch 1"]
    links = [e.tensor_proto.string_val[0].decode() for e in acc.Tensors("artifacts/checkpoint")]
    # save_top_k=1 deletes the first checkpoint; delivered before that, it has a link too
    best = trainer.checkpoint_callback.best_model_path
    assert any(link.endswith(best) for link in links), links
    assert 1 <= len(links) <= 2 and all(".ckpt" in link for link in links)
    assert [(e.step, e.value) for e in acc.Scalars("hp_metric")] == [(0, -1.0)]
    assert "Linear" in str(acc.Graph())


KILLED_SCRIPT = """
    import sys, time
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset
    from ember.trainer import EmberModule, Trainer
    from ember.trainer.callbacks import ModelCheckpoint

    class Slow(EmberModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            time.sleep(0.01)
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    root, ckpt = sys.argv[1], sys.argv[2]
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=4)
    trainer = Trainer(
        max_epochs=int(sys.argv[3]), log_every_n_steps=1, default_root_dir=root,
        logger="tensorboard", enable_progress_bar=False, enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=root + "/ckpt", every_n_train_steps=10,
                                   save_top_k=-1)],
    )
    trainer.fit(Slow(), data, ckpt_path=ckpt or None)
    print("done", trainer.log_dir, flush=True)
"""


def test_a_killed_run_resumes_into_the_same_folder(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(KILLED_SCRIPT))
    root = str(tmp_path / "root")
    proc = subprocess.Popen(
        [sys.executable, str(script), root, "", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ckpts = Path(root) / "ckpt"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            done = sorted(ckpts.glob("*.ckpt")) if ckpts.is_dir() else []
            if len(done) >= 3:  # steps 10, 20, 30: the run is past step 30
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("no checkpoint within the time limit")
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    (run_dir,) = (Path(root) / "ember_runs").iterdir()
    log_dir = run_dir / "tensorboard"
    with JournalReader(run_dir) as reader:
        before = {s for s, _, _ in reader.metric_series("loss")}
    resume_from = next(p for p in ckpts.glob("*.ckpt") if "step=20" in p.name)
    assert max(before) > 20  # steps past the checkpoint were logged, then superseded

    resumed = subprocess.run(
        [sys.executable, str(script), root, str(resume_from), "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"done {run_dir}" in resumed.stdout  # the same run, and so the same folder
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 2  # one writer per process
    with JournalReader(run_dir) as reader:
        expected = [(s, v) for s, v, _ in reader.metric_series("loss")]
    got = [(e.step, e.value) for e in accumulator(log_dir).Scalars("loss")]
    # each step once; past step 20, the resumed values replaced those of the killed run
    assert [s for s, _ in got] == list(range(1, 33)) == [s for s, _ in expected]
    assert got == [(s, pytest.approx(v, rel=1e-6)) for s, v in expected]
