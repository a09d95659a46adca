"""The Run API the trainer uses: resolving ``logger=``, disabled runs, ranks, offline
mode, the journal's values and concurrency, and what a flush costs the caller."""

from __future__ import annotations

import math
import statistics
import threading
import time
from pathlib import Path

import pytest
from ember.hub import Logger, OptionsError, UnknownProviderError
from ember.hub.tracking import (
    Capabilities,
    DeliveryPolicy,
    DisabledRun,
    JournalError,
    JournalReader,
    Run,
    TrackingWarning,
    resolve_loggers,
)
from ember.hub.tracking.csv_logger import CSVLogger
from ember.hub.tracking.runs import sync
from ember_fixture_trackers.loggers import FaultyLogger, RecorderLogger
from tracking_helpers import read_jsonl, run_ember

# ------------------------------------------------------------------ resolving logger=


def test_default_is_csv_and_false_disables(tmp_path: Path) -> None:
    (entry,) = resolve_loggers(None)
    assert entry.key == "csv" and isinstance(entry.logger, CSVLogger)
    assert [e.key for e in resolve_loggers(True)] == ["csv"]
    assert resolve_loggers(False) is None
    run = Run.start(tmp_path, False)  # Trainer(logger=False)
    assert isinstance(run, DisabledRun) and not run.enabled
    run.log_metrics({"loss": 1.0}, step=0)
    assert run.state_dict() == {}
    assert str(run.finish()).startswith("ember: tracking disabled")
    assert list(tmp_path.iterdir()) == []


def test_every_spelling(tmp_path: Path, plugin_manager) -> None:
    rec = RecorderLogger(str(tmp_path / "r.jsonl"))
    rec2 = RecorderLogger(str(tmp_path / "r2.jsonl"))
    entries = resolve_loggers(
        ["csv", {"name": "csv", "save_dir": str(tmp_path / "other")}, rec, rec2],
        plugin_manager=plugin_manager,
    )
    keys = [e.key for e in entries]
    assert keys[0] == "csv" and keys[1].startswith("csv:") and keys[2] == "recorder"
    assert keys[3] == "recorder#2"  # a second object of one kind: its own cursor
    assert entries[1].logger.save_dir == tmp_path / "other"
    assert entries[2].logger is rec
    assert entries[1].options == {"save_dir": str(tmp_path / "other")}


def test_clear_errors(plugin_manager) -> None:
    with pytest.raises(UnknownProviderError, match="Did you mean 'csv'"):
        resolve_loggers("cvs", plugin_manager=plugin_manager)
    with pytest.raises(UnknownProviderError, match="pip install ember-wandb"):
        resolve_loggers("wandb", plugin_manager=plugin_manager)
    with pytest.raises(OptionsError, match="did you mean 'save_dir'"):
        resolve_loggers({"name": "csv", "savedir": "x"}, plugin_manager=plugin_manager)
    with pytest.raises(OptionsError, match="needs a 'name' key"):
        resolve_loggers({"save_dir": "x"}, plugin_manager=plugin_manager)

    class LightningStyle:  # looks like a logger, but not ember's contract
        def log_metrics(self, metrics, step):
            pass

    with pytest.raises(TypeError, match=r"must be an instance of ember\.hub\.Logger"):
        resolve_loggers([LightningStyle()])
    with pytest.raises(TypeError, match="expected a provider name"):
        resolve_loggers([object()])
    with pytest.raises(TypeError, match="expected a provider name"):
        resolve_loggers(3.5)

    class Liar(Logger):
        capabilities = Capabilities(text=True)

        def log_metrics(self, records):
            pass

    with pytest.raises(TypeError, match="declares text=True but does not override log_text"):
        resolve_loggers(Liar())


