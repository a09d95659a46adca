"""The TensorBoard logger: ember's records as TensorBoard event files.

Written with TensorBoard's own record format (``tensorboard.summary.writer``'s
``RecordWriter``) and protocol buffers, so the plugin needs neither torch nor
TensorFlow. The event file stays open and every delivered batch is written and flushed
with one system call before the call returns: ember moves its cursor when the call
returns, so a crash never loses a record ember counts as delivered. (TensorBoard's own
``EventFileWriter`` hands each event to a thread that reopens the file per record: in a
process that trains, that thread's work competes with the training step for the GIL.)

Where things go, under ``<save_dir>/<name>/<version>/`` (see :class:`TensorBoardLogger`):

* metrics: scalars, tag = metric name, at the record's step;
* texts: the text plugin, tag = key;
* images: image summaries (the PNG bytes ember stored), tag = key;
* hyperparameters: the HPARAMS plugin (flattened with ``/``), plus ``hp_metric``;
* artifacts: TensorBoard has no artifact store; each becomes a text entry
  ``artifacts/<kind>`` holding the file's path (a link, not a copy);
* the final status: the HPARAMS session's end status.
"""

from __future__ import annotations

import array
import functools
import itertools
import os
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any

from ember.hub.tracking import Capabilities, Logger, MetricRecord, RunInfo, flatten_params

#: the records of one flush share both: they become one event
_STEP_AND_TIME = attrgetter("step", "wall_time")

#: ember's statuses as the HPARAMS plugin's session statuses (api_pb2.Status values)
STATUS_CODES = {"success": 1, "failed": 2, "interrupted": 0}
HP_METRIC = "hp_metric"


#: tells apart the event files one process opens
_FILE_IDS = itertools.count()


class EventFile:
    """One TensorBoard event file, kept open. Events are framed as TFRecords in memory
    and reach the file on :meth:`flush`, in as few writes as the system allows; bytes a
    failed write left behind go out with the next flush, so a retried delivery loses
    nothing."""

    def __init__(self, log_dir: Path) -> None:
        from tensorboard.compat.proto import event_pb2

        # TensorBoard's own naming (the reader keys on "tfevents"); the suffix keeps it
        # apart from a torch SummaryWriter's file opened in the same second
        stamp, host, pid = int(time.time()), socket.gethostname(), os.getpid()
        name = f"events.out.tfevents.{stamp:010d}.{host}.{pid}.{next(_FILE_IDS)}.ember"
        self.path = log_dir / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self._pending = bytearray()
        self.add_event(
            event_pb2.Event(
                wall_time=time.time(),
                file_version="brain.Event:2",
                source_metadata=event_pb2.SourceMetadata(writer="ember_tensorboard"),
            )
        )
        self.flush()

    def add_event(self, event: Any) -> None:
        """Frame ``event`` (an ``event_pb2.Event``)."""
        self.add_record(event.SerializeToString())

    def add_record(self, data: bytes) -> None:
        """Frame a serialized event: length, its CRC, data, the data's CRC."""
        self._pending += _record_header(len(data))
        self._pending += data
        self._pending += struct.pack("<I", masked_crc32c(data))

    def flush(self) -> None:
        """Write what :meth:`add_event` framed."""
        if self._fd is None:
            raise RuntimeError(f"the event file {self.path} is closed")
        while self._pending:
            written = os.write(self._fd, self._pending)
            del self._pending[:written]

    def close(self) -> None:
        """Flush, then close the file."""
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = None


def scalar_event(wall_time: float, step: int, records: Sequence[MetricRecord]) -> bytes:
    """The serialized ``Event`` (``wall_time``, ``step``, a ``Summary`` with one
    ``simple_value`` per record), encoded here rather than through protobuf objects: the
    protobuf path built three Python objects per scalar and took most of this logger's
    time on a run that logs every step. Values are rounded to float32 as protobuf does
    (past float32's range: infinity)."""
    floats = array.array("f", [r.value for r in records]).tobytes()
    summary = b"".join(
        _value_head(r.name) + floats[4 * i : 4 * i + 4] for i, r in enumerate(records)
    )
    return b"".join(
        (
            b"\x09",  # field 1, wall_time: double
            _F64.pack(wall_time),
            b"\x10",  # field 2, step: int64 (varint; a negative one as its two's complement)
            _varint(step & 0xFFFF_FFFF_FFFF_FFFF),
            b"\x2a",  # field 5, summary: message
            _varint(len(summary)),
            summary,
        )
    )


