"""kill -9 of a real logging process, and resuming a run: the journal stays readable,
records past the checkpoint are superseded, loggers re-attach, no step is doubled."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ember.hub.tracking import DeliveryPolicy, JournalReader, Run
from ember_fixture_trackers.loggers import RecorderLogger
from tracking_helpers import read_jsonl, run_ember, wait_for

POLICY = DeliveryPolicy(backoff=0.01, max_backoff=0.05, max_attempts=3, finalize_timeout=5)

VICTIM = textwrap.dedent(
    """
    import sys, time
    from ember.hub.tracking import Run

    run = Run.start(sys.argv[1], name="victim")
    print(run.dir, flush=True)
    step = 0
    while True:
        run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 1000}, step=step)
        print(step, flush=True)  # printed only once the flush has returned
        step += 1
        time.sleep(0.002)
    """
)


def _csv_steps(path: Path) -> list[int]:
    with path.open(newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def test_kill_9_leaves_a_readable_complete_journal_and_resume_continues_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", VICTIM, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    run_dir = Path(proc.stdout.readline().strip())
    last = -1
    deadline = time.monotonic() + 60
    while last < 400 and time.monotonic() < deadline:
        last = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert last >= 400
    # the victim may have flushed and printed more steps before the kill landed
    last = max([last, *(int(line) for line in proc.stdout.read().split())])

    with JournalReader(run_dir) as reader:
        assert reader.integrity_ok()
        steps = [s for s, _, _ in reader.metric_series("loss")]
        # every flush that returned is there; at most the one in flight may be too
        assert steps[: last + 1] == list(range(last + 1))
        assert len(steps) <= last + 2
        assert reader.status()[0] == "running"
        run_id = reader.id

    listing = run_ember("runs", "list", "--root", str(tmp_path))
    assert listing.returncode == 0, listing.stderr
    assert run_id in listing.stdout and "killed" in listing.stdout

    # resume from a checkpoint taken 100 steps before the kill
    ckpt_step = last - 100
    resumed = Run.start(
        tmp_path,
        resume={"id": run_id, "dir": str(run_dir), "name": "victim"},
        resume_step=ckpt_step,
        policy=POLICY,
    )
    assert resumed.id == run_id and resumed.dir == run_dir
    for step in range(ckpt_step + 1, last + 50):
        resumed.log_metrics({"loss": -float(step), "acc": 0.5}, step=step)
    report = resumed.finish("success")
    assert report.complete, str(report)

    with JournalReader(run_dir) as reader:
        series = reader.metric_series("loss")
        assert [s for s, _, _ in series] == list(range(last + 50))
        assert all(v == (1.0 / (s + 1) if s <= ckpt_step else -float(s)) for s, v, _ in series)
        assert [seg["from_step"] for seg in reader.segments()] == [None, ckpt_step]
        assert reader.status()[0] == "success"
    # the CSV logger re-attached to its files and dropped the superseded rows
    assert _csv_steps(run_dir / "metrics.csv") == list(range(last + 50))


def test_resume_reattaches_loggers_and_supersedes(tmp_path: Path) -> None:
    rec_path = tmp_path / "rec.jsonl"
    run = Run.start(tmp_path, loggers=["csv", RecorderLogger(str(rec_path))], policy=POLICY)
    for step in range(150):
        run.log_metrics({"loss": float(step)}, step=step)
    state = run.state_dict()
    run.finish("interrupted")

    recorder = RecorderLogger(str(rec_path))
    again = Run.start(
        tmp_path, loggers=["csv", recorder], resume=state, resume_step=100, policy=POLICY
    )
    for step in range(101, 201):
        again.log_metrics({"loss": 1000.0 + step}, step=step)
    assert again.finish("success").complete

    (opened,) = recorder.opened
    assert opened.resumed and opened.resume_step == 100 and opened.id == run.id
    assert opened.resume_ref == f"recorder:{run.id}"
    with JournalReader(run.dir) as reader:
        series = reader.metric_series("loss")
        assert [s for s, _, _ in series] == list(range(201))
        assert [v for s, v, _ in series if s > 100] == [1000.0 + s for s in range(101, 201)]
        assert reader.counts_by_kind() == {"metric": 201}
    with (run.dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(201))
    assert float(rows[150]["loss"]) == 1150.0

    show = run_ember("runs", "show", str(run.dir))
    assert show.returncode == 0, show.stderr
    assert "resumed   1 time(s), from step 100" in show.stdout


def test_a_logger_behind_at_the_crash_skips_superseded_records(tmp_path: Path) -> None:
    """Records the tracker never received before the resume point are delivered; those
    past it are superseded and never delivered."""
    rec_path, outage = tmp_path / "rec.jsonl", tmp_path / "outage"
    first = RecorderLogger(str(rec_path), outage_file=str(outage))
    run = Run.start(tmp_path, loggers=[first], policy=POLICY)
    for step in range(150):
        run.log_metrics({"loss": float(step)}, step=step)
        if step == 59:
            # let the tracker catch up, then take it down
            wait_for(lambda: len(read_jsonl(rec_path)) == 60, what="60 records delivered")
            outage.touch()
    state = run.state_dict()
    report = run.finish("failed", timeout=2)
    assert report.loggers[0].state == "quarantined" and report.loggers[0].delivered == 60
    outage.unlink()

    again = Run.start(
        tmp_path,
        loggers=[RecorderLogger(str(rec_path))],
        resume=state,
        resume_step=100,
        policy=POLICY,
    )
    for step in range(101, 120):
        again.log_metrics({"loss": -float(step)}, step=step)
    assert again.finish("success").complete
    steps = [e["step"] for e in read_jsonl(rec_path) if e["type"] == "metric"]
    assert steps == list(range(120))
