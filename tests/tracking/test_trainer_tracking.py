"""The tracking pipeline inside the real Trainer: ``logger=`` resolution, the run
directory, faulty trackers, ``ember sync`` afterwards, a killed training process, resume
from a checkpoint, secrets, and ranks other than zero. Every test trains for real and
reads back what was written."""

from __future__ import annotations

import csv
import json
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
from ember.hub.errors import OptionsError, UnknownProviderError
from ember.hub.tracking import DisabledRun, JournalReader, TrackingWarning
from ember.hub.tracking.runs import run_state
from ember.trainer import EmberDataModule, EmberModule, Trainer
from ember.trainer.callbacks import ModelCheckpoint
from ember.trainer.checkpoint import Preempted
from ember.trainer.errors import MisconfigurationError
from ember.trainer.strategies import SingleDeviceStrategy
from ember_fixture_trackers.loggers import FaultyLogger, RecorderLogger
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from tracking_helpers import read_jsonl, run_ember


def loader(n: int = 32, batch_size: int = 8, seed: int = 0) -> DataLoader:
    """``n`` rows of 4 features and a binary label, in ``n / batch_size`` batches."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=batch_size)


class Classifier(EmberModule):
    """Logs ``loss`` and ``acc`` every step and keeps what it logged: (step, name, value)."""

    def __init__(self, lr: float = 0.1, note: str = "") -> None:
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.net = nn.Linear(4, 2)
        self.logged: list[tuple[int, str, float]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.net(x)
        loss = F.cross_entropy(out, y)
        acc = (out.argmax(1) == y).float().mean()
        self.log("loss", loss)
        self.log("acc", acc)
        step = self.trainer.global_step + 1  # the step this batch's flush records
        self.logged += [(step, "loss", loss.item()), (step, "acc", acc.item())]
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def series(self, name: str) -> list[tuple[int, float]]:
        """What this module logged under ``name``, by step."""
        return [(s, v) for s, n, v in self.logged if n == name]


class Data(EmberDataModule):
    """Training and validation loaders, with hyperparameters of its own."""

    def __init__(self, batch_size: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self) -> DataLoader:
        return loader(batch_size=self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader:
        return loader(16, seed=1)


def quiet(root: Path, **flags: Any) -> Trainer:
    """A Trainer writing under ``root``, with no bar, summary or default checkpoints."""
    defaults: dict[str, Any] = {
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "default_root_dir": str(root),
    }
    return Trainer(**{**defaults, **flags})


def journal_series(run_dir: str | Path, name: str) -> list[tuple[int, float]]:
    """The live (not superseded) values of metric ``name`` in a run's journal."""
    with JournalReader(run_dir) as reader:
        return [(step, value) for step, value, _ in reader.metric_series(name)]


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------- choosing loggers


def test_default_logger_writes_the_journal_and_metrics_csv(tmp_path: Path, capsys: Any) -> None:
    model = Classifier(lr=0.1)
    trainer = quiet(tmp_path, max_epochs=2)
    trainer.fit(model, datamodule=Data())

    run_dir = Path(trainer.log_dir)
    assert run_dir.parent == tmp_path / "ember_runs" and run_dir.name == trainer.run.id
    header = capsys.readouterr().out
    assert f"ember run {trainer.run.id} in {run_dir}" in header
    assert "loggers: csv" in header and "plugins: ember " in header

    rows = csv_rows(run_dir / "metrics.csv")
    csv_loss = [(int(r["step"]), float(r["loss"])) for r in rows if r["loss"]]
    assert csv_loss == model.series("loss") == journal_series(run_dir, "loss")
    assert [int(r["step"]) for r in rows] == list(range(1, 9))  # one row per step
    assert sum(1 for r in rows if r["val_loss"]) == 2
    # the module's and the datamodule's hyperparameters, merged
    with JournalReader(run_dir) as reader:
        assert reader.hyperparams() == {"lr": 0.1, "note": "", "batch_size": 8}
        config = reader.last_event("config")["data"]
        assert config["trainer"]["max_epochs"] == 2
        assert config["trainer"]["logger"] == [{"name": "csv"}]
        assert config["model"]["class_path"].endswith("Classifier")
        plugins = reader.last_event("plugins")["data"]
        assert any(p["distribution"] == "ember" and p["version"] for p in plugins)
    # after fit, everything is delivered; the tracker runs stay open for later stages
    assert trainer.run.report is None and trainer.run.flush().complete
    assert not (run_dir / "status.json").exists()

    # a later entry point of the same trainer continues the same run
    trainer.test(model, loader(16, seed=2), verbose=False)
    assert trainer.log_dir == str(run_dir)
    assert csv_rows(run_dir / "metrics.csv")[-1]["test_loss"] != ""
    assert capsys.readouterr().out == ""  # no second header, nothing left undelivered
    report = trainer.run.finish(trainer.run.exit_status)
    assert report.status == "success" and report.complete
    assert json.loads((run_dir / "status.json").read_text())["status"] == "success"


