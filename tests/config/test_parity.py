"""`ember fit --config` and the Python API make the same run: the same hyperparameters in
the journal and the same weights, given the same seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from config_helpers import REPO_ROOT, run_ember
from ember.hub.tracking.journal import JournalReader

API_SCRIPT = """
import sys
from ember.trainer import Trainer
from examples.digits.data import DigitsData
from examples.digits.model import DigitsClassifier
from examples.digits.train import seed_everything

seed_everything(0)
model = DigitsClassifier(hidden=128, lr=3e-3)
data = DigitsData(batch_size=64)
trainer = Trainer(
    max_epochs=2,
    default_root_dir=sys.argv[1],
    logger=["csv"],
    callbacks=[
        {"name": "model_checkpoint", "monitor": "val_acc", "mode": "max", "save_last": True}
    ],
)
trainer.fit(model, datamodule=data)
"""


def _run_dir(root: Path) -> Path:
    (run,) = (root / "ember_runs").iterdir()
    return run


def test_config_and_python_api_make_the_same_run(tmp_path: Path) -> None:
    cli_root, api_root = tmp_path / "cli", tmp_path / "api"
    proc = run_ember(
        "fit",
        "--config",
        "examples/digits/run.toml",
        "--set",
        "trainer.max_epochs=2",
        "--set",
        f"trainer.default_root_dir={cli_root}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = subprocess.run(
        [sys.executable, "-c", API_SCRIPT, str(api_root)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert api.returncode == 0, api.stdout + api.stderr

    readers = [JournalReader(_run_dir(root)) for root in (cli_root, api_root)]
    try:
        cli_params, api_params = (r.hyperparams() for r in readers)
    finally:
        for r in readers:
            r.close()
    assert cli_params == api_params
    assert cli_params["hidden"] == 128

    cli_ckpt, api_ckpt = (
        torch.load(_run_dir(root) / "checkpoints" / "last.ckpt", weights_only=True)
        for root in (cli_root, api_root)
    )
    cli_state, api_state = cli_ckpt["state_dict"], api_ckpt["state_dict"]
    assert cli_state.keys() == api_state.keys()
    for key in cli_state:
        assert torch.equal(cli_state[key], api_state[key]), key