def test_secret_option_is_redacted_in_the_entry(plugin_manager, tmp_path: Path) -> None:
    (entry,) = resolve_loggers(
        {"name": "recorder", "path": str(tmp_path / "x"), "token": "abcdefgh-secret"},
        plugin_manager=plugin_manager,
    )
    assert entry.options["token"] == "***" and entry.logger.token == "abcdefgh-secret"
    assert (
        entry.key
        == resolve_loggers(
            {"name": "recorder", "path": str(tmp_path / "x"), "token": "another-secret"},
            plugin_manager=plugin_manager,
        )[0].key
    )  # the cursor does not depend on secrets


# ------------------------------------------------------------------ ranks, offline


def test_only_rank_zero_holds_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(Run.start(tmp_path, rank=1), DisabledRun)
    monkeypatch.setenv("RANK", "3")
    assert isinstance(Run.start(tmp_path), DisabledRun)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RANK", "0")
    run = Run.start(tmp_path, loggers=[])
    assert run.enabled and run.journal_path.is_file()
    assert str(run.finish()).endswith("no loggers: the journal is the only record")


class OnlineOnly(RecorderLogger):
    name = "online_only"
    capabilities = Capabilities(
        hyperparams=True, metrics=True, text=True, artifacts=True, reattach=True, offline=False
    )


def test_offline_defers_network_loggers_to_sync(tmp_path: Path, plugin_manager) -> None:
    online = OnlineOnly(str(tmp_path / "online.jsonl"))
    with pytest.warns(TrackingWarning, match="needs a network"):
        run = Run.start(tmp_path, loggers=["csv", online], offline=True)
    for step in range(10):
        run.log_metrics({"loss": float(step)}, step=step)
    report = run.finish()
    by_key = {lg.key: lg for lg in report.loggers}
    assert by_key["csv"].complete
    assert by_key["online_only"].state == "deferred (offline)"
    assert by_key["online_only"].pending == 10 and online.received == []
    assert report.sync_commands == [by_key["online_only"].sync_command]


# ------------------------------------------------------------------ run behaviour


def test_context_manager_records_failure(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), Run.start(tmp_path, loggers=[]) as run:
        run.log_metrics({"loss": 1.0}, step=0)
        1 / 0  # noqa: B018
    assert run.report is not None and run.report.status == "failed"
    assert run.finish() is run.report  # idempotent
    with pytest.raises(JournalError, match="closed"):
        run.log_metrics({"loss": 1.0}, step=1)


def test_bad_inputs(tmp_path: Path) -> None:
    run = Run.start(tmp_path, loggers=[])
    with pytest.raises(TypeError, match="mapping of metric name to number"):
        run.log_metrics({"loss": "high"}, step=0)
    with pytest.raises(TypeError, match="needs a mapping"):
        run.log_hyperparams([1, 2])
    with pytest.raises(ValueError, match="status must be one of"):
        run.finish("ok")
    run.finish()
    with pytest.raises(ValueError, match="with an 'id'"):
        Run.start(tmp_path, resume={"dir": "x"})


def test_values_round_trip_exactly(tmp_path: Path) -> None:
    rec = RecorderLogger(str(tmp_path / "r.jsonl"))
    run = Run.start(tmp_path, loggers=[rec])
    values = {
        "a": 0.1,
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "int": 3,
        "tiny": 5e-324,
    }
    run.log_metrics(values, step=7)
    run.log_hyperparams({"path": tmp_path, "tuple": (1, 2), "nested": {"x": {"y": None}}})
    run.finish()
    with JournalReader(run.dir) as reader:
        got = {n: reader.metric_series(n)[0][1] for n in values}
        assert reader.hyperparams() == {
            "path": str(tmp_path),
            "tuple": [1, 2],
            "nested": {"x": {"y": None}},
        }
    assert math.isnan(got.pop("nan")) and got == {k: v for k, v in values.items() if k != "nan"}
    delivered = {e["name"]: e["value"] for e in read_jsonl(Path(rec.path)) if e["type"] == "metric"}
    assert delivered["inf"] == math.inf and delivered["tiny"] == 5e-324


