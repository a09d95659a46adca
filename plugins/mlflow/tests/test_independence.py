"""ember-mlflow installed on its own: a fresh virtual environment with only ember and
ember-mlflow (torch at the running version, held by a constraint) runs a short fit with
``logger="mlflow"`` and reads the run back with MLflow's client."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from ember.hub.testing import VirtualEnv

REPO = Path(__file__).resolve().parents[3]

FIT = textwrap.dedent(
    """
    import json, sys
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset
    from ember.trainer import EmberModule, Trainer

    class Model(EmberModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x = torch.randn(32, 4)
    trainer = Trainer(default_root_dir=sys.argv[1], max_epochs=1, logger="mlflow",
                      log_every_n_steps=1, enable_progress_bar=False)
    trainer.fit(Model(), DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8))
    report = trainer.run.finish()

    from mlflow import MlflowClient
    client = MlflowClient(f"sqlite:///{sys.argv[1]}/ember_runs/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("ember").experiment_id])
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    print(json.dumps({"status": run.info.status, "steps": sorted(steps),
                      "complete": report.complete}))
    """
)


def _site_mb(python: Path) -> int:
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return int(
        subprocess.run(["du", "-sm", site], capture_output=True, text=True).stdout.split()[0]
    )


@pytest.mark.slow
def test_a_fresh_venv_with_only_ember_and_ember_mlflow(
    tmp_path: Path, ember_venv: Callable[[], VirtualEnv]
) -> None:
    venv = ember_venv()  # the kit's fixture: torch installed once per session
    python = venv.python
    before = _site_mb(python)
    venv.pip_install(REPO, REPO / "plugins" / "mlflow")
    after = _site_mb(python)

    installed = venv.distributions()
    assert {"ember", "ember-mlflow", "mlflow-skinny"} <= installed
    # the server's stack is not needed for logger="mlflow"
    assert not installed & {"mlflow", "flask", "pandas", "scikit-learn", "lightning"}

    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run(
        [str(python), "-c", FIT, str(work)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=work,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"status": "FINISHED", "steps": [1, 2, 3, 4], "complete": True}
    assert not {"mlruns", "mlflow.db"} & {p.name for p in work.iterdir()}, "MLflow's cwd defaults"
    print(f"ember-mlflow with its dependencies: +{after - before} MB (site-packages {after} MB)")
