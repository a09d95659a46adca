"""Delivery from ember's delivery process (``logger_delivery="process"``): every record
once, one tracker run across stages, the escape hatch sent there and back, loggers that
cannot be copied there refused up front, a killed training process, a killed delivery
process, a hung tracker at the deadline. Real processes throughout."""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.hub.errors import OptionsError
from ember.hub.tracking import DeliveryPolicy, JournalReader, Logger, Run
from ember.trainer import EmberModule, Trainer
from ember.trainer.errors import MisconfigurationError
from ember_fixture_trackers.loggers import FaultyLogger, RecorderLogger
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from tracking_helpers import (
    NotebookLogger,
    make_lock,
    read_jsonl,
    run_ember,
    wait_for,
    write_note,
)

POLICY = DeliveryPolicy(
    process=True, backoff=0.01, max_backoff=0.05, max_attempts=3, finalize_timeout=30
)
HERE = Path(__file__).parent


def courier_pid(run_dir: Path) -> int:
    with JournalReader(run_dir) as reader:
        (event,) = reader.events("courier")
    return int(event["data"]["pid"])


def ended(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie nobody reaped yet counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def metrics_of(path: Path) -> list[tuple[str, int, float]]:
    return [(e["name"], e["step"], e["value"]) for e in read_jsonl(path) if e["type"] == "metric"]


class Model(EmberModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(4, 2)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("loss", loss)
        return loss

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)


def test_fit_then_test_deliver_every_record_once_from_the_delivery_process(
    tmp_path: Path,
) -> None:
    target = tmp_path / "rec.jsonl"
    logger_threads: list[str] = []

    class Spy(Model):
        def on_train_end(self) -> None:
            logger_threads.extend(
                t.name for t in threading.enumerate() if t.name.startswith("ember-logger-")
            )

    trainer = Trainer(
        logger=["csv", RecorderLogger(str(target))],
        logger_delivery="process",
        max_epochs=3,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    model = Spy()
    trainer.fit(model, loader())
    trainer.test(model, loader())
    run_dir = trainer.run.dir
    pid = courier_pid(run_dir)
    assert pid != os.getpid() and not ended(pid)
    # a Ctrl-C in the terminal reaches it too: it goes on until the run finishes
    os.kill(pid, signal.SIGINT)
    time.sleep(0.2)
    assert not ended(pid)
    report = trainer.run.finish("success")
    assert report.complete, str(report)
    assert logger_threads == []  # no logger code ran in the training process
    wait_for(lambda: ended(pid), timeout=10, what="the delivery process to exit")

    with JournalReader(run_dir) as reader:
        journaled = sorted(
            (name, step, value)
            for name in reader.metric_names()
            for step, value, _ in reader.metric_series(name)
        )
        cursors = reader.cursors()
    delivered = metrics_of(target)
    assert sorted(delivered) == journaled and len(journaled) > 24
    assert [e["status"] for e in read_jsonl(target) if e["type"] == "finalize"] == ["success"]
    assert {c["finalized"] for c in cursors.values()} == {"success"}
    assert cursors["csv"]["tracker_ref"] == str(run_dir)
    csv_steps = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv_steps) == 1 + len({s for _, s, _ in journaled})


def test_the_escape_hatch_is_sent_to_the_delivery_process_and_runs_in_order(
    tmp_path: Path,
) -> None:
    target = tmp_path / "rec.jsonl"
    run = Run.start(tmp_path, loggers=[NotebookLogger(str(target))], policy=POLICY)
    run.log_metrics({"loss": 1.0}, 1)
    future = run.loggers["notebook"].call(functools.partial(write_note, text="between"))
    run.log_metrics({"loss": 0.5}, 2)
    assert future.result(timeout=60) == courier_pid(run.dir) != os.getpid()
    with pytest.raises(TypeError, match="top level of a module") as refused:
        run.loggers["notebook"].call(lambda exp: exp)
    assert "logger_delivery='thread'" in str(refused.value)
    failing = run.loggers["notebook"].call(functools.partial(write_note, text=None, extra=1))
    with pytest.raises(TypeError, match="extra"):
        failing.result(timeout=60)
    unsendable = run.loggers["notebook"].call(make_lock)
    with pytest.raises(TypeError, match="the result cannot be sent back"):
        unsendable.result(timeout=60)
    assert run.finish("success").complete
    kinds = [(e["type"], e.get("step", e.get("text"))) for e in read_jsonl(target)]
    assert kinds == [("metric", 1), ("note", "between"), ("metric", 2), ("finalize", None)]


class LockedLogger(Logger):
    """A logger object holding a lock: it cannot be pickled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def log_metrics(self, records: Any) -> None:
        pass


def test_a_logger_that_cannot_be_copied_there_is_refused_before_training(
    tmp_path: Path,
) -> None:
    with pytest.raises(OptionsError, match="cannot be delivered from ember's delivery process"):
        Run.start(tmp_path, loggers=[LockedLogger()], policy=POLICY)

    script = textwrap.dedent(
        """
        import sys
        from ember.hub.tracking import DeliveryPolicy, Logger, Run

        class MainLogger(Logger):
            def log_metrics(self, records):
                pass

        Run.start(sys.argv[1], loggers=[MainLogger()], policy=DeliveryPolicy(process=True))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "main")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "could not be copied there" in proc.stderr and "__main__" in proc.stderr
    assert "logger_delivery='thread'" in proc.stderr