def test_hyperparameters_merge_with_the_datamodules_or_clash(tmp_path: Path) -> None:
    class Private(Data):
        def __init__(self, batch_size: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters(logger=False)

    trainer = quiet(tmp_path, max_epochs=1)
    trainer.fit(Classifier(), datamodule=Private())
    with JournalReader(trainer.log_dir) as reader:
        assert reader.hyperparams() == {"lr": 0.1, "note": ""}

    class Clashing(Classifier):
        def __init__(self) -> None:
            super().__init__()
            self.hparams["batch_size"] = 4

    with pytest.raises(MisconfigurationError, match=r"\['batch_size'\] are saved by both"):
        quiet(tmp_path, max_epochs=1).fit(Clashing(), datamodule=Data(batch_size=8))


def test_logger_false_and_fast_dev_run_make_no_run_directory(tmp_path: Path) -> None:
    for flags in ({"logger": False, "max_epochs": 1}, {"fast_dev_run": True}):
        trainer = quiet(tmp_path, **flags)
        trainer.fit(Classifier(), loader())
        assert isinstance(trainer.run, DisabledRun)
        assert trainer.log_dir == str(tmp_path)
        assert trainer.logged_metrics  # the metrics were still published
    assert not (tmp_path / "ember_runs").exists()


def test_a_list_of_loggers_each_receive_everything(tmp_path: Path) -> None:
    class Sampling(Classifier):
        def on_train_end(self) -> None:
            self.trainer.log_text("samples", "a generated sample")

    recorder = RecorderLogger(str(tmp_path / "recorder.jsonl"))
    other = tmp_path / "other"
    model = Sampling()
    trainer = quiet(
        tmp_path,
        max_epochs=1,
        logger=["csv", {"name": "csv", "save_dir": str(other)}, recorder],
        enable_checkpointing=True,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt")],
    )
    trainer.fit(model, loader())
    trainer.run.finish("success")
    with pytest.raises(MisconfigurationError, match=r"after the run .* finished"):
        trainer.log_text("samples", "too late")

    run_dir = Path(trainer.log_dir)
    expected = model.series("loss")
    for path in (run_dir / "metrics.csv", other / trainer.run.id / "metrics.csv"):
        assert [(int(r["step"]), float(r["loss"])) for r in csv_rows(path)] == expected
    received = read_jsonl(tmp_path / "recorder.jsonl")
    assert [(e["step"], e["value"]) for e in received if e.get("name") == "loss"] == expected
    assert {"type": "hparams", "params": {"lr": 0.1, "note": ""}} in received
    assert {"type": "text", "key": "samples", "text": "a generated sample", "step": 4} in received
    assert (run_dir / "texts.csv").read_text().splitlines()[1:] == ["4,samples,a generated sample"]
    artifacts = [e for e in received if e["type"] == "artifact"]
    assert [(a["kind"], Path(a["path"]).parent) for a in artifacts] == [
        ("checkpoint", tmp_path / "ckpt")
    ]
    assert received[-1] == {"type": "finalize", "status": "success"}
    report = trainer.run.report
    assert [lg.label for lg in report.loggers] == ["csv", "csv", "recorder"]
    assert report.loggers[1].key.startswith("csv:")  # its own cursor, keyed by its options
    assert all(lg.complete and lg.state == "ok" for lg in report.loggers)


def test_checkpoint_artifacts_say_which_is_the_best(tmp_path: Path) -> None:
    """A checkpoint artifact tells loggers whether a ModelCheckpoint holds it as its best
    (trackers that upload only the best checkpoint rely on it), with monitor and score."""
    best = ModelCheckpoint(dirpath=tmp_path / "best", monitor="val_loss", save_top_k=1)
    last = ModelCheckpoint(dirpath=tmp_path / "last", save_top_k=0, save_last=True)
    trainer = quiet(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[best, last])
    trainer.fit(Classifier(), datamodule=Data())
    with JournalReader(trainer.log_dir) as reader:
        saved = [
            (Path(r.data["path"]).parent.name, r.data["metadata"])
            for r in reader.records("artifact")
        ]
    assert [folder for folder, _ in saved] == ["best", "last", "best", "last"]
    for folder, meta in saved:
        if folder == "last":
            assert meta == {"epoch": meta["epoch"], "best": False}
        else:
            assert meta["best"] is True and meta["monitor"] == "val_loss"
            assert isinstance(meta["score"], float)


def test_unknown_logger_names_and_options_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(UnknownProviderError, match="Did you mean 'csv'"):
        Trainer(logger="csvv", default_root_dir=str(tmp_path))
    with pytest.raises(UnknownProviderError, match="Did you mean 'csv'"):
        Trainer(logger=["csv", {"name": "cvs"}], default_root_dir=str(tmp_path))
    with pytest.raises(OptionsError, match="did you mean 'save_dir'"):
        Trainer(logger={"name": "csv", "sav_dir": "x"}, default_root_dir=str(tmp_path))
    with pytest.raises(MisconfigurationError, match="logger_timeout"):
        Trainer(logger_timeout=-1, default_root_dir=str(tmp_path))
    assert not (tmp_path / "ember_runs").exists()


# ---------------------------------------------------------------------- faults


def test_faulty_trackers_neither_slow_nor_break_fit_and_sync_completes(
    tmp_path: Path, capsys: Any
) -> None:
    data = loader(320)  # 40 steps, each flushed
    start = time.monotonic()
    quiet(tmp_path / "baseline", max_epochs=1, logger=[]).fit(Classifier(), data)
    baseline = time.monotonic() - start

    faulty = [FaultyLogger(mode) for mode in ("raise", "intermittent", "sleep", "hang")]
    model = Classifier()
    trainer = quiet(tmp_path, max_epochs=1, logger=faulty, logger_timeout=0.5)
    start = time.monotonic()
    trainer.fit(model, data)
    elapsed = time.monotonic() - start
    # no waiting on the trackers during training; at the end, at most the deadline
    assert elapsed < baseline + 0.5 + 1.0, (elapsed, baseline)
    # the end of fit waited at most the deadline, then printed where each logger stands
    stage_end = capsys.readouterr().out
    assert "complete delivery with:" in stage_end and "faulty_hang" in stage_end

    run_dir = trainer.log_dir
    for name in ("loss", "acc"):
        assert journal_series(run_dir, name) == model.series(name)  # 100% in the journal
    start = time.monotonic()
    report = trainer.run.finish("success")
    assert time.monotonic() - start < 0.5 + 1.0  # finalizing waits at most the deadline too
    assert report.status == "success"
    with JournalReader(run_dir) as reader:
        counts = reader.counts_by_kind()
    supported = counts["metric"] + counts["hparams"]  # the faulty logger takes no artifacts
    by_label = {lg.label: lg for lg in report.loggers}
    for lg in report.loggers:
        assert lg.delivered + lg.pending + lg.failed == supported, lg
    assert by_label["faulty_raise"].delivered == 0
    assert by_label["faulty_raise"].state in ("timed out", "quarantined")
    assert by_label["faulty_hang"].state.startswith("hung in log_metrics")
    assert by_label["faulty_hang"].pending > 0
    assert by_label["faulty_hang"].sync_command in stage_end

    # afterwards, the journal delivers everything to a healthy logger, exactly once
    first = run_ember("sync", run_dir, "--to", "csv")
    assert first.returncode == 0, first.stderr
    assert f"csv: delivered {counts['metric'] + counts['hparams']}, pending 0, failed 0" in (
        first.stdout
    )
    rows = csv_rows(Path(run_dir) / "metrics.csv")
    assert [(int(r["step"]), float(r["loss"])) for r in rows] == model.series("loss")
    before = (Path(run_dir) / "metrics.csv").read_bytes()
    second = run_ember("sync", run_dir, "--to", "csv")
    assert second.returncode == 0 and "nothing to deliver" in second.stdout
    assert (Path(run_dir) / "metrics.csv").read_bytes() == before


KILLED_SCRIPT = """
    import sys, time
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset
    from ember.trainer import Callback, EmberModule, Trainer

    class Slow(EmberModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            time.sleep(0.005)
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Announce(Callback):
        # a flush follows on_train_batch_end: at the next batch's start it has happened
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if "loss" in trainer.logged_metrics:
                value = trainer.logged_metrics["loss"]
                print("flushed", trainer.global_step, repr(value), flush=True)

    x = torch.randn(4096, 4)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=4)
    trainer = Trainer(
        max_epochs=1000, log_every_n_steps=1, default_root_dir=sys.argv[1],
        callbacks=[Announce()], enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Slow(), data)
"""


def test_kill_9_keeps_every_flushed_record(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(KILLED_SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    flushed: list[tuple[int, float]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("flushed"):
                _, step, value = line.split()
                flushed.append((int(step), float(value)))
                if len(flushed) >= 25:
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and len(flushed) == 25, err

    (run_dir,) = (tmp_path / "ember_runs").iterdir()
    with JournalReader(run_dir) as reader:
        assert reader.integrity_ok()
        assert run_state(reader) == "killed"
        journal = {step: value for step, value, _ in reader.metric_series("loss")}
    for step, value in flushed:
        assert journal[step] == value
    assert sorted(journal) == list(range(1, max(journal) + 1))  # no gaps, no duplicates


# ---------------------------------------------------------------------- resume


def test_resume_continues_the_run_and_supersedes_later_records(tmp_path: Path, capsys: Any) -> None:
    def trainer_with(recorder: RecorderLogger) -> Trainer:
        return quiet(
            tmp_path,
            max_epochs=3,
            logger=["csv", recorder],
            enable_checkpointing=True,
            callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1)],
        )

    first = trainer_with(RecorderLogger(str(tmp_path / "recorder.jsonl")))
    first.fit(Classifier(), loader())  # 4 steps per epoch: steps 1..12
    run_dir = first.log_dir
    (ckpt,) = (tmp_path / "ckpt").glob("*step=8*.ckpt")
    assert torch.load(ckpt, weights_only=True)["run"] == first.run.state_dict()
    capsys.readouterr()

    recorder = RecorderLogger(str(tmp_path / "recorder.jsonl"))
    second = trainer_with(recorder)
    model = Classifier()
    with pytest.warns(TrackingWarning, match="'recorder' cannot delete the steps after 8"):
        second.fit(model, loader(), ckpt_path=str(ckpt))  # steps 9..12 again
    # the first trainer's run was still open in this process: finished, once
    assert first.run.report is not None and first.run.report.status == "success"

    assert second.log_dir == run_dir and second.run.id == first.run.id
    assert f"ember resumed run {first.run.id}" in capsys.readouterr().out
    # the logger re-attached to its tracker run, told where the checkpoint was
    (opened,) = recorder.opened
    assert opened.resumed and opened.resume_step == 8
    assert opened.resume_ref == f"recorder:{first.run.id}"

    # the journal: steps 9..12 of the first attempt are superseded, not duplicated
    live = journal_series(run_dir, "loss")
    assert [s for s, _ in live] == list(range(1, 13))
    assert live[8:] == model.series("loss")
    with JournalReader(run_dir) as reader:
        # superseded records are kept, not deleted: 12 live values of loss and 4 older
        assert len(reader.metric_series("loss", live=False)) == 16
        assert [s["from_step"] for s in reader.segments()] == [None, 8]
        checkpoints = [(r.step, r.data["kind"]) for r in reader.records("artifact")]
    assert checkpoints == [(4, "checkpoint"), (8, "checkpoint"), (12, "checkpoint")]
    # the CSV logger trimmed its file at the checkpoint and went on: one row per step
    rows = csv_rows(Path(run_dir) / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert [(int(r["step"]), float(r["loss"])) for r in rows[8:]] == model.series("loss")


# ---------------------------------------------------------------------- secrets


def test_secrets_reach_no_file_of_the_run_and_no_output(
    tmp_path: Path, capfd: Any, monkeypatch: pytest.MonkeyPatch, plugin_manager: Any
) -> None:
    monkeypatch.setenv("MY_API_KEY", "sekret123")
    monkeypatch.setattr("ember.hub.manager._default", plugin_manager)
    outage = tmp_path / "outage"
    outage.touch()  # the tracker fails, and its error message carries the token

    class Noted(Classifier):
        def on_train_end(self) -> None:
            self.trainer.log_text("note", "tokens: sekret123, tok-sekret-456")

    recorder = {
        "name": "recorder",
        "path": str(tmp_path / "recorder.jsonl"),
        "outage_file": str(outage),
        "token": "tok-sekret-456",
    }
    trainer = quiet(tmp_path, max_epochs=1, logger=["csv", recorder], logger_timeout=0.3)
    trainer.fit(Noted(note="the key is sekret123"), loader())
    outage.unlink()
    sync = run_ember("sync", trainer.log_dir, "--to", "csv", "--json")

    out, err = capfd.readouterr()
    assert "tracker unreachable (token ***)" in out  # the report names the error, redacted
    for text in (out, err, sync.stdout, sync.stderr):
        assert "sekret123" not in text and "tok-sekret-456" not in text
    files = [p for p in Path(trainer.log_dir).rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"journal.db", "hparams.json", "texts.csv"}
    for path in files:
        data = path.read_bytes()
        assert b"sekret123" not in data and b"tok-sekret-456" not in data, path
    with JournalReader(trainer.log_dir) as reader:
        assert reader.hyperparams()["note"] == "the key is ***"
        assert reader.last_event("config")["data"]["trainer"]["logger"][1]["token"] == "***"


# ---------------------------------------------------------------------- ranks


class SecondRank(SingleDeviceStrategy):
    """This process as rank 1 of 2 (the collectives are the single-device ones)."""

    @property
    def global_rank(self) -> int:
        return 1

    @property
    def world_size(self) -> int:
        return 2


def test_only_rank_zero_holds_the_journal_and_loggers(tmp_path: Path) -> None:
    recorder = RecorderLogger(str(tmp_path / "recorder.jsonl"))
    trainer = quiet(tmp_path, max_epochs=1, strategy=SecondRank(), logger=["csv", recorder])
    trainer.fit(Classifier(), loader())
    assert isinstance(trainer.run, DisabledRun) and trainer.logged_metrics
    assert not (tmp_path / "ember_runs").exists() and recorder.opened == []


# ---------------------------------------------------------------------- how runs end


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("bad batch"), "failed"),
        (KeyboardInterrupt(), "interrupted"),
        (Preempted(signal.SIGTERM), "interrupted"),
    ],
)
def test_the_run_ends_with_the_outcome_of_fit(
    tmp_path: Path, error: BaseException, status: str
) -> None:
    class Breaks(Classifier):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if batch_idx == 2:
                raise error
            return super().training_step(batch, batch_idx)

    model = Breaks()
    trainer = quiet(tmp_path, max_epochs=1)
    with pytest.raises(type(error)):
        trainer.fit(model, loader())
    assert trainer.run.report.status == status
    with JournalReader(trainer.log_dir) as reader:
        assert reader.status()[0] == status
    assert journal_series(trainer.log_dir, "loss") == model.series("loss")  # steps 1 and 2
    assert json.loads((Path(trainer.log_dir) / "status.json").read_text())["status"] == status
