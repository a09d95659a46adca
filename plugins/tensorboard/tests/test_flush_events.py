"""The metrics of one flush are written as one TensorBoard event holding a value per
metric (fewer events to build and write on a run that logs many metrics every step);
TensorBoard's reader still sees every value, and a retried batch writes nothing twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ember.hub.testing import make_run_info
from ember.hub.tracking import MetricRecord
from ember_tensorboard.logger import TensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2


def scalar_events(log_dir: Path) -> list[tuple[int, list[str]]]:
    """(step, tags) of every event holding scalars, in file order."""
    out = []
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        # the raw records: the plain loader splits an event into one per value
        for raw in event_file_loader.RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(raw)
            tags = [v.tag for v in event.summary.value if v.HasField("simple_value")]
            if tags:
                out.append((event.step, tags))
    return out


def test_one_event_per_flush_and_every_value_read_back(tmp_path: Path) -> None:
    logger = TensorBoardLogger(save_dir=tmp_path, default_hp_metric=False)
    log_dir = Path(logger.open(make_run_info(tmp_path)))
    now = time.time()
    seq = iter(range(1, 1000))
    records = [
        MetricRecord(f"m{i}", step + i / 10, step, now + step, next(seq))
        for step in range(3)
        for i in range(4)
    ]
    logger.log_metrics(records[:6])  # a batch may end in the middle of a step
    logger.log_metrics(records[:10])  # at-least-once: a retry repeats records
    logger.log_metrics(records[10:])
    logger.finalize("success")

    assert scalar_events(log_dir) == [
        (0, ["m0", "m1", "m2", "m3"]),
        (1, ["m0", "m1"]),
        (1, ["m2", "m3"]),
        (2, ["m0", "m1"]),
        (2, ["m2", "m3"]),
    ]
    acc = ea.EventAccumulator(str(log_dir), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    back = [(t, e.step, e.value) for t in acc.Tags()[ea.SCALARS] for e in acc.Scalars(t)]
    # TensorBoard keeps float32
    assert sorted(back) == sorted((r.name, r.step, pytest.approx(r.value)) for r in records)


def test_a_failed_write_is_completed_by_the_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event file stays open and writes once per batch: a write that fails (a full
    disk) or writes part of the bytes leaves the rest for the next flush, so the retried
    batch ends with every value once and no torn record."""
    import ember_tensorboard.logger as tb

    logger = TensorBoardLogger(save_dir=tmp_path, default_hp_metric=False)
    log_dir = Path(logger.open(make_run_info(tmp_path)))
    real_write = tb.os.write
    calls = {"n": 0}

    def flaky_write(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:7]))  # a short write: part of a header
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(tb.os, "write", flaky_write)
    now = time.time()
    records = [MetricRecord("loss", 1.0 / (s + 1), s, now, s + 1) for s in range(5)]
    with pytest.raises(OSError, match="No space"):
        logger.log_metrics(records)
    logger.log_metrics(records)  # ember retries the batch after a failure
    logger.finalize("success")

    assert scalar_events(log_dir) == [(s, ["loss"]) for s in range(5)]
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("size", [0, 1, 7, 8, 50, 1000, 65537])
def test_the_fast_record_checksum_is_tensorboards(size: int) -> None:
    """The C CRC-32C the logger frames records with gives TensorBoard's own masked value
    (TensorBoard's reader checks both checksums of every record)."""
    import random

    from ember_tensorboard.logger import masked_crc32c
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference

    data = random.Random(size).randbytes(size)
    assert masked_crc32c(data) == reference(data)


@pytest.mark.parametrize("step", [0, 1, 300, 2**40, -1])
def test_a_scalar_event_encodes_as_protobuf_does(step: int) -> None:
    """The logger encodes scalar events itself; protobuf parses them into what its own
    objects would hold, float32 rounding, non-finite values and overflow included."""
    import math

    from ember_tensorboard.logger import scalar_event
    from tensorboard.compat.proto import summary_pb2

    values = [0.1, float("nan"), float("inf"), -float("inf"), 1e40, -1e40, 3.4e38, -0.0, 7.0]
    records = [
        MetricRecord(f"train/m{i}/ü" + "x" * (i * 40), v, step, 12.5, i + 1)
        for i, v in enumerate(values)
    ]
    event = event_pb2.Event.FromString(scalar_event(1234.5678, step, records))
    expected = event_pb2.Event(
        wall_time=1234.5678,
        step=step,
        summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=r.name, simple_value=r.value) for r in records]
        ),
    )
    assert (event.wall_time, event.step) == (expected.wall_time, expected.step)
    got = [(v.tag, v.simple_value) for v in event.summary.value]
    want = [(v.tag, v.simple_value) for v in expected.summary.value]
    assert [t for t, _ in got] == [t for t, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
