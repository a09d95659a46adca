"""How records are batched on their way to a logger: a worker that caught up waits for
more instead of sending one small batch per round trip, and a logger's ``max_batch``
caps what one ``log_metrics`` call holds (whole flushes only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from ember.hub.tracking import (
    Capabilities,
    DeliveryPolicy,
    JournalReader,
    Logger,
    MetricRecord,
    Run,
)


class Counting(Logger):
    """Notes the size of every ``log_metrics`` call, which takes ``delay`` seconds (a
    tracker's round trip)."""

    capabilities: ClassVar[Capabilities] = Capabilities(metrics=True, offline=True)
    name = "counting"

    def __init__(self, max_batch: object = None, delay: float = 0.0) -> None:
        self.max_batch = max_batch  # type: ignore[assignment]
        self.delay = delay
        self.calls: list[list[MetricRecord]] = []
        self._lock = threading.Lock()

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        time.sleep(self.delay)
        with self._lock:
            self.calls.append(list(records))


def test_a_worker_that_caught_up_lingers_instead_of_sending_a_batch_per_round_trip(
    tmp_path: Path,
) -> None:
    """A run flushing every millisecond for about 1.2 s, to a logger whose calls take
    20 ms: about one call per linger (0.25 s). Before the fix the worker went straight
    back to the journal after each call, where the records of those 20 ms waited, and
    sent about one small batch per round trip."""
    logger = Counting(delay=0.02)
    run = Run.start(tmp_path, loggers=[logger], policy=DeliveryPolicy(finalize_timeout=10))
    steps, deadline = 0, time.monotonic() + 1.2
    while time.monotonic() < deadline:
        run.log_metrics({"loss": 1.0 / (steps + 1), "acc": 0.5}, step=steps)
        steps += 1
        time.sleep(0.001)
    report = run.finish("success")
    assert report.complete, report
    assert sum(len(c) for c in logger.calls) == 2 * steps
    assert steps > 200
    assert len(logger.calls) <= 12, [len(c) for c in logger.calls]


def test_a_flush_still_delivers_at_once(tmp_path: Path) -> None:
    """The linger after a delivery gives way to a flush."""
    logger = Counting()
    run = Run.start(tmp_path, loggers=[logger], policy=DeliveryPolicy(linger=30))
    run.log_metrics({"loss": 1.0}, step=0)
    run.flush(timeout=5)
    run.log_metrics({"loss": 0.5}, step=1)
    started = time.monotonic()
    run.flush(timeout=10)
    assert time.monotonic() - started < 5
    assert [r.step for c in logger.calls for r in c] == [0, 1]
    run.finish("success")


def test_max_batch_caps_each_call_at_whole_flushes(tmp_path: Path) -> None:
    """Flushes of 2 metrics to a logger taking at most 5 per call: calls of 4. A flush
    larger than the cap comes alone and whole."""
    logger = Counting(max_batch=5)
    run = Run.start(tmp_path, loggers=[logger], policy=DeliveryPolicy(linger=30))
    for step in range(20):
        run.log_metrics({"a": float(step), "b": -float(step)}, step=step)
    run.log_metrics({f"m{i}": float(i) for i in range(7)}, step=20)
    run.log_metrics({"a": 1.0, "b": 2.0}, step=21)
    run.flush(timeout=10)
    run.finish("success")
    sizes = [len(c) for c in logger.calls]
    assert sizes == [4] * 10 + [7, 2], sizes
    assert [r.step for c in logger.calls for r in c] == [s for s in range(20) for _ in "ab"] + [
        20
    ] * 7 + [21, 21]


def test_a_backlog_is_delivered_without_lingering_between_batches(tmp_path: Path) -> None:
    """A batch that the limit ended (the next flush would not fit) is followed at once:
    80 records in flushes of 2 to a logger taking 5 per call arrive about one linger
    (1 s) after they were logged. Lingering after every batch of 4 would take 20 s."""
    logger = Counting(max_batch=5)
    run = Run.start(tmp_path, loggers=[logger], policy=DeliveryPolicy(linger=1.0))
    try:
        for step in range(40):
            run.log_metrics({"a": 1.0, "b": 2.0}, step=step)
        started = time.monotonic()
        while sum(len(c) for c in logger.calls) < 80 and time.monotonic() - started < 15:
            time.sleep(0.05)
        took = time.monotonic() - started
        assert sum(len(c) for c in logger.calls) == 80
        assert took < 6, f"the backlog took {took:.1f} s"
    finally:
        run.finish("success")


def test_the_journal_hands_out_at_most_the_limit(tmp_path: Path) -> None:
    """``JournalReader.fetch`` stops before a flush that would pass the limit."""
    run = Run.start(tmp_path, loggers=[])
    for step in range(4):
        run.log_metrics({"a": 1.0, "b": 2.0, "c": 3.0}, step=step)
    run.log_text("note", "hello", step=4)
    run.finish("success")
    with JournalReader(run.journal_path) as reader:
        for packed in (True, False):
            got, full = reader.fetch_batch(0, ["metric"], 7, packed=packed)
            n = sum(len(r.names) if hasattr(r, "names") else 1 for r in got)
            assert n == 6 and full, (packed, got)
            rest, full = reader.fetch_batch(got[-1].seq, ["metric"], 7, packed=packed)
            assert len(rest) == (2 if packed else 6) and not full
            assert len(reader.fetch_batch(0, ["metric"], 2, packed=packed)[0]) == (
                1 if packed else 3
            )


@pytest.mark.parametrize("bad", [0, -3, 2.5, "100", True])
def test_a_bad_max_batch_is_explained_before_anything_is_written(
    tmp_path: Path, bad: object
) -> None:
    with pytest.raises(ValueError, match=r"Counting.max_batch must be a whole number of at least"):
        Run.start(tmp_path, loggers=[Counting(max_batch=bad)])
    assert list(tmp_path.iterdir()) == []
