"""ember-comet installs and works on its own: a fresh virtual environment with ember and
this plugin only (pip resolves comet-ml; torch is held at the installed version), then a
short fit with the logger chosen by name, read back from the offline archive."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from ember.hub.testing import VirtualEnv

PLUGIN = Path(__file__).resolve().parents[1]
ROOT = PLUGIN.parents[1]

FIT = """
import json, sys
from pathlib import Path
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from ember.hub import get_plugin_manager
from ember.trainer import EmberModule, Trainer
from ember_comet.archive import read_archives

class Model(EmberModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self.net(batch[0]), batch[1])
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

x = torch.randn(32, 4)
trainer = Trainer(max_epochs=1, log_every_n_steps=1, default_root_dir=sys.argv[1],
                  logger={"name": "comet", "online": False}, enable_progress_bar=False,
                  enable_model_summary=False, enable_checkpointing=False)
trainer.fit(Model(), DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8))
report = trainer.run.finish()
folder = Path(trainer.log_dir) / "comet"
archive = read_archives(folder, next(folder.glob("*.zip")).name[:32])
print(json.dumps({
    "complete": report.complete,
    "steps": [m.payload["metric"]["step"] for m in archive.messages
              if m.type == "metric_msg" and m.payload["metric"]["metricName"] == "loss"],
    "plugins": sorted({p.distribution for p in get_plugin_manager().plugins()}),
}))
"""


@pytest.mark.slow
def test_a_fresh_venv_with_only_ember_and_this_plugin_trains(
    tmp_path: Path, ember_venv: Callable[[], VirtualEnv]
) -> None:
    venv = ember_venv()  # the kit's fixture: torch installed once per session
    venv.pip_install(ROOT, PLUGIN)
    names = venv.distributions()
    assert {"ember", "ember-comet", "comet-ml", "torch"} <= names
    assert not {n for n in names if n.startswith("ember-") and n != "ember-comet"}
    assert not {"wandb", "mlflow", "tensorboard", "lightning"} & names

    script = tmp_path / "fit.py"
    script.write_text(FIT)
    run = subprocess.run(
        [str(venv.python), str(script), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"complete": True, "steps": [1, 2, 3, 4], "plugins": ["ember", "ember-comet"]}
