"""Broken trackers: training neither waits nor dies, nothing is lost, the report is
exact, and ``ember sync`` (the real console script) completes delivery, once."""

from __future__ import annotations

import csv
import shlex
import time
import warnings
from pathlib import Path

import pytest
from ember.hub.tracking import (
    DeliveryPolicy,
    JournalReader,
    MetricRecord,
    Run,
    TrackingWarning,
)
from ember_fixture_trackers.loggers import FaultyLogger, RecorderLogger
from tracking_helpers import read_jsonl, run_ember, wait_for

STEPS, FLUSH_EVERY = 2000, 50
POLICY = DeliveryPolicy(backoff=0.01, max_backoff=0.05, max_attempts=4, finalize_timeout=4.0)


def _value(name: str, step: int) -> float:
    return 1.0 / (step + 1) if name == "loss" else step / STEPS


def _train(run: Run) -> list[float]:
    """A training loop without torch: 2000 steps x 2 metrics, one flush every 50 steps
    (each flush carries the 50 steps' values); returns the duration of each flush."""
    run.log_hyperparams({"lr": 0.1, "model": {"hidden": 64, "act": "relu"}})
    pending: list[MetricRecord] = []
    flush_times = []
    for step in range(STEPS):
        now = time.time()
        pending += [MetricRecord(n, _value(n, step), step, now) for n in ("loss", "acc")]
        if (step + 1) % FLUSH_EVERY == 0:
            t0 = time.perf_counter()
            run.log_records(pending)
            flush_times.append(time.perf_counter() - t0)
            pending = []
    run.log_text("summary", "trained 2000 steps", step=STEPS - 1)
    return flush_times


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("faults")
    loggers = {
        "recorder": RecorderLogger(str(root / "recorder.jsonl")),
        "raise": FaultyLogger("raise"),
        "intermittent": FaultyLogger("intermittent"),
        "sleep": FaultyLogger("sleep", delay=0.2),
        "hang": FaultyLogger("hang"),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = Run.start(root, loggers=list(loggers.values()), policy=POLICY, name="faults")
        t0 = time.perf_counter()
        flush_times = _train(run)
        loop_time = time.perf_counter() - t0
    # the faulty loggers lack artifacts and images, but this run logs neither: no warning
    assert [w for w in caught if w.category is TrackingWarning] == []
    t0 = time.perf_counter()
    report = run.finish("success")
    finish_time = time.perf_counter() - t0
    return {
        "run": run,
        "loggers": loggers,
        "report": report,
        "root": root,
        "loop_time": loop_time,
        "flush_times": flush_times,
        "finish_time": finish_time,
    }


def test_training_does_not_wait(faulty_run) -> None:
    # synchronous delivery would take 40 flushes x 0.2 s for the slow tracker alone,
    # and forever for the hung one
    assert faulty_run["loop_time"] < 1.5, faulty_run["loop_time"]
    assert max(faulty_run["flush_times"]) < 0.25, max(faulty_run["flush_times"])
    # finish waits at most its deadline, even with a tracker that never returns
    assert faulty_run["finish_time"] < POLICY.finalize_timeout + 1.0


def test_journal_holds_every_record(faulty_run) -> None:
    with JournalReader(faulty_run["run"].dir) as reader:
        assert reader.counts_by_kind() == {"hparams": 1, "metric": 2 * STEPS, "text": 1}
        for name in ("loss", "acc"):
            series = reader.metric_series(name)
            assert [s for s, _, _ in series] == list(range(STEPS))
            assert all(v == _value(name, s) for s, v, _ in series)
        assert reader.status()[0] == "success"


def test_report_is_exact(faulty_run) -> None:
    report = faulty_run["report"]
    loggers = faulty_run["loggers"]
    by_label = {lg.label: lg for lg in report.loggers}
    total = 2 * STEPS + 2
    for lg in report.loggers:
        assert lg.delivered + lg.pending + lg.failed == total, lg

    for label in ("recorder", "faulty_intermittent", "faulty_sleep"):
        assert by_label[label].state == "ok", by_label[label]
        assert by_label[label].complete
    assert len(read_jsonl(Path(loggers["recorder"].path))) == total + 1  # + finalize
    assert sum(1 for r in loggers["intermittent"].received if r[0] == "metric") == 2 * STEPS
    assert loggers["sleep"].finalized == "success"

    raised = by_label["faulty_raise"]
    assert raised.state == "quarantined"
    assert (raised.delivered, raised.failed, raised.pending) == (0, 1, total - 1)
    assert "RuntimeError: tracker down" in (raised.error or "")

    hung = by_label["faulty_hang"]
    assert hung.state.startswith("hung in log_metrics")
    assert hung.delivered == len(loggers["hang"].received) == 1  # the hyperparameters
    assert hung.pending == total - 1 and hung.failed == 0

    text = str(report)
    run_dir = faulty_run["run"].dir
    assert "ember sync" in text and "--to faulty_raise" in text and "--to faulty_hang" in text
    assert (
        report.sync_commands == [lg.sync_command for lg in (raised, hung)]
        and str(run_dir.name) in report.sync_commands[0]
    )


def test_sync_cli_delivers_everything_once(faulty_run, trackers_dist: Path, tmp_path: Path) -> None:
    run_dir = faulty_run["run"].dir
    target = tmp_path / "late.jsonl"
    args = ["sync", str(run_dir), "--to", "recorder", "--option", f"path={target}"]
    first = run_ember(*args, plugins=trackers_dist)
    assert first.returncode == 0, first.stderr
    assert "delivered 4002, pending 0, failed 0" in first.stdout
    entries = read_jsonl(target)
    metrics = [(e["name"], e["step"], e["value"]) for e in entries if e["type"] == "metric"]
    assert len(metrics) == len(set(metrics)) == 2 * STEPS
    assert sorted(metrics) == sorted(
        (n, s, _value(n, s)) for s in range(STEPS) for n in ("loss", "acc")
    )
    assert entries[0] == {
        "type": "hparams",
        "params": {"lr": 0.1, "model": {"hidden": 64, "act": "relu"}},
    }
    assert entries[-1] == {"type": "finalize", "status": "success"}

    second = run_ember(*args, plugins=trackers_dist)
    assert second.returncode == 0, second.stderr
    assert "nothing to deliver" in second.stdout
    assert read_jsonl(target) == entries

    # the built-in CSV logger through the same command
    out = tmp_path / "csv"
    proc = run_ember("sync", str(run_dir), "--to", "csv", "--option", f"save_dir={out}")
    assert proc.returncode == 0, proc.stderr
    with (out / faulty_run["run"].id / "metrics.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "loss", "acc"] and len(rows) == STEPS + 1


def test_sync_continues_after_an_outage(
    tmp_path: Path, trackers_dist: Path, plugin_manager
) -> None:
    """A tracker that goes down mid-run is quarantined; once it is back, sync delivers
    exactly the rest into the same tracker run."""
    target, outage = tmp_path / "rec.jsonl", tmp_path / "outage"
    spec = {"name": "recorder", "path": str(target), "outage_file": str(outage)}
    run = Run.start(tmp_path, loggers=[spec], policy=POLICY, plugin_manager=plugin_manager)
    for step in range(100):
        run.log_metrics({"loss": float(step)}, step=step)
        if step == 59:
            # let the tracker catch up, then take it down
            wait_for(lambda: len(read_jsonl(target)) == 60, what="60 records delivered")
            outage.touch()
    report = run.finish("success", timeout=3)
    (entry,) = report.loggers
    assert entry.state == "quarantined" and entry.delivered == 60, entry
    assert f"--option outage_file={outage}" in entry.sync_command

    outage.unlink()
    proc = run_ember(*shlex.split(entry.sync_command)[1:], plugins=trackers_dist, cwd=Path.cwd())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [e["step"] for e in read_jsonl(target) if e["type"] == "metric"]
    assert steps == list(range(100))
    with JournalReader(run.dir) as reader:
        cursor = reader.cursors()[entry.key]
    assert cursor["state"] == "ok" and cursor["finalized"] == "success"
    assert cursor["tracker_ref"] == f"recorder:{run.id}"


def test_sync_cli_edges(tmp_path: Path, trackers_dist: Path) -> None:
    run = Run.start(tmp_path, loggers=[])
    for step in range(20):
        run.log_metrics({"loss": float(step)}, step=step)

    alive = run_ember("sync", str(run.dir), "--to", "csv", plugins=trackers_dist)
    assert alive.returncode == 1 and "still running" in alive.stderr
    forced = run_ember(
        "sync",
        str(run.dir),
        "--to",
        "csv",
        "--force",
        "--json",
        "--option",
        f"save_dir={tmp_path / 'forced'}",
    )
    assert forced.returncode == 0, forced.stderr
    assert '"delivered": 20' in forced.stdout
    run.finish()

    hung = run_ember(
        "sync",
        str(run.dir),
        "--to",
        "faulty",
        "--option",
        "mode=hang",
        "--timeout",
        "1",
        plugins=trackers_dist,
        timeout=30,
    )
    assert hung.returncode == 1
    assert "delivered 0, pending 20, failed 0 (hung in log_metrics" in hung.stdout

    typo = run_ember("sync", str(run.dir), "--to", "recorde", plugins=trackers_dist)
    assert typo.returncode == 1 and "Did you mean 'recorder'?" in typo.stderr
    bad = run_ember(
        "sync", str(run.dir), "--to", "recorder", "--option", "path", plugins=trackers_dist
    )
    assert bad.returncode == 1 and "write KEY=VALUE" in bad.stderr
    nowhere = run_ember("sync", str(tmp_path / "nope"), "--to", "csv")
    assert nowhere.returncode == 1 and "no run" in nowhere.stderr
