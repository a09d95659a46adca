"""A flush of several metrics is one packed journal row; everything that reads the
journal still sees one record per metric, each with its own sequence number, and the
cheap paths of the hot loop (cached redacted names, the CSV logger's whole-row fast path)
give the same results as the general ones."""

from __future__ import annotations

import csv
import math
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from ember.hub.tracking import Capabilities, JournalReader, Logger, MetricRecord, Run
from ember.hub.tracking.csv_logger import CSVLogger
from ember.hub.tracking.journal import PACKED, PAGE_SIZE, Journal
from ember.hub.tracking.logger import RunInfo

ALL_KINDS = ("hparams", "metric", "text", "image", "artifact")


class Keeper(Logger):
    """Keeps every metric record it receives, in order."""

    name: ClassVar[str] = "keeper"
    capabilities: ClassVar[Capabilities] = Capabilities(metrics=True, text=True, offline=True)

    def __init__(self) -> None:
        self.records: list[MetricRecord] = []

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        self.records.extend(records)

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        pass


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_flush_is_one_row_and_reads_back_as_one_record_per_metric(tmp_path: Path) -> None:
    run = Run.start(tmp_path, [])
    run.log_metrics({"a": 1.0, "b": float("nan"), "c": float("-inf")}, step=0)
    run.log_text("note", "between", step=0)
    run.log_metrics({"a": 2.0, "b": 3.0, "c": 4.0}, step=1)
    run.log_metrics({"d": 5.0, "a": 6.0}, step=2)  # another set of names
    run.log_records([MetricRecord("e", 7.0, 2, time.time())])  # a plain row
    run.finish()

    with sqlite3.connect(run.journal_path) as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM records ORDER BY seq")]
        # small pages: each flush commits (and later checkpoints) less
        assert db.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)
    assert kinds == [PACKED, "text", PACKED, PACKED, "metric"]

    with JournalReader(run.dir) as reader:
        fetched = reader.fetch_batch(0, ALL_KINDS, 1000)[0]
        metrics = [r for r in fetched if isinstance(r, MetricRecord)]
        assert [(r.name, r.step) for r in metrics] == [
            ("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1), ("d", 2), ("a", 2),
            ("e", 2),
        ]  # fmt: skip
        assert math.isnan(metrics[1].value) and metrics[2].value == float("-inf")
        # every record its own sequence number, in delivery order, none shared
        seqs = [r.seq for r in fetched]
        assert seqs == sorted(set(seqs)) and len(seqs) == 10
        assert reader.max_seq() == seqs[-1]
        # a fetch after any record's seq continues from the next row
        assert [r.seq for r in reader.fetch_batch(seqs[3], ALL_KINDS, 1000)[0]] == seqs[4:]

        assert reader.counts_by_kind() == {"metric": 9, "text": 1}
        assert reader.count(("metric",)) == 9
        assert reader.count(("metric",), after_seq=seqs[3], upto_seq=seqs[6]) == 3
        assert reader.metric_names() == ["a", "b", "c", "d", "e"]
        assert [(s, v) for s, v, _ in reader.metric_series("a")] == [(0, 1.0), (1, 2.0), (2, 6.0)]
        assert reader.last_metrics() == {
            "b": (1, 3.0), "c": (1, 4.0), "d": (2, 5.0), "a": (2, 6.0), "e": (2, 7.0)
        }  # fmt: skip
        summary = reader.metric_summary()
        assert summary["c"] == {"last": 4.0, "step": 1, "count": 2, "min": 4.0, "max": 4.0}
        assert summary["a"]["min"] == 1.0 and summary["a"]["max"] == 6.0
        rows = reader.records("metric")
        assert [(r.name, r.step, r.seq) for r in rows] == [(r.name, r.step, r.seq) for r in metrics]


def test_a_fetch_stops_at_its_limit_at_a_whole_row(tmp_path: Path) -> None:
    run = Run.start(tmp_path, [])
    for step in range(10):
        run.log_metrics({f"m{i}": float(i) for i in range(7)}, step=step)
    run.finish()
    with JournalReader(run.dir) as reader:
        batch = reader.fetch_batch(0, ("metric",), 10)[0]
        assert len(batch) == 7  # one whole row: never half a flush, never past the limit
        assert len(reader.fetch_batch(0, ("metric",), 3)[0]) == 7  # a first row larger comes whole
        rest = reader.fetch_batch(batch[-1].seq, ("metric",), 1000)[0]
        assert len(rest) == 63 and rest[0].seq == batch[-1].seq + 1


def test_loggers_receive_every_packed_metric_once(tmp_path: Path) -> None:
    keeper = Keeper()
    run = Run.start(tmp_path, [keeper])
    for step in range(300):
        run.log_metrics({f"m{i}": step + i / 100 for i in range(50)}, step=step)
    report = run.finish()
    assert report.complete
    assert [(r.name, r.step, r.value) for r in keeper.records] == [
        (f"m{i}", step, step + i / 100) for step in range(300) for i in range(50)
    ]
    assert len({r.seq for r in keeper.records}) == 300 * 50


def test_resume_reuses_the_name_sets_and_supersedes_packed_rows(tmp_path: Path) -> None:
    first = Run.start(tmp_path, [])
    for step in range(1, 7):
        first.log_metrics({"loss": 1.0 / step, "acc": step / 10}, step=step)
    first.finish()
    again = Run.start(tmp_path, [], resume=first.state_dict(), resume_step=3)
    for step in range(4, 6):
        again.log_metrics({"loss": -float(step), "acc": 0.0}, step=step)
    again.finish()
    with sqlite3.connect(again.journal_path) as db:
        (sets,) = db.execute("SELECT COUNT(*) FROM metric_names").fetchone()
    assert sets == 1  # the reopened journal knew the set of names
    with JournalReader(again.dir) as reader:
        assert [(s, v) for s, v, _ in reader.metric_series("loss")] == [
            (1, 1.0), (2, 0.5), (3, 1 / 3), (4, -4.0), (5, -5.0)
        ]  # fmt: skip
        assert len(reader.metric_series("loss", live=False)) == 8
        assert reader.count(("metric",)) == 10
        assert reader.count(("metric",), live=False) == 16


def test_a_journal_reopened_by_a_second_writer_shares_name_ids(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, "r", "r", time.time())
    journal.begin_segment(None, 1, "host")
    journal.append_step(("x", "y"), [1.0, 2.0], 0, time.time())
    journal.close()
    again = Journal.open(tmp_path)
    again.append_step(("x", "y"), [3.0, 4.0], 1, time.time())
    again.append_step(("y", "x"), [5.0, 6.0], 2, time.time())  # another order: another set
    again.close()
    with JournalReader(tmp_path) as reader:
        assert [(s, v) for s, v, _ in reader.metric_series("x")] == [(0, 1.0), (1, 3.0), (2, 6.0)]
    with sqlite3.connect(tmp_path / "journal.db") as db:
        assert db.execute("SELECT COUNT(*) FROM metric_names").fetchone() == (2,)


def test_a_secret_learnt_later_is_redacted_from_cached_metric_names(tmp_path: Path) -> None:
    run = Run.start(tmp_path, [])
    run.log_metrics({"loss/hunter2-secret": 1.0}, step=0)  # not a secret yet
    run.log_hyperparams({"api_key": "hunter2-secret"})  # now it is
    run.log_metrics({"loss/hunter2-secret": 2.0}, step=1)
    run.finish()
    with JournalReader(run.dir) as reader:
        assert reader.metric_names() == ["loss/hunter2-secret", "loss/***"]


def test_csv_rows_with_names_in_another_order_land_in_their_columns(tmp_path: Path) -> None:
    logger = CSVLogger()
    logger.open(RunInfo(id="r", name="r", dir=str(tmp_path), started_at=time.time()))
    now = time.time()
    logger.log_metrics([MetricRecord("a", 1.0, 0, now, 1), MetricRecord("b", 2.0, 0, now, 2)])
    logger.log_metrics([MetricRecord("b", 4.0, 1, now, 3), MetricRecord("a", 3.0, 1, now, 4)])
    logger.log_metrics([MetricRecord("b", 6.0, 2, now, 5)])
    logger.log_metrics([MetricRecord("a", 5.0, 3, now, 6), MetricRecord("b", 7.0, 3, now, 7)])
    assert csv_rows(tmp_path / "metrics.csv") == [
        {"step": "0", "a": "1.0", "b": "2.0"},
        {"step": "1", "a": "3.0", "b": "4.0"},
        {"step": "2", "a": "", "b": "6.0"},
        {"step": "3", "a": "5.0", "b": "7.0"},
    ]


def test_any_number_is_recorded_and_a_bad_flush_records_nothing(tmp_path: Path) -> None:
    """The values are packed straight into the spool: every kind of number a user logs
    (ints, bools, fractions, decimals, numpy scalars) is stored as a float, and a flush
    that is not all numbers is refused whole, with the run still usable."""
    from decimal import Decimal
    from fractions import Fraction

    np = pytest.importorskip("numpy")
    run = Run.start(tmp_path, [])
    numbers = {"i": 3, "b": True, "f": Fraction(1, 4), "d": Decimal("2.5"), "n": np.float32(0.5)}
    run.log_metrics(numbers, step=0)
    for bad in ({"i": 1, "s": "high"}, {"big": 10**400}, {"none": None}):
        with pytest.raises(TypeError, match="mapping of metric name to number"):
            run.log_metrics(bad, step=1)
    with pytest.raises(TypeError, match="int step"):
        run.log_metrics({"i": 1.0}, step="one")  # type: ignore[arg-type]
    run.log_metrics({"i": 4.0, "s": 5.0}, step=1)
    run.finish()

    with JournalReader(run.dir) as reader:
        rows = reader.fetch_batch(0, ["metric"], 100)[0]
    got = [(r.seq, r.name, r.step, r.value) for r in rows]
    assert got == [
        (1, "i", 0, 3.0),
        (2, "b", 0, 1.0),
        (3, "f", 0, 0.25),
        (4, "d", 0, 2.5),
        (5, "n", 0, 0.5),
        (6, "i", 1, 4.0),  # the refused flushes took no sequence numbers
        (7, "s", 1, 5.0),
    ]
