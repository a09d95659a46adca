"""Test helpers: reading a run back with MLflow's own client, and a training script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ember.hub.testing import ReadBack

MLFLOW_TO_STATUS = {"FINISHED": "success", "FAILED": "failed", "KILLED": "interrupted"}


def read_mlflow(uri: str, run_id: str) -> tuple[ReadBack, dict[str, Any]]:
    """Everything MLflow holds for ``run_id``, read with ``MlflowClient`` and MLflow's
    artifact download: the kit's :class:`ReadBack` (``images``: (key, step, PNG bytes)),
    plus ``extra`` (``files``: every artifact path to its bytes; ``tags``; ``status``)."""
    import mlflow.artifacts
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    back = ReadBack(
        hyperparams=dict(run.data.params),
        status=MLFLOW_TO_STATUS.get(run.info.status, run.info.status),
    )
    for key in run.data.metrics:
        back.metrics += [(key, m.step, m.value) for m in client.get_metric_history(run_id, key)]
    files: dict[str, bytes] = {}
    images: list[tuple[str, int, bytes]] = []
    tmp = tempfile.mkdtemp(prefix="ember-mlflow-read-")
    try:
        if client.list_artifacts(run_id):
            local = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path="", dst_path=tmp, tracking_uri=uri
                )
            )
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                files[path.relative_to(local).as_posix()] = path.read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in files.items():
        top, _, rest = rel.partition("/")
        if top == "text":
            key, _, fname = rest.rpartition("/")
            step = None if fname == "nostep.txt" else int(fname[len("step_") : -len(".txt")])
            back.texts.append((key, step, data.decode("utf-8")))
        elif top == "images":
            images.append(_image_entry(rest, data))
        elif top == "checkpoints":
            back.artifacts.append(("checkpoint", rest, data))
        elif top != "ember":
            back.artifacts.append((top, rest, data))
    back.images = [i for i in images if i[0]]
    extra = {
        "images": back.images,
        "files": files,
        "tags": dict(run.data.tags),
        "status": run.info.status,
    }
    return back, extra


def _image_entry(rest: str, data: bytes) -> tuple[str, int, bytes]:
    """(key, step, PNG bytes) of a file under ``images/``; MLflow's step images are named
    ``<key with / as ~>+step+<step>+timestamp+...png``, plain ones ``<key>/step_<n>.png``.
    The compressed previews MLflow adds get an empty key."""
    if "+step+" in rest:
        if not rest.endswith(".png"):
            return ("", 0, data)
        key, _, tail = rest.partition("+step+")
        return (key.replace("~", "/"), int(tail.split("+", 1)[0]), data)
    key, _, fname = rest.rpartition("/")
    return (key, int(fname[len("step_") : -len(".png")]), data)


#: a short training run that logs every step to MLflow; argv: root, tracking_uri,
#: steps, seconds per step, checkpoint to resume from ("-" for none), and a step at
#: which to wait until the file ROOT/go exists (0: never). It prints "step N" as each
#: step starts and "done RUN_ID" at the end.
TRAIN_SCRIPT = """
import os, sys, time
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from ember.trainer import EmberModule, Trainer
from ember.trainer.callbacks import ModelCheckpoint

root, uri, ckpt = sys.argv[1], sys.argv[2], sys.argv[5]
steps, pause, gate = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[6])


class Model(EmberModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        print("step", self.trainer.global_step + 1, flush=True)
        while self.trainer.global_step + 1 == gate and not os.path.exists(root + "/go"):
            time.sleep(0.05)
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("loss", loss)
        time.sleep(pause)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


g = torch.Generator().manual_seed(0)
x = torch.randn(steps * 4, 4, generator=g)
data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=4)
trainer = Trainer(
    default_root_dir=root,
    max_epochs=1,
    logger={"name": "mlflow", "tracking_uri": uri},
    log_every_n_steps=1,
    logger_timeout=20,
    enable_progress_bar=False,
    enable_model_summary=False,
    callbacks=[
        ModelCheckpoint(dirpath=root + "/ckpt", every_n_train_steps=4, save_top_k=-1)
    ],
)
trainer.fit(Model(), data, ckpt_path=None if ckpt == "-" else ckpt)
print("done", trainer.run.id, flush=True)
"""


def train(root: Path, uri: str, steps: int, pause: float, ckpt: str = "-", gate: int = 0):
    """Start :data:`TRAIN_SCRIPT` in a fresh interpreter; returns the ``Popen``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            TRAIN_SCRIPT,
            str(root),
            uri,
            str(steps),
            str(pause),
            ckpt,
            str(gate),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=root,
    )


def runs_of(uri: str, experiment: str = "ember") -> list[Any]:
    """The MLflow runs of ``experiment`` (none when it does not exist yet)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])