def test_the_delivery_process_imports_from_the_scripts_folder_as_training_does(
    tmp_path: Path,
) -> None:
    """The delivery process finds a logger class in a module beside the script, and a
    module there named like one Python loads while starting (``types.py``) does not
    replace the standard one in it, as it does not in the training process."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "types.py").write_text("raise ImportError('the project types.py was imported')\n")
    (folder / "beside.py").write_text(
        textwrap.dedent(
            """
            import json, os
            from ember.hub.tracking import Logger

            class FileLogger(Logger):
                def __init__(self, path):
                    self.path = path

                def log_metrics(self, records):
                    with open(self.path, "a") as f:
                        for r in records:
                            f.write(json.dumps([r.name, r.step, r.value, os.getpid()]) + "\\n")
            """
        )
    )
    (folder / "train.py").write_text(
        textwrap.dedent(
            """
            import os, sys
            from beside import FileLogger
            from ember.hub.tracking import DeliveryPolicy, Run

            run = Run.start(
                sys.argv[1], loggers=[FileLogger(sys.argv[2])], policy=DeliveryPolicy(process=True)
            )
            for step in range(5):
                run.log_metrics({"loss": float(step)}, step=step)
            report = run.finish("success")
            assert report.complete, report
            print(os.getpid())
            """
        )
    )
    out = tmp_path / "delivered.jsonl"
    proc = subprocess.run(
        [sys.executable, str(folder / "train.py"), str(tmp_path / "runs"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(name, step, value) for name, step, value, _ in rows] == [
        ("loss", s, float(s)) for s in range(5)
    ]
    assert int(proc.stdout) not in {pid for *_, pid in rows}


def test_logger_delivery_must_be_thread_or_process() -> None:
    with pytest.raises(MisconfigurationError, match="logger_delivery must be 'thread'"):
        Trainer(logger_delivery="processes")


VICTIM = textwrap.dedent(
    """
    import sys, time
    from ember.hub.tracking import DeliveryPolicy, Run
    from ember_fixture_trackers.loggers import RecorderLogger

    run = Run.start(
        sys.argv[1], loggers=[RecorderLogger(sys.argv[2])], policy=DeliveryPolicy(process=True)
    )
    print(run.dir, flush=True)
    step = 0
    while True:
        run.log_metrics({"loss": float(step)}, step=step)
        print(step, flush=True)
        step += 1
        time.sleep(0.002)
    """
)


def test_a_killed_training_process_ends_its_delivery_process_and_resume_reattaches(
    tmp_path: Path,
) -> None:
    target = tmp_path / "rec.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "fixtures" / "trackers")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", VICTIM, str(tmp_path), str(target)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    run_dir = Path(proc.stdout.readline().strip())
    last = -1
    while last < 300:
        last = int(proc.stdout.readline())
    wait_for(lambda: len(metrics_of(target)) > 100, timeout=30, what="deliveries")
    pid = courier_pid(run_dir)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_for(lambda: ended(pid), timeout=15, what="the delivery process to exit")
    assert not [e for e in read_jsonl(target) if e["type"] == "finalize"]

    with JournalReader(run_dir) as reader:
        run_id = reader.id
        # the victim logs on while stdout is read, so it continues from what the journal holds
        last = reader.last_metrics()["loss"][0]
    recorder = RecorderLogger(str(target))
    resumed = Run.start(
        tmp_path, loggers=[recorder], resume={"id": run_id, "dir": str(run_dir)}, policy=POLICY
    )
    for step in range(last + 1, last + 50):
        resumed.log_metrics({"loss": float(step)}, step=step)
    assert resumed.finish("success").complete
    steps = [s for _, s, _ in metrics_of(target)]
    with JournalReader(run_dir) as reader:
        journaled = [s for s, _, _ in reader.metric_series("loss")]
    assert steps == journaled  # every record once, in order, in the same tracker run
    assert [e["status"] for e in read_jsonl(target) if e["type"] == "finalize"] == ["success"]
    with JournalReader(run_dir) as reader:
        assert reader.cursors()["recorder"]["tracker_ref"] == f"recorder:{run_id}"


def test_a_killed_delivery_process_leaves_training_running_and_sync_completes(
    tmp_path: Path, trackers_dist: Path, plugin_manager: Any
) -> None:
    target = tmp_path / "rec.jsonl"
    spec = {"name": "recorder", "path": str(target)}
    run = Run.start(tmp_path, loggers=[spec], policy=POLICY, plugin_manager=plugin_manager)
    for step in range(100):
        run.log_metrics({"loss": float(step)}, step=step)
    assert run.flush(30).complete
    os.kill(courier_pid(run.dir), signal.SIGKILL)
    for step in range(100, 200):
        run.log_metrics({"loss": float(step)}, step=step)
    report = run.finish("success", timeout=5)
    (entry,) = report.loggers
    assert entry.state.startswith("stopped: ember's delivery process exited"), entry
    assert entry.delivered == 100 and entry.pending == 100
    assert "ember sync" in str(report)

    proc = run_ember(*shlex.split(entry.sync_command)[1:], plugins=trackers_dist, cwd=Path.cwd())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [s for _, s, _ in metrics_of(target)] == list(range(200))


def test_a_hung_tracker_is_given_up_at_the_deadline(tmp_path: Path) -> None:
    run = Run.start(tmp_path, loggers=[FaultyLogger("hang")], policy=POLICY)
    for step in range(20):
        run.log_metrics({"loss": float(step)}, step=step)
    pid = courier_pid(run.dir)
    began = time.monotonic()
    report = run.finish("success", timeout=2)
    assert time.monotonic() - began < 6
    (entry,) = report.loggers
    assert entry.state.startswith(("hung in log_metrics", "timed out")), entry
    assert entry.pending + entry.failed == 20 and not report.complete
    wait_for(lambda: ended(pid), timeout=10, what="the delivery process to be ended")


@pytest.mark.parametrize("process", [False, True])
def test_call_logger_reaches_the_logger_that_delivers(tmp_path: Path, process: bool) -> None:
    """``handle.call_logger(fn)`` runs ``fn(logger)`` where the logger delivers, in order,
    for loggers without an experiment object too (a plugin's hooks use it)."""
    target = tmp_path / "rec.jsonl"
    run = Run.start(
        tmp_path,
        loggers=[RecorderLogger(str(target))],
        policy=DeliveryPolicy(process=process, finalize_timeout=30),
    )
    handle = run.loggers["recorder"]
    with pytest.raises(TypeError, match="no experiment object"):
        handle.call(functools.partial(write_note, text="refused"))
    run.log_metrics({"loss": 1.0}, 1)
    ran_in = handle.call_logger(functools.partial(write_note, text="handed over"))
    run.log_metrics({"loss": 0.5}, 2)
    assert (ran_in.result(timeout=60) == os.getpid()) is not process
    assert run.finish("success").complete
    kinds = [(e["type"], e.get("step", e.get("text"))) for e in read_jsonl(target)]
    assert kinds == [("metric", 1), ("note", "handed over"), ("metric", 2), ("finalize", None)]
    assert handle.logger.received == ([] if process else [e for e in read_jsonl(target)])


def test_a_delivery_process_that_does_not_answer_is_killed_at_the_deadline(
    tmp_path: Path,
) -> None:
    target = tmp_path / "rec.jsonl"
    run = Run.start(tmp_path, loggers=[RecorderLogger(str(target))], policy=POLICY)
    for step in range(50):
        run.log_metrics({"loss": float(step)}, step=step)
    pid = courier_pid(run.dir)
    os.kill(pid, signal.SIGSTOP)  # frozen: it reads nothing and answers nothing
    began = time.monotonic()
    report = run.finish("success", timeout=2)
    assert time.monotonic() - began < 6
    (entry,) = report.loggers
    assert entry.state == "timed out" and not report.complete, entry
    with JournalReader(run.dir) as reader:
        assert reader.cursors()["recorder"]["state"] == "timed out"
    wait_for(lambda: ended(pid), timeout=10, what="the delivery process to be killed")
