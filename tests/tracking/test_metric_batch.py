"""A flush is delivered to loggers as part of a :class:`MetricBatch`: the same records, in
the same order, as one record per metric; the CSV logger reads it a flush at a time
(``by_step``) and writes the same file as from plain records."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ember.hub.tracking import Capabilities, JournalReader, Logger, MetricRecord, Run
from ember.hub.tracking.csv_logger import CSVLogger
from ember.hub.tracking.logger import MetricBatch, PackedStep, RunInfo

ALL_KINDS = ("hparams", "metric", "text", "image", "artifact")


class Batches(Logger):
    """Keeps the batch objects it is handed."""

    name: ClassVar[str] = "batches"
    capabilities: ClassVar[Capabilities] = Capabilities(metrics=True, text=True, offline=True)

    def __init__(self) -> None:
        self.batches: list[Sequence[MetricRecord]] = []
        self.texts: list[str] = []

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        self.batches.append(records)

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        self.texts.append(text)


def log_mixed(run: Run) -> None:
    run.log_metrics({"a": 1.0, "b": float("nan"), "c": float("-inf")}, step=0)
    run.log_text("note", "between", step=0)
    run.log_metrics({"a": 2.0, "b": 3.0, "c": 4.0}, step=1)
    run.log_metrics({"d": 5.0, "a": 6.0}, step=2)
    run.log_records([MetricRecord("e", 7.0, 2, time.time())])  # a plain row
    run.log_metrics({"a": 8.0, "b": 9.0, "c": 10.0}, step=3)


def key(r: MetricRecord) -> tuple[object, ...]:
    return (r.name, "nan" if math.isnan(r.value) else r.value, r.step, r.wall_time, r.seq)


def test_a_packed_fetch_holds_the_same_records_as_a_plain_one(tmp_path: Path) -> None:
    run = Run.start(tmp_path, [])
    log_mixed(run)
    run.finish()
    with JournalReader(run.dir) as reader:
        plain = reader.fetch_batch(0, ALL_KINDS, 1000)[0]
        packed = reader.fetch_batch(0, ALL_KINDS, 1000, packed=True)[0]
        assert [type(p).__name__ for p in packed] == [
            "PackedStep", "Row", "PackedStep", "PackedStep", "MetricRecord", "PackedStep"
        ]  # fmt: skip
        # the limit counts records, not rows: a second flush of three would make six
        assert len(reader.fetch_batch(0, ("metric",), 5, packed=True)[0]) == 1
        assert len(reader.fetch_batch(0, ("metric",), 6, packed=True)[0]) == 2

    metrics = [r for r in plain if isinstance(r, MetricRecord)]
    parts = [p for p in packed if isinstance(p, (MetricRecord, PackedStep))]
    batch = MetricBatch(parts)
    assert len(batch) == len(metrics) == 12
    assert [key(r) for r in batch] == [key(r) for r in metrics]
    assert key(batch[4]) == key(metrics[4]) and [key(r) for r in batch[-2:]] == [
        key(r) for r in metrics[-2:]
    ]
    assert [key(r) for r in batch] == [key(r) for r in metrics]  # again, from the list
    groups = [(s, tuple(n), len(v)) for s, n, v in batch.by_step()]
    assert groups == [
        (0, ("a", "b", "c"), 3), (1, ("a", "b", "c"), 3), (2, ("d", "a"), 2), (2, ("e",), 1),
        (3, ("a", "b", "c"), 3),
    ]  # fmt: skip


def test_loggers_get_every_record_once_in_order_with_texts_between(tmp_path: Path) -> None:
    logger = Batches()
    run = Run.start(tmp_path, [logger])
    log_mixed(run)
    run.finish()
    with JournalReader(run.dir) as reader:
        expected = [
            r for r in reader.fetch_batch(0, ALL_KINDS, 1000)[0] if isinstance(r, MetricRecord)
        ]
    got = [r for b in logger.batches for r in b]
    assert [key(r) for r in got] == [key(r) for r in expected]
    assert logger.texts == ["between"]
    # the text splits the metrics: those logged before it arrive in an earlier call
    first_call = [r.step for r in logger.batches[0]]
    assert first_call == [0, 0, 0]
    assert all(isinstance(b, MetricBatch) for b in logger.batches)


def test_the_csv_logger_writes_the_same_file_from_a_batch_and_from_records(
    tmp_path: Path,
) -> None:
    source = Run.start(tmp_path / "src", [])
    log_mixed(source)
    source.log_metrics({"a": 11.0}, step=3)  # more for the step written last
    source.finish()
    with JournalReader(source.dir) as reader:
        packed = [
            p
            for p in reader.fetch_batch(0, ("metric",), 1000, packed=True)[0]
            if isinstance(p, (MetricRecord, PackedStep))
        ]
    outputs = []
    for name, batches in (
        ("plain", [list(MetricBatch(packed[:2])), list(MetricBatch(packed[2:]))]),
        ("batch", [MetricBatch(packed[:2]), MetricBatch(packed[2:])]),
    ):
        out = tmp_path / name
        out.mkdir()
        logger = CSVLogger()
        logger.open(RunInfo(id=name, name=name, dir=str(out), started_at=0.0))
        for records in batches:
            logger.log_metrics(records)
        outputs.append((out / "metrics.csv").read_text())
    assert outputs[0] == outputs[1]
    assert outputs[1].splitlines() == [
        "step,a,b,c,d,e",
        "0,1.0,nan,-inf,,",
        "1,2.0,3.0,4.0,,",
        "2,6.0,,,5.0,7.0",
        "3,11.0,9.0,10.0,,",
    ]


def test_whole_rows_appended_from_a_batch_then_amended_like_plain_records(
    tmp_path: Path,
) -> None:
    """The CSV logger's fast path (every column, new steps) leaves the file and its own
    state as the general path does: a later metric of the last step rewrites that row."""
    source = Run.start(tmp_path / "src", [])
    source.log_metrics({"a": 1.0, "b": 2.0}, step=0)
    for step in range(1, 4):
        source.log_metrics({"a": step + 0.5, "b": float("nan")}, step=step)
    source.log_metrics({"b": 9.0}, step=3)  # more for the step written last
    source.log_metrics({"a": 4.0, "b": 5.0}, step=4)
    source.log_metrics({"a": 0.0, "b": 0.0}, step=2)  # an older step: a rewrite
    source.finish()
    with JournalReader(source.dir) as reader:
        packed = [
            p
            for p in reader.fetch_batch(0, ("metric",), 1000, packed=True)[0]
            if isinstance(p, (MetricRecord, PackedStep))
        ]
    cuts = [(0, 1), (1, 4), (4, 5), (5, 6), (6, 7)]
    outputs = []
    for name in ("plain", "batch"):
        out = tmp_path / name
        out.mkdir()
        logger = CSVLogger()
        logger.open(RunInfo(id=name, name=name, dir=str(out), started_at=0.0))
        for i, j in cuts:
            batch = MetricBatch(packed[i:j])
            logger.log_metrics(list(batch) if name == "plain" else batch)
        outputs.append((out / "metrics.csv").read_text())
    assert outputs[0] == outputs[1]
    assert outputs[1].splitlines() == [
        "step,a,b",
        "0,1.0,2.0",
        "1,1.5,nan",
        "2,0.0,0.0",
        "3,3.5,9.0",
        "4,4.0,5.0",
    ]


def test_the_csv_logger_takes_an_empty_batch_of_either_kind(tmp_path: Path) -> None:
    """Regression: an empty list of records raised IndexError (steps[0] of no steps)."""
    logger = CSVLogger()
    logger.open(RunInfo(id="e", name="e", dir=str(tmp_path), started_at=0.0))
    logger.log_metrics([MetricRecord("a", 1.0, 0, 0.0)])
    before = (tmp_path / "metrics.csv").read_text()
    logger.log_metrics([])
    logger.log_metrics(MetricBatch([]))
    assert (tmp_path / "metrics.csv").read_text() == before == "step,a\n0,1.0\n"
