"""Read Comet offline archives (``<key>[-<suffix>].zip``) and check them against Comet's
own JSON schemas, without a network.

An archive holds ``experiment.json``, ``messages.json`` (one ``{"type", "payload"}`` JSON
object per line) and one member per uploaded file. A resumed experiment has one archive
per process, all with the same key: :func:`read_archives` merges them in start order.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: which of comet_ml.schemas' validators checks each message type
_VALIDATORS = {
    "metric_msg": "get_metric_msg_validator",
    "parameter_msg": "get_parameter_msg_validator",
    "log_other": "get_log_other_msg_validator",
    "file_upload": "get_upload_msg_validator",
}


@dataclass
class Message:
    """One message of an archive; ``files`` maps ``file_path`` members to their bytes."""

    type: str
    payload: dict[str, Any]
    data: bytes | None = None


@dataclass
class Archive:
    """The merged content of every archive of one experiment key."""

    key: str
    paths: list[Path]
    experiments: list[dict[str, Any]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


def archive_paths(directory: str | Path, key: str) -> list[Path]:
    """The archives of ``key`` in ``directory``, oldest first."""

    def started(path: Path) -> int:
        with zipfile.ZipFile(path) as z:
            return int(json.loads(z.read("experiment.json"))["start_time"])

    return sorted(Path(directory).glob(f"{key}*.zip"), key=started)


def read_archives(directory: str | Path, key: str, *, validate: bool = True) -> Archive:
    """Read (and, with ``validate``, check against comet_ml's schemas) every archive of
    ``key``; raise ``jsonschema.ValidationError`` on a message Comet would reject."""
    from comet_ml import schemas

    paths = archive_paths(directory, key)
    if not paths:
        raise FileNotFoundError(f"no Comet offline archive for experiment {key} in {directory}")
    validators: dict[str, Any] = {}
    out = Archive(key=key, paths=paths)
    for path in paths:
        with zipfile.ZipFile(path) as z:
            experiment = json.loads(z.read("experiment.json"))
            if validate:
                schemas.get_experiment_file_validator().validate(experiment)
            out.experiments.append(experiment)
            for line in z.read("messages.json").decode("utf-8").splitlines():
                if not line.strip():
                    continue
                raw = json.loads(line)
                kind, payload = raw["type"], raw["payload"]
                if validate and kind in _VALIDATORS:
                    if kind not in validators:
                        validators[kind] = getattr(schemas, _VALIDATORS[kind])()
                    validators[kind].validate(payload)
                member = payload.get("file_path") if kind == "file_upload" else None
                data = z.read(member) if member else None
                out.messages.append(Message(kind, payload, data))
    return out