_F64 = struct.Struct("<d")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@functools.lru_cache(maxsize=65536)
def _value_head(tag: str) -> bytes:
    """A ``Summary.Value`` holding ``tag`` and a float, up to the float's 4 bytes: field 1
    of the summary (length-delimited), then the value's tag (field 1, string) and the key
    of ``simple_value`` (field 2, fixed32)."""
    name = tag.encode("utf-8")
    value = b"\x0a" + _varint(len(name)) + name + b"\x15"
    return b"\x0a" + _varint(len(value) + 4) + value


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C a TFRecord carries (TensorFlow's ``crc32c::Mask``), computed by
    ``google-crc32c`` in C: TensorBoard's own is pure Python, and took half of this
    logger's time on a run that logs every step."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@functools.lru_cache(maxsize=4096)
def _record_header(length: int) -> bytes:
    """A TFRecord's header for data of ``length`` bytes (the same for every scalar event
    of one shape, so framed once)."""
    header = struct.pack("<Q", length)
    return header + struct.pack("<I", masked_crc32c(header))


class TensorBoardLogger(Logger):
    """Writes ember's records as TensorBoard event files.

    :param save_dir: root folder; the run's events go to ``save_dir/<name>/<version>``.
        Default: ``<run dir>/tensorboard`` (plus ``name`` and ``version`` when given).
    :param name: experiment sub-folder (default ``"ember"`` under ``save_dir``).
    :param version: run sub-folder (default under ``save_dir``: the ember run id, which
        stays the same across resumes).
    :param flush_secs: the periodic flush of :attr:`experiment`'s ``SummaryWriter``;
        ember's own events are flushed with every delivered batch.
    :param log_graph: write the module's graph when ``fit`` starts (the module needs an
        ``example_input_array``).
    :param default_hp_metric: log ``hp_metric = -1`` with the hyperparameters and declare
        it in the HPARAMS experiment, so the run is listed there (Lightning's default).
    """

    name = "tensorboard"
    capabilities = Capabilities(
        hyperparams=True,
        metrics=True,
        text=True,
        images=True,
        artifacts=True,  # as text links: TensorBoard has no artifact store
        reattach=True,
        rewind=True,
        offline=True,
        experiment=True,
    )

    def __init__(
        self,
        save_dir: str | os.PathLike[str] | None = None,
        experiment_name: str | None = None,
        version: str | None = None,
        flush_secs: float = 120.0,
        log_graph: bool = False,
        default_hp_metric: bool = True,
    ) -> None:
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.experiment_name = experiment_name
        self.version = version
        self.flush_secs = float(flush_secs)
        self.log_graph = bool(log_graph)
        self.default_hp_metric = bool(default_hp_metric)
        self.log_dir: Path | None = None
        self._writer: EventFile | None = None
        self._torch_writer: Any = None
        self._max_seq = 0
        #: (tag, step) of every scalar, text and image the folder held when this logger
        #: re-attached: a record delivered again after a crash is found here and skipped
        self._held: set[tuple[str, int]] = set()
        #: texts and images this object wrote, (tag, step, content hash): a retried call
        #: writes nothing twice
        self._written: set[tuple[str, int, int]] = set()
        self._hparams_logged = False
        self._pending_graph: bytes | None = None

    # ------------------------------------------------------------------ contract
    def destination(self) -> str:
        """The events folder: ``<run dir>/tensorboard[/name][/version]`` by default, else
        ``<save_dir>/<name>/<version>`` resolved (``<run id>`` when no version is given)."""
        if self.save_dir is None:
            parts = [p for p in (self.experiment_name, self.version) if p]
            return "/".join(["<run dir>", "tensorboard", *parts])
        folder = os.path.realpath(self.save_dir / (self.experiment_name or "ember"))
        return f"{folder}/{self.version or '<run id>'}"

    def open(self, run: RunInfo) -> str:
        """Create the run's folder, or re-attach to it (``run.resume_ref``), purging the
        steps past ``run.resume_step`` in TensorBoard's own way."""
        if run.resumed and run.resume_ref:
            self.log_dir = Path(run.resume_ref)
        else:
            self.log_dir = self._folder(run)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = EventFile(self.log_dir)
        if run.resumed:
            if run.resume_step is not None:
                self._purge_after(run.resume_step)
            self._held = _held_records(self.log_dir)
        return str(self.log_dir)

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Write the HPARAMS session (flattened values) and, by default, ``hp_metric``."""
        from tensorboard.plugins.hparams import api_pb2

        flat = {k: _hparam_value(v) for k, v in flatten_params(params).items()}
        metrics = [HP_METRIC] if self.default_hp_metric else []
        experiment = api_pb2.Experiment(
            hparam_infos=[api_pb2.HParamInfo(name=k) for k in flat],
            metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics],
        )
        self._write_hparams("experiment", experiment)
        info = _session_start(flat)
        self._write_hparams("session_start_info", info)
        if self.default_hp_metric and not self._hparams_logged and (HP_METRIC, 0) not in self._held:
            self._scalar(HP_METRIC, -1.0, 0, time.time())  # Lightning's placeholder value
        self._hparams_logged = True
        self._flush()

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        """The scalars of consecutive records of one step (a flush) as one event, one
        summary value each; records already written are skipped."""
        writer = self._writer
        if writer is None:
            raise RuntimeError("TensorBoardLogger: open(run) must be called before logging")
        held = self._held
        for (step, wall_time), group in groupby(records, _STEP_AND_TIME):
            batch = list(group)
            max_seq = self._max_seq
            # skipped: a retried batch (this object wrote it), or delivered before a crash
            # (found in the folder on re-attach)
            fresh = [
                r
                for r in batch
                if not (r.seq and r.seq <= max_seq) and not (held and (r.name, r.step) in held)
            ]
            if fresh:
                writer.add_record(scalar_event(wall_time, step or 0, fresh))
            # a retry after a failure further on skips what was written
            self._max_seq = max(max_seq, max(r.seq for r in batch))
        self._flush()

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        """A text-plugin summary under ``key``."""
        if self._seen(key, step, text.encode("utf-8")):
            return
        self._text(key, text, step)
        self._flush()
        self._written.add((key, step or 0, hash(text.encode("utf-8"))))

    def log_image(
        self, key: str, path: str, *, step: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """An image summary of the PNG at ``path`` under ``key``."""
        from tensorboard.compat.proto import summary_pb2

        data = Path(path).read_bytes()
        if self._seen(key, step, data):
            return
        width, height = _png_size(data)
        image = summary_pb2.Summary.Image(
            height=height,
            width=width,
            colorspace=int(metadata.get("channels") or 3),
            encoded_image_string=data,
        )
        self._event(summary_pb2.Summary.Value(tag=key, image=image), step, time.time())
        self._flush()
        self._written.add((key, step or 0, hash(data)))

    def log_artifact(
        self,
        path: str,
        kind: str,
        *,
        name: str,
        step: int | None,
        metadata: Mapping[str, Any],
    ) -> None:
        """A text entry ``artifacts/<kind>``: ``name: path`` (TensorBoard stores no files)."""
        self.log_text(f"artifacts/{kind}", f"{name}: {path}", step=step)

    @property
    def experiment(self) -> Any:
        """A ``torch.utils.tensorboard.SummaryWriter`` on this run's folder (torch is
        imported on first use), for what ember does not model: histograms, figures,
        embeddings. Use it through ``trainer.loggers["tensorboard"].call(fn)``."""
        if self.log_dir is None:
            raise RuntimeError("the TensorBoard logger is not open yet")
        if self._torch_writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # a torch-free process, e.g. `ember sync`
                raise RuntimeError(
                    f"the TensorBoard experiment object is torch's SummaryWriter: {exc}"
                ) from exc
            self._torch_writer = SummaryWriter(str(self.log_dir), flush_secs=self.flush_secs)
        return self._torch_writer

    def finalize(self, status: str) -> None:
        """End the HPARAMS session with ``status``; flush and close the event files."""
        from tensorboard.plugins.hparams import plugin_data_pb2

        if self._writer is None:
            return
        if self._hparams_logged:
            end = plugin_data_pb2.SessionEndInfo(
                status=STATUS_CODES.get(status, 0), end_time_secs=time.time()
            )
            self._write_hparams("session_end_info", end)
        self._flush()
        if self._torch_writer is not None:
            self._torch_writer.close()
            self._torch_writer = None
        self._writer.close()
        self._writer = None

    # ------------------------------------------------------------------ graph
    def queue_graph(self, graph_def: bytes) -> None:
        """Hold the module's serialized graph (handed over by the plugin's fit-start hook
        through ``LoggerHandle.call_logger``), to write with the next delivery."""
        self._pending_graph = graph_def

    def _write_graph(self) -> None:
        from tensorboard.compat.proto import event_pb2

        graph, self._pending_graph = self._pending_graph, None
        if graph is not None:
            self._writer.add_event(event_pb2.Event(wall_time=time.time(), graph_def=graph))

    # ------------------------------------------------------------------ writing
    def _folder(self, run: RunInfo) -> Path:
        if self.save_dir is None:  # the run directory is this run's already
            parts = [p for p in (self.experiment_name, self.version) if p]
            return Path(run.dir, "tensorboard", *parts)
        return self.save_dir / (self.experiment_name or "ember") / (self.version or run.id)

    def _event(self, value: Any, step: int | None, wall_time: float) -> None:
        if self._writer is None:
            raise RuntimeError("TensorBoardLogger: open(run) must be called before logging")
        self._write_values([value], step, wall_time)

    def _write_values(self, values: list[Any], step: int | None, wall_time: float) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        event = event_pb2.Event(
            wall_time=wall_time, step=step or 0, summary=summary_pb2.Summary(value=values)
        )
        self._writer.add_event(event)

    def _scalar(self, tag: str, value: float, step: int, wall_time: float) -> None:
        from tensorboard.compat.proto import summary_pb2

        self._event(summary_pb2.Summary.Value(tag=tag, simple_value=value), step, wall_time)

    def _text(self, tag: str, text: str, step: int | None) -> None:
        from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            string_val=[text.encode("utf-8")],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]
            ),
        )
        meta = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
        )
        value = summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=tensor)
        self._event(value, step, time.time())

    def _write_hparams(self, kind: str, message: Any) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.hparams import metadata, plugin_data_pb2

        data = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION)
        getattr(data, kind).CopyFrom(message)
        meta = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(
                plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString()
            )
        )
        tag = {
            "experiment": metadata.EXPERIMENT_TAG,
            "session_start_info": metadata.SESSION_START_INFO_TAG,
            "session_end_info": metadata.SESSION_END_INFO_TAG,
        }[kind]
        self._event(summary_pb2.Summary.Value(tag=tag, metadata=meta), 0, time.time())

    def _seen(self, tag: str, step: int | None, content: bytes) -> bool:
        """True when this text or image was written already, by this object or in the
        folder before a re-attach."""
        return (tag, step or 0, hash(content)) in self._written or (tag, step or 0) in self._held

    def _purge_after(self, step: int) -> None:
        """Mark every event past ``step`` in this folder as superseded: TensorBoard drops
        events at or after a restart's step that were written before it."""
        from tensorboard.compat.proto import event_pb2

        restart = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        self._writer.add_event(
            event_pb2.Event(wall_time=time.time(), step=step + 1, session_log=restart)
        )
        self._flush()

    def _flush(self) -> None:
        if self._pending_graph is not None:
            self._write_graph()
        self._writer.flush()
        if self._torch_writer is not None:
            self._torch_writer.flush()


def _session_start(flat: Mapping[str, Any]) -> Any:
    from tensorboard.plugins.hparams import plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for key, value in flat.items():
        slot = info.hparams[key]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, (int, float)):
            slot.number_value = float(value)
        else:
            slot.string_value = str(value)
    return info


def _hparam_value(value: Any) -> Any:
    """A value the HPARAMS plugin takes: bool, number or string."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "None" if value is None else str(value)


def _png_size(data: bytes) -> tuple[int, int]:
    import struct

    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("ember delivers images as PNG files; this one is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _held_records(log_dir: Path) -> set[tuple[str, int]]:
    """(tag, step) of every scalar, text and image the folder holds, after TensorBoard's
    own purges: what a re-attached logger must not write again."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(
        str(log_dir), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0, ea.IMAGES: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    held: set[tuple[str, int]] = set()
    for tag in tags.get(ea.SCALARS, []):
        held.update((tag, e.step) for e in acc.Scalars(tag))
    for tag in tags.get(ea.TENSORS, []):
        held.update((tag, e.step) for e in acc.Tensors(tag))
    for tag in tags.get(ea.IMAGES, []):
        held.update((tag, e.step) for e in acc.Images(tag))
    return held
