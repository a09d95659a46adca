"""The sharpened logger contract, through the real pipeline: capabilities read from the
instance, reattach and rewind apart, warnings only for kinds a run logs, stages of one
run, images, and the escape hatch running on the worker in order with the records."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from ember.hub import Logger
from ember.hub.tracking import (
    Capabilities,
    DeliveryPolicy,
    JournalReader,
    Run,
    TrackingWarning,
    resolve_loggers,
)
from ember.hub.tracking.images import Pixels, encode_png, png_size, save_png
from ember.hub.tracking.runs import sync
from ember_fixture_trackers.loggers import RecorderLogger
from tracking_helpers import read_jsonl, run_ember

POLICY = DeliveryPolicy(backoff=0.01, max_backoff=0.05, max_attempts=3, finalize_timeout=10)


class Switchable(RecorderLogger):
    """Offline or not depending on an option, as MLflow on a local store or a server."""

    name = "switchable"

    def __init__(self, path: str, local: bool) -> None:
        super().__init__(path)
        self.capabilities = Capabilities(metrics=True, reattach=True, offline=local)


class Ordered(Logger):
    """Keeps every call, escape-hatch calls included, in the order they ran."""

    name = "ordered"
    capabilities = Capabilities(metrics=True, text=True, experiment=True, offline=True)

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.finalized: list[str] = []
        self.opened = 0

    def open(self, run: Any) -> str:
        self.opened += 1
        return "ordered"

    @property
    def experiment(self) -> list[Any]:
        return self.events

    def log_metrics(self, records: Any) -> None:
        self.events += [("metric", r.step) for r in records]

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        self.events.append(("text", step))

    def finalize(self, status: str) -> None:
        self.finalized.append(status)


def test_capabilities_are_read_from_the_instance(tmp_path: Path) -> None:
    local = Switchable(str(tmp_path / "local.jsonl"), local=True)
    remote = Switchable(str(tmp_path / "remote.jsonl"), local=False)
    with pytest.warns(TrackingWarning, match="needs a network"):
        run = Run.start(tmp_path, loggers=[local, remote], offline=True, policy=POLICY)
    run.log_metrics({"loss": 1.0}, step=1)
    report = run.finish()
    states = {lg.label: lg.state for lg in report.loggers}
    assert states == {"switchable": "ok", "switchable#2": "deferred (offline)"}
    assert [e["step"] for e in read_jsonl(tmp_path / "local.jsonl") if e["type"] == "metric"] == [1]


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match=r"rewind=True\) needs reattach=True"):
        Capabilities(rewind=True)

    class NoHatch(Logger):
        capabilities = Capabilities(experiment=True)

        def log_metrics(self, records: Any) -> None:
            pass

    with pytest.raises(TypeError, match="declares experiment=True but does not override"):
        resolve_loggers(NoHatch())

    class NoImages(Logger):
        def __init__(self) -> None:
            self.capabilities = Capabilities(images=True)

        def log_metrics(self, records: Any) -> None:
            pass

    with pytest.raises(TypeError, match="declares images=True but does not override log_image"):
        resolve_loggers(NoImages())


def test_unsupported_kinds_are_warned_when_first_logged_once(tmp_path: Path) -> None:
    logger = Ordered()  # takes metrics and text; no images, no artifacts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = Run.start(tmp_path, loggers=[logger], policy=POLICY)
        run.log_metrics({"loss": 1.0}, step=1)
        run.log_text("note", "hi", step=1)
    assert [w for w in caught if w.category is TrackingWarning] == []
    image = tmp_path / "a.png"
    save_png(Pixels(1, 1, 1, b"\x00"), image)
    with pytest.warns(TrackingWarning, match="'ordered' does not support images") as seen:
        run.log_image("a", image, step=1)
        run.log_image("a", image, step=2)
    assert len([w for w in seen if w.category is TrackingWarning]) == 1
    run.finish()


def test_stages_share_one_tracker_run(tmp_path: Path) -> None:
    logger = Ordered()
    run = Run.start(tmp_path, loggers=[logger], policy=POLICY)
    run.begin_stage("fit")
    run.log_metrics({"loss": 1.0}, step=1)
    fit = run.end_stage("fit", "success")
    assert fit.status == "running" and fit.complete and logger.finalized == []
    with JournalReader(run.dir) as reader:
        assert reader.status()[0] == "success"  # `ember runs` shows the stage's outcome
    run.begin_stage("test")
    run.log_metrics({"test_loss": 2.0}, step=1)
    report = run.finish(run.exit_status)
    assert logger.opened == 1 and logger.finalized == ["success"]
    assert logger.events == [("metric", 1), ("metric", 1)] and report.complete


def test_escape_hatch_runs_on_the_worker_between_its_records(tmp_path: Path) -> None:
    logger = Ordered()
    run = Run.start(tmp_path, loggers=[logger], policy=POLICY)
    gate = threading.Event()
    futures = []
    for step in range(1, 40):
        run.log_metrics({"loss": 1.0 / step}, step=step)
        if step % 10 == 0:
            futures.append(
                run.loggers["ordered"].call(
                    lambda events, s=step: (
                        events.append(("call", s, threading.current_thread().name)) or s
                    )
                )
            )
        if step == 25:
            gate.set()
    assert [f.result(timeout=30) for f in futures] == [10, 20, 30]
    failing = run.loggers[0].call(lambda events: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=30)
    run.log_text("after", "the failed call", step=40)
    report = run.finish()
    assert report.complete and logger.finalized == ["success"]
    calls = [(i, e) for i, e in enumerate(logger.events) if e[0] == "call"]
    for i, (_, step, thread) in calls:
        assert thread.startswith("ember-logger-")
        # every record logged before the call came before it, none logged after
        assert logger.events[i - 1] == ("metric", step)
        assert logger.events[i + 1] == ("metric", step + 1)
    assert logger.events[-1] == ("text", 40)  # a failing call does not stop delivery
    with pytest.raises(KeyError, match="no logger 'wandb' in this run"):
        run.loggers["wandb"]


def test_escape_hatch_is_refused_where_there_is_no_experiment(tmp_path: Path) -> None:
    run = Run.start(tmp_path, loggers=["csv"], policy=POLICY)
    with pytest.raises(TypeError, match="has no experiment object"):
        run.loggers["csv"].call(lambda exp: None)
    run.finish()
    ordered = Run.start(tmp_path / "b", loggers=[Ordered()], policy=POLICY)
    handle = ordered.loggers[0]
    ordered.finish()
    with pytest.raises(RuntimeError, match="'ordered' is not running"):
        handle.call(lambda exp: None)


def test_images_are_journaled_delivered_and_replayed(tmp_path: Path) -> None:
    recorder = RecorderLogger(str(tmp_path / "rec.jsonl"))
    run = Run.start(tmp_path, loggers=["csv", recorder], policy=POLICY)
    path = run.dir / "images" / "card.png"
    size = save_png(Pixels(2, 3, 3, bytes(range(18))), path)
    assert size == (3, 2, 3)
    run.log_image("card", path, step=4, metadata={"width": 3, "height": 2, "channels": 3})
    report = run.finish()
    assert report.complete and report.records["image"] == 1
    (image,) = [e for e in read_jsonl(tmp_path / "rec.jsonl") if e["type"] == "image"]
    assert (image["key"], image["step"], image["path"]) == ("card", 4, str(path))
    assert (run.dir / "images.csv").read_text().splitlines() == ["step,key,path", f"4,card,{path}"]
    show = run_ember("runs", "show", str(run.dir), "--json")
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["images"] == [{"key": "card", "step": 4, "path": str(path)}]
    # replayed into another logger later
    replayed = sync(run.dir, {"name": "csv", "save_dir": str(tmp_path / "later")})
    assert replayed.complete and replayed.delivered >= 1
    later = tmp_path / "later" / run.id / "images.csv"
    assert later.read_text().splitlines()[1] == f"4,card,{path}"


def test_png_encoder_and_accepted_inputs(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    chw = np.zeros((3, 4, 5), dtype=np.float32)
    chw[0] = 1.0  # red
    assert save_png(chw, tmp_path / "chw.png") == (5, 4, 3)
    assert save_png(np.full((4, 5), 7, dtype=np.uint8), tmp_path / "gray.png") == (5, 4, 1)
    assert save_png(tmp_path / "gray.png", tmp_path / "copy.png") == (5, 4, 1)
    with pytest.raises(TypeError, match="cannot log a dict as an image"):
        save_png({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="1 to 4 channels"):
        save_png(np.zeros((5, 6, 7)), tmp_path / "x.png")
    not_png = tmp_path / "notes.txt"
    not_png.write_text("hello")
    with pytest.raises(ValueError, match="not a PNG file"):
        png_size(not_png)
    pil = pytest.importorskip("PIL.Image")
    with pil.open(tmp_path / "chw.png") as img:  # a real decoder reads what we encoded
        assert img.size == (5, 4) and img.getpixel((0, 0)) == (255, 0, 0)
    assert encode_png(Pixels(1, 1, 4, b"\x01\x02\x03\x04")).startswith(b"\x89PNG")


def test_a_record_logged_as_the_run_stops_is_still_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the worker found nothing new; then a record was logged and the stop
    requested before the worker looked at the stop flag: it stopped without the record."""
    logger = Ordered()
    original = JournalReader.fetch_batch
    fired = threading.Event()
    holder: dict[str, Any] = {}

    def fetch_batch(self: JournalReader, after_seq: int, kinds: Any, limit: int, **kw: Any) -> Any:
        rows, full = original(self, after_seq, kinds, limit, **kw)
        run = holder.get("run")
        if not rows and run is not None and not fired.is_set():
            fired.set()  # that interleaving, made certain
            run.log_metrics({"late": 1.0}, step=7)
            run._workers[0].request_stop("success")
        return rows, full

    monkeypatch.setattr(JournalReader, "fetch_batch", fetch_batch)
    holder["run"] = run = Run.start(tmp_path, loggers=[logger], policy=POLICY)
    run._workers[0].wake()  # one more look at the journal, now that holder is set
    assert fired.wait(30)
    report = run.finish()
    assert logger.events == [("metric", 7)] and report.complete