def test_journal_is_readable_while_the_run_writes(tmp_path: Path) -> None:
    run = Run.start(tmp_path, loggers=[])
    stop = threading.Event()
    seen: list[int] = []

    def watch() -> None:
        while not stop.is_set():
            with JournalReader(run.dir) as reader:
                seen.append(len(reader.metric_series("loss")))
            proc = run_ember("runs", "--root", str(tmp_path))
            assert proc.returncode == 0 and "running" in proc.stdout

    watcher = threading.Thread(target=watch)
    watcher.start()
    for step in range(3000):
        run.log_metrics({"loss": float(step)}, step=step)
        if step % 100 == 0:
            time.sleep(0.01)
    stop.set()
    watcher.join()
    run.finish()
    assert seen and seen == sorted(seen) and seen[-1] <= 3000


def test_artifact_deleted_before_delivery_is_skipped_not_blocking(tmp_path: Path) -> None:
    gone = tmp_path / "gone.ckpt"
    gone.write_bytes(b"x")
    rec = RecorderLogger(str(tmp_path / "r.jsonl"))
    run = Run.start(tmp_path, loggers=[rec])
    run.log_metrics({"loss": 1.0}, step=0)
    run.log_artifact(gone, "checkpoint", step=0, metadata={"epoch": 0})
    run.log_metrics({"loss": 0.5}, step=1)
    report = run.finish()
    assert report.complete, str(report)
    # the file disappears before a later sync into another tracker
    gone.unlink()
    late = sync(run.dir, {"name": "csv", "save_dir": str(tmp_path / "late")})
    assert (late.delivered, late.pending, late.failed, late.removed) == (2, 0, 0, 1)
    assert late.state == "ok" and late.complete


def test_foreign_or_missing_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no run journal at"):
        JournalReader(tmp_path)
    (tmp_path / "journal.db").write_text("not a database, just text\n" * 100)
    with pytest.raises(JournalError, match="not a readable ember run journal"):
        JournalReader(tmp_path)
    with pytest.raises(JournalError, match="not a readable ember run journal"):
        sync(tmp_path, "csv")


# ------------------------------------------------------------------ overhead


@pytest.mark.filterwarnings("ignore::ember.hub.tracking.TrackingWarning")
def test_flush_cost_and_slow_logger_adds_nothing(tmp_path: Path) -> None:
    """A flush costs the training thread one journal transaction, whatever the loggers."""

    def timed(loggers) -> list[float]:
        run = Run.start(tmp_path, loggers=loggers, policy=DeliveryPolicy(finalize_timeout=0.5))
        times = []
        for step in range(300):
            metrics = {f"m{i}": step * 0.1 + i for i in range(4)}
            t0 = time.perf_counter()
            run.log_metrics(metrics, step=step)
            times.append(time.perf_counter() - t0)
        run.finish()
        return times

    bare = timed([])
    slow = timed([FaultyLogger("sleep", delay=0.1)])
    # medians: a 100 ms logger is not in the training thread's path
    assert statistics.median(bare) < 0.002
    assert statistics.median(slow) < statistics.median(bare) + 0.002
    assert sum(slow) < 1.0  # 300 synchronous calls would take 30 s


def test_an_odd_offline_setting_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ember.hub import PluginSettingsError

    monkeypatch.setenv("EMBER_OFFLINE", "maybe")
    with pytest.raises(PluginSettingsError, match=r"EMBER_OFFLINE='maybe' is not a yes/no value"):
        Run.start(tmp_path, loggers=[])
    assert not (tmp_path / "ember_runs").exists()


@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_timeouts_must_be_numbers_of_seconds(tmp_path: Path, bad: float) -> None:
    with pytest.raises(ValueError, match="at least 0"):
        DeliveryPolicy(finalize_timeout=bad)
    run = Run.start(tmp_path, loggers=[])
    with pytest.raises(ValueError, match=r"finish\(timeout=\.\.\.\) takes seconds"):
        run.finish(timeout=bad)
    assert run.finish().status == "success"  # the run is still open and finishes normally
    with pytest.raises(ValueError, match="positive number of seconds"):
        sync(run.dir, "csv", timeout=bad)
