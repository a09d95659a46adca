"""What ember-mlflow promises beyond the kit: the default store, MLflow's limits, its
options, images, checkpoints, telemetry, and a Trainer choosing it by name."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from ember.hub.testing import make_run_info
from ember.hub.tracking import MetricRecord, RunInfo
from ember_mlflow.logger import MAX_PARAM_VALUE, MLflowLogger
from mlflow_helpers import read_mlflow


def make_png(width: int = 4, height: int = 3) -> bytes:
    """A small RGB PNG, written with zlib alone (so the tests need no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixel = lambda x, y: bytes((x * 60 % 256, y * 90 % 256, (x + y) * 30 % 256))  # noqa: E731
    rows = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = make_png()


def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"


def records(steps: range, names: tuple[str, ...], wall: float = 1_700_000_000.0) -> list:
    return [
        MetricRecord(n, float(s) + i / 10, s, wall + s) for s in steps for i, n in enumerate(names)
    ]


def test_default_store_is_sqlite_next_to_the_runs(tmp_path: Path, monkeypatch) -> None:
    """Without tracking_uri: one SQLite store for every run under the root, artifacts in
    a folder beside it, nothing written to the working directory; it is offline."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    logger = MLflowLogger()
    assert logger.capabilities.offline
    run = make_run_info(tmp_path / "root" / "ember_runs")
    run_id = logger.open(run)
    logger.log_text("note", "hello", step=1)
    logger.finalize("success")
    store = tmp_path / "root" / "ember_runs"
    assert logger.resolved_uri == f"sqlite:///{store / 'mlflow.db'}"
    assert (store / "mlflow-artifacts").is_dir()
    assert list(cwd.iterdir()) == []
    back, extra = read_mlflow(logger.resolved_uri, run_id)
    assert back.texts == [("note", 1, "hello")] and back.status == "success"
    assert extra["tags"]["ember.run_id"] == run.id
    # a second run under the same root lands in the same store and experiment
    second = MLflowLogger()
    second_id = second.open(make_run_info(store))
    second.finalize("success")
    from mlflow import MlflowClient

    client = MlflowClient(logger.resolved_uri)
    experiment = client.get_experiment_by_name("ember")
    found = {r.info.run_id for r in client.search_runs([experiment.experiment_id])}
    assert found == {run_id, second_id}


def test_offline_capability_follows_the_store() -> None:
    """Capabilities are the instance's: a local store is offline, a server is not."""
    assert MLflowLogger(tracking_uri="sqlite:///x.db").capabilities.offline
    assert not MLflowLogger(tracking_uri="http://127.0.0.1:5000").capabilities.offline
    assert not MLflowLogger(tracking_uri="databricks").capabilities.offline


@pytest.mark.parametrize("uri", ["file:///tmp/mlruns", "/tmp/mlruns", "mlruns"])
def test_the_deprecated_file_store_is_refused_with_a_way_out(uri: str, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ValueError, match=r"file store.*sqlite:///.*MLFLOW_ALLOW_FILE_STORE"):
        MLflowLogger(tracking_uri=uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    MLflowLogger(tracking_uri=uri)


def test_bad_options_fail_when_the_logger_is_built(tmp_path: Path) -> None:
    from ember.hub import OptionsError
    from ember.trainer import Trainer

    with pytest.raises(OptionsError, match="log_checkpoints"):
        Trainer(default_root_dir=str(tmp_path), logger={"name": "mlflow", "log_checkpoints": "x"})
    with pytest.raises(OptionsError, match="did you mean 'tracking_uri'"):
        Trainer(default_root_dir=str(tmp_path), logger={"name": "mlflow", "tracking_url": "x"})


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_metrics_beyond_one_request_and_redelivery(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """3 000 metrics in one call are split into requests MLflow accepts; a batch delivered
    again (at-least-once) is stored once; NaN survives. On a server the logger encodes
    the requests itself (the REST endpoint of ``log_batch``), on a local store the SDK
    does: both read back the same."""
    uri = (
        sqlite_uri(tmp_path) if store == "sqlite" else request.getfixturevalue("mlflow_server").uri
    )
    logger = MLflowLogger(tracking_uri=uri)
    run_id = logger.open(make_run_info(tmp_path / "runs"))
    # with journal positions: each request also carries the tag ember.seq, and MLflow
    # takes 1000 metrics and tags together
    batch = [
        r._replace(seq=i + 1) for i, r in enumerate(records(range(1000), ("loss", "acc", "lr")))
    ]
    logger.log_metrics(batch)
    logger.log_metrics(batch[-500:])  # the in-flight batch, again after a crash
    logger.log_metrics(
        [MetricRecord("odd", v, 5000 + i, 1.0) for i, v in enumerate((float("nan"), float("inf")))]
    )
    logger.finalize("success")
    back, _ = read_mlflow(logger.resolved_uri, run_id)
    got = [(n, s, v) for n, s, v in back.metrics if n != "odd"]
    assert sorted(got) == sorted((r.name, r.step, r.value) for r in batch)
    odd = sorted((s, v) for n, s, v in back.metrics if n == "odd")
    # MLflow's SQL stores keep NaN, and store +inf as the largest float
    assert odd[0][1] != odd[0][1] and odd[1][1] >= sys.float_info.max


def test_metric_names_mlflow_refuses_are_renamed_once(tmp_path: Path) -> None:
    logger = MLflowLogger(tracking_uri=sqlite_uri(tmp_path), prefix="fold1/")
    run_id = logger.open(make_run_info(tmp_path / "runs"))
    with pytest.warns(UserWarning, match=r"'fold1/top@1' is logged as 'fold1/top_1'"):
        logger.log_metrics([MetricRecord("top@1", 0.5, 1, 1.0), MetricRecord("loss", 2.0, 1, 1.0)])
    logger.log_metrics([MetricRecord("top@1", 0.6, 2, 2.0)])
    logger.finalize("success")
    back, _ = read_mlflow(logger.resolved_uri, run_id)
    assert sorted(back.metrics) == [
        ("fold1/loss", 1, 2.0),
        ("fold1/top_1", 1, 0.5),
        ("fold1/top_1", 2, 0.6),
    ]


def test_hyperparameters_within_mlflow_limits(tmp_path: Path) -> None:
    """250 params (MLflow takes 100 per request), a value past MLflow's 6000 characters
    (cut in the param, whole in ember/hparams.json), and a changed value (MLflow params
    are immutable: the first is kept, with a warning, and nothing fails)."""
    logger = MLflowLogger(tracking_uri=sqlite_uri(tmp_path))
    run_id = logger.open(make_run_info(tmp_path / "runs"))
    long = "x" * (MAX_PARAM_VALUE + 500)
    params = {"layers": {f"l{i}": i for i in range(250)}, "notes": long, "lr": 0.1}
    logger.log_hyperparams(params)
    logger.log_hyperparams(params)  # delivered again
    with pytest.warns(UserWarning, match="kept the first value of lr"):
        logger.log_hyperparams({"lr": 0.2, "extra": [1, 2]})
    logger.finalize("success")
    back, extra = read_mlflow(logger.resolved_uri, run_id)
    assert back.hyperparams["layers/l249"] == "249" and len(back.hyperparams) == 253
    assert back.hyperparams["lr"] == "0.1" and back.hyperparams["extra"] == "[1, 2]"
    assert len(back.hyperparams["notes"]) == MAX_PARAM_VALUE
    assert back.hyperparams["notes"].endswith("...")
    full = json.loads(extra["files"]["ember/hparams.json"])
    assert full["notes"] == long and full["lr"] == 0.2 and full["layers"]["l3"] == 3


def test_run_options_and_attaching_to_a_given_run(tmp_path: Path) -> None:
    """experiment_name, run_name, tags and artifact_location shape the run; run_id logs
    into an existing run instead of creating one."""
    uri = sqlite_uri(tmp_path)
    where = (tmp_path / "elsewhere").as_uri()
    logger = MLflowLogger(
        tracking_uri=uri,
        experiment_name="exp-a",
        run_name="first try",
        tags={"team": "vision", "n": 3},
        artifact_location=where,
    )
    run_id = logger.open(make_run_info(tmp_path / "runs"))
    logger.log_metrics([MetricRecord("loss", 1.0, 1, 1.0)])
    logger.finalize("interrupted")
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_run(run_id)
    assert found.info.run_name == "first try"
    assert found.data.tags["team"] == "vision" and found.data.tags["n"] == "3"
    assert client.get_experiment(found.info.experiment_id).name == "exp-a"
    assert found.info.artifact_uri.startswith(where)

    again = MLflowLogger(tracking_uri=uri, experiment_name="exp-a", run_id=run_id)
    assert again.open(make_run_info(tmp_path / "runs")) == run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    again.log_metrics([MetricRecord("loss", 0.5, 2, 2.0)])
    again.finalize("failed")
    back, _ = read_mlflow(uri, run_id)
    assert sorted(back.metrics) == [("loss", 1, 1.0), ("loss", 2, 0.5)]
    assert back.status == "failed"
    mlf = again.experiment  # what trainer.loggers["mlflow"].call(fn) hands to fn
    assert mlf.client.get_run(mlf.run_id).info.run_id == run_id and mlf.tracking_uri == uri


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("none", []),
        ("best", ["epoch=1.ckpt"]),
        ("all", ["epoch=0.ckpt", "epoch=1.ckpt", "last.ckpt"]),
    ],
)
def test_log_checkpoints(tmp_path: Path, policy: str, expected: list[str]) -> None:
    logger = MLflowLogger(tracking_uri=sqlite_uri(tmp_path), log_checkpoints=policy)
    run_id = logger.open(make_run_info(tmp_path / "runs"))
    for name, best in (("epoch=0.ckpt", False), ("epoch=1.ckpt", True), ("last.ckpt", False)):
        path = tmp_path / name
        path.write_bytes(name.encode())
        logger.log_artifact(str(path), "checkpoint", name=name, step=1, metadata={"best": best})
    logger.log_artifact(str(path), "model", name="exported.bin", step=None, metadata={})
    logger.finalize("success")
    back, extra = read_mlflow(logger.resolved_uri, run_id)
    assert sorted(n for k, n, _ in back.artifacts if k == "checkpoint") == expected
    assert ("model", "exported.bin", b"last.ckpt") in back.artifacts
    if policy != "none":
        assert extra["tags"]["ember.best_checkpoint"] == "checkpoints/epoch=1.ckpt"


def test_images_become_mlflow_step_images(tmp_path: Path) -> None:
    """With Pillow and numpy, an image is one of MLflow's step images (key and step)."""
    pytest.importorskip("PIL")
    pytest.importorskip("numpy")
    from PIL import Image

    path = tmp_path / "sample.png"
    path.write_bytes(PNG)
    logger = MLflowLogger(tracking_uri=sqlite_uri(tmp_path))
    run_id = logger.open(make_run_info(tmp_path / "runs"))
    logger.log_image("samples/digits", str(path), step=7, metadata={})
    logger.finalize("success")
    _, extra = read_mlflow(logger.resolved_uri, run_id)
    ((key, step, data),) = extra["images"]
    assert (key, step) == ("samples/digits", 7)
    with Image.open(path) as sent, Image.open(__import__("io").BytesIO(data)) as got:
        assert got.convert("RGB").tobytes() == sent.convert("RGB").tobytes()
    assert extra["tags"]["mlflow.loggedImages"] == "True"


def test_images_without_pillow_are_png_artifacts(tmp_path: Path) -> None:
    """Without Pillow (a real import failure in a fresh interpreter), the PNG itself is
    stored, byte for byte, as images/<key>/step_<step>.png."""
    path = tmp_path / "sample.png"
    path.write_bytes(PNG)
    uri = sqlite_uri(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["PIL"] = None  # what an environment without Pillow looks like
        from ember.hub.testing import make_run_info
        from ember_mlflow.logger import MLflowLogger
        logger = MLflowLogger(tracking_uri={uri!r})
        print(logger.open(make_run_info({str(tmp_path / "runs")!r})))
        logger.log_image("samples/digits", {str(path)!r}, step=7, metadata={{}})
        logger.finalize("success")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    run_id = out.stdout.split()[-1]
    _, extra = read_mlflow(uri, run_id)
    assert extra["images"] == [("samples/digits", 7, PNG)]


def test_entry_point_imports_no_mlflow_and_telemetry_stays_off(tmp_path: Path) -> None:
    """Discovering the plugin and building a logger import no MLflow; opening it turns
    MLflow's telemetry off unless the user set MLFLOW_DISABLE_TELEMETRY themselves."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from ember.hub import get_plugin_manager
        spec = get_plugin_manager().get("logger", "mlflow")
        logger = spec.create(tracking_uri="sqlite:///{tmp_path}/a.db")
        assert not [m for m in sys.modules if m.split(".")[0] == "mlflow"], "imported mlflow"
        from ember.hub.testing import make_run_info
        logger.open(make_run_info({str(tmp_path / "runs")!r}))
        print(os.environ.get("MLFLOW_DISABLE_TELEMETRY"))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "CI")}
    env.pop("PYTEST_CURRENT_TEST", None)
    run = lambda e: subprocess.run(  # noqa: E731
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=e
    )
    out = run(env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "true"
    out = run({**env, "MLFLOW_DISABLE_TELEMETRY": "false"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "false"


@pytest.mark.parametrize("delivery", ["thread", "process"])
def test_a_trainer_chooses_it_by_name(tmp_path: Path, delivery: str) -> None:
    """``Trainer(logger="mlflow")``: metrics of every step, hyperparameters, the best
    checkpoint and the final status land in the default store, delivered from a thread
    or from ember's delivery process."""
    import torch
    from ember.trainer import EmberModule, Trainer
    from ember.trainer.callbacks import ModelCheckpoint
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    class Model(EmberModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(4, 2)
            self.losses: dict[int, float] = {}

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            self.losses[self.trainer.global_step + 1] = loss.item()
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", F.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    model = Model()
    trainer = Trainer(
        default_root_dir=str(tmp_path),
        max_epochs=2,
        logger="mlflow",
        logger_delivery=delivery,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        # keep every file: a top-1 checkpoint replaced before the worker uploads it is
        # gone (the journal holds paths, not copies) and would be reported as failed
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=-1)],
    )
    trainer.fit(model, data, data)
    report = trainer.run.finish()  # otherwise at exit: one tracker run per Trainer
    assert report.complete, str(report)
    store = f"sqlite:///{tmp_path / 'ember_runs' / 'mlflow.db'}"
    (entry,) = [lg for lg in report.loggers if lg.label == "mlflow"]
    from mlflow import MlflowClient

    (found,) = MlflowClient(store).search_runs(
        [MlflowClient(store).get_experiment_by_name("ember").experiment_id]
    )
    back, extra = read_mlflow(store, found.info.run_id)
    stored = dict(sorted((s, v) for n, s, v in back.metrics if n == "loss"))
    assert stored.keys() == model.losses.keys()
    assert list(stored.values()) == pytest.approx(list(model.losses.values()))
    assert {s for n, s, _ in back.metrics if n == "val_loss"} == {4, 8}
    assert back.hyperparams["lr"] == "0.1" and back.status == "success"
    best = [n for k, n, _ in back.artifacts if k == "checkpoint"]
    assert best and set(best) <= {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert extra["tags"]["ember.run_id"] == trainer.run.id
    assert entry.delivered == report.records["metric"] + 3  # hparams and two checkpoints


def test_offline_runs_keep_a_local_store_and_defer_a_server(tmp_path: Path) -> None:
    """Under EMBER_OFFLINE a logger on a local store keeps delivering; one on a server
    waits in the journal (no connection is even tried)."""
    import warnings

    from ember.hub.tracking import Run, TrackingWarning

    local = MLflowLogger(tracking_uri=sqlite_uri(tmp_path))
    remote = MLflowLogger(tracking_uri="http://127.0.0.1:9")  # discard port: never contacted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        run = Run.start(tmp_path / "root", loggers=[local, remote], offline=True)
    run.log_metrics({"loss": 1.0}, 1)
    report = run.finish("success", timeout=120)
    states = {lg.label: lg for lg in report.loggers}
    assert states["mlflow"].complete
    assert states["mlflow#2"].state == "deferred (offline)" and states["mlflow#2"].pending == 1
    assert any("needs a network" in str(w.message) for w in caught)
    back, _ = read_mlflow(local.resolved_uri, local.run_id)
    assert back.metrics == [("loss", 1, 1.0)]


def test_a_deleted_experiment_is_a_clear_error(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = sqlite_uri(tmp_path)
    first = MLflowLogger(tracking_uri=uri, experiment_name="old")
    first.open(make_run_info(tmp_path / "runs"))
    first.finalize("success")
    client = MlflowClient(uri)
    client.delete_experiment(client.get_experiment_by_name("old").experiment_id)
    with pytest.raises(ValueError, match="'old' is deleted; restore it"):
        MLflowLogger(tracking_uri=uri, experiment_name="old").open(make_run_info(tmp_path / "r"))


def test_params_of_a_failed_call_are_sent_again_on_the_retry(own_mlflow_server, tmp_path: Path):
    """Regression: params were marked as logged before MLflow had them, so ember's retry
    of a failed call skipped them and they never arrived."""
    server = own_mlflow_server.start()
    logger = MLflowLogger(tracking_uri=server.uri)
    run_id = logger.open(make_run_info(tmp_path / "runs"))
    server.stop()
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        logger.log_hyperparams({"lr": 0.1, "model": {"hidden": 8}})
    server.start()
    logger.log_hyperparams({"lr": 0.1, "model": {"hidden": 8}})  # ember retries the call
    logger.finalize("success")
    back, _ = read_mlflow(server.uri, run_id)
    assert back.hyperparams == {"lr": "0.1", "model/hidden": "8"}


def test_a_reattached_logger_extends_hparams_json(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    run = make_run_info(tmp_path / "runs")
    first = MLflowLogger(tracking_uri=uri)
    ref = first.open(run)
    first.log_hyperparams({"lr": 0.1, "model": {"hidden": 8}})
    first.finalize("interrupted")
    second = MLflowLogger(tracking_uri=uri)
    second.open(RunInfo(**{**run.__dict__, "resumed": True, "resume_ref": ref}))
    second.log_hyperparams({"model": {"depth": 2}})
    second.finalize("success")
    _, extra = read_mlflow(uri, ref)
    assert json.loads(extra["files"]["ember/hparams.json"]) == {
        "lr": 0.1,
        "model": {"hidden": 8, "depth": 2},
    }
