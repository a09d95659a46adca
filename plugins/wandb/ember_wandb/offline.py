"""Read what W&B wrote for an offline run: the ``run-<id>.wandb`` files, without a network.

A run file is a LevelDB-style log of protobuf ``Record`` messages (``wandb.proto``): a
7-byte header (``:W&B``, magic ``0xBEE1``, version 0), then 32 KiB blocks of chunks, each
with a 7-byte ``<crc32, length, type>`` header; a record too long for a block is split
into FIRST/MIDDLE/LAST chunks. W&B documents no reader for this format (``wandb sync``
uploads it), so ember keeps this small one, used by its tests and by anyone checking what
an offline run holds before syncing it. A resumed run has one file per process, all with
the same run id: :func:`read_offline_run` merges them in order.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK = 32 * 1024
_CHUNK = struct.Struct("<IHB")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class RunFileError(ValueError):
    """The file is not a W&B run file, or it is damaged."""


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield every ``wandb_internal_pb2.Record`` of a run file, checking each chunk's CRC.

    A file cut short by a crash ends at its last complete record.
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if not data.startswith(_HEADER):
        raise RunFileError(f"{path}: not a W&B run file (header {data[:7]!r})")
    pos, parts = len(_HEADER), []
    while pos + _CHUNK.size <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _CHUNK.size:  # the rest of a block too small for a chunk header is padding
            pos += room
            continue
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero padding at the end of the last block
            pos += room
            continue
        chunk = data[pos + _CHUNK.size : pos + _CHUNK.size + length]
        if len(chunk) < length:
            return
        if zlib.crc32(bytes([kind]) + chunk) != crc:
            raise RunFileError(f"{path}: CRC mismatch in the chunk at byte {pos}")
        pos += _CHUNK.size + length
        parts.append(chunk)
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record
        elif kind not in (_FIRST, _MIDDLE):
            raise RunFileError(f"{path}: unknown chunk type {kind} at byte {pos}")


@dataclass
class OfflineArtifact:
    """One logged artifact: its type, name, aliases, metadata and ``{path: staged copy}``."""

    type: str
    name: str
    aliases: list[str]
    metadata: dict[str, Any]
    files: dict[str, str]


@dataclass
class OfflineRun:
    """Everything the run files of one W&B run id hold.

    ``history``: one dict per ``run.log`` call (``_step``, ``_runtime``, ... included);
    ``config`` and ``summary``: nested as logged (W&B's own ``_wandb`` key removed);
    ``exit_code``: from the exit record of the last file (None if the run never finished);
    ``preempted``: whether the run was marked as preempted.
    """

    run_id: str
    files: list[Path]
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[OfflineArtifact] = field(default_factory=list)
    exit_code: int | None = None
    preempted: bool = False
    display_name: str = ""
    tags: list[str] = field(default_factory=list)

    def media_file(self, path: str) -> Path:
        """The file a media value's ``path`` names (``media/images/...``), looked up in
        the ``files/`` folder of each run directory, newest first."""
        for run_file in reversed(self.files):
            candidate = run_file.parent / "files" / path
            if candidate.exists():
                return candidate
        raise FileNotFoundError(f"{path} is in no run folder of W&B run {self.run_id}")


def _set(target: dict[str, Any], item: Any) -> None:
    path = list(item.nested_key) or [item.key]
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = json.loads(item.value_json)


def run_files(wandb_dir: str | Path, run_id: str) -> list[Path]:
    """The run files of ``run_id`` under a ``wandb`` folder, oldest first."""

    def age(path: Path) -> tuple[str, int]:
        # folders are ``[offline-]run-<YYYYmmdd_HHMMSS>-<id>``, plus ``-<n>`` when another
        # process resumed the run within the same second
        stamp, _, rest = path.parent.name.split("run-", 1)[1].partition("-")
        suffix = rest[len(run_id) + 1 :]
        return stamp, int(suffix) if suffix.isdigit() else 0

    return sorted(Path(wandb_dir).glob(f"*run-*-{run_id}*/run-{run_id}.wandb"), key=age)


def read_offline_run(wandb_dir: str | Path, run_id: str) -> OfflineRun:
    """Read every run file of ``run_id`` under ``wandb_dir`` (``<dir>/wandb``)."""
    files = run_files(wandb_dir, run_id)
    if not files:
        raise FileNotFoundError(f"no run file for W&B run {run_id!r} under {wandb_dir}")
    run = OfflineRun(run_id=run_id, files=files)
    for path in files:
        run.exit_code, run.preempted = None, False
        for rec in iter_records(path):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run.display_name = rec.run.display_name or run.display_name
                run.tags = list(rec.run.tags) or run.tags
                for item in rec.run.config.update:
                    _set(run.config, item)
            elif kind == "config":
                for item in rec.config.update:
                    _set(run.config, item)
                for item in rec.config.remove:
                    run.config.pop(item.key, None)
            elif kind == "history":
                row: dict[str, Any] = {}
                for item in rec.history.item:
                    _set(row, item)
                run.history.append(row)
            elif kind == "summary":
                for item in rec.summary.update:
                    _set(run.summary, item)
            elif kind == "artifact":
                a = rec.artifact
                run.artifacts.append(
                    OfflineArtifact(
                        type=a.type,
                        name=a.name,
                        aliases=list(a.aliases),
                        metadata=json.loads(a.metadata) if a.metadata else {},
                        files={e.path: e.local_path for e in a.manifest.contents},
                    )
                )
            elif kind == "preempting":
                run.preempted = True
            elif kind == "exit":
                run.exit_code = rec.exit.exit_code
    run.config.pop("_wandb", None)
    run.summary.pop("_wandb", None)
    return run
