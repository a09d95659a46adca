"""The CSV logger: ember's embedded default tracker, built on the same contract as any
plugin.

Files, in the run directory (or ``<save_dir>/<run id>/``):

* ``metrics.csv``: one row per step, a ``step`` column then one column per metric in
  order of first appearance (wide, as Lightning writes it: opens in any spreadsheet);
  a metric missing at a step is an empty cell;
* ``hparams.json``: the hyperparameters, nested as logged;
* ``texts.csv`` (``step,key,text``), ``images.csv`` (``step,key,path``) and
  ``artifacts.csv`` (``step,kind,name,path``): references, not copies;
* ``status.json``: the run's id, name and final status.

A batch normally only appends rows. Metrics for the step written last (validation
metrics arriving after the training metrics of the same step) rewrite that last row in
place; a new metric name, or a step older than the last row, rewrites the file once.
A batch delivered twice changes nothing: a metric row is keyed by its step, and a text,
image or artifact row already in its file is not written again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from ember.hub.tracking.logger import Capabilities, Logger, MetricBatch, MetricRecord, RunInfo

METRICS_FILE = "metrics.csv"
HPARAMS_FILE = "hparams.json"
TEXTS_FILE = "texts.csv"
IMAGES_FILE = "images.csv"
ARTIFACTS_FILE = "artifacts.csv"
STATUS_FILE = "status.json"

_NAME, _VALUE, _STEP = itemgetter(0), itemgetter(1), itemgetter(2)


def _csv_line(row: Sequence[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue().encode("utf-8")


def _step_groups(records: Sequence[MetricRecord]) -> Iterator[tuple[int, dict[str, float]]]:
    """``(step, {name: value})`` per run of consecutive records of one step."""
    if isinstance(records, MetricBatch):
        for step, names, values in records.by_step():
            yield step, dict(zip(names, values, strict=True))
        return
    for step, group in groupby(records, _STEP):
        items = list(group)
        yield step, dict(zip(map(_NAME, items), map(_VALUE, items), strict=True))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
    os.replace(tmp, path)


class CSVLogger(Logger):
    """Writes metrics, hyperparameters, texts and artifact references as local files.

    :param save_dir: where to write; by default the run directory itself, otherwise
        ``save_dir/<run id>/``.
    """

    name = "csv"
    capabilities = Capabilities(
        hyperparams=True,
        metrics=True,
        text=True,
        images=True,
        artifacts=True,
        reattach=True,
        rewind=True,
        offline=True,
    )

    def __init__(self, save_dir: str | os.PathLike[str] | None = None) -> None:
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.dir: Path | None = None
        self._run: RunInfo | None = None
        self._columns: list[str] = ["step"]
        #: the names in :attr:`_columns`
        self._known: set[str] = {"step"}
        self._last_step: int | None = None
        self._last_row: dict[str, float] = {}
        self._last_offset = 0
        #: per file, the (step, key) of the rows it holds: a re-delivered row is skipped
        self._written: dict[str, set[tuple[str, ...]]] = {}

    # ------------------------------------------------------------------ contract
    def destination(self) -> str:
        """``<run dir>/metrics.csv``, or ``<save_dir>/<run id>/metrics.csv`` resolved."""
        if self.save_dir is None:
            return f"<run dir>/{METRICS_FILE}"
        return f"{os.path.realpath(self.save_dir)}/<run id>/{METRICS_FILE}"

    def open(self, run: RunInfo) -> str:
        """Create (or, on resume, reopen and trim past ``run.resume_step``) the files."""
        if run.resumed and run.resume_ref:
            self.dir = Path(run.resume_ref)
        elif self.save_dir is not None:
            self.dir = self.save_dir / run.id
        else:
            self.dir = Path(run.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._run = run
        rows = self._read_metrics()
        if run.resumed and run.resume_step is not None:
            rows = {s: r for s, r in rows.items() if s <= run.resume_step}
            for fname in (TEXTS_FILE, IMAGES_FILE, ARTIFACTS_FILE):
                self._trim_by_step(self.dir / fname, run.resume_step)
        self._rewrite(rows)
        return str(self.dir)

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into ``hparams.json``."""
        path = self._path(HPARAMS_FILE)
        current = json.loads(path.read_text("utf-8")) if path.exists() else {}
        _merge(current, params)
        _write_atomic(path, json.dumps(current, indent=2, default=str).encode("utf-8"))

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        """Add ``records`` to ``metrics.csv``, one row per step."""
        if isinstance(records, MetricBatch) and self._append_whole_rows(records):
            return
        # records come grouped by step (a flush is consecutive): one dict per group,
        # built in C, instead of Python work per record; from the journal, a flush comes
        # as one group without a record object per metric
        by_step: dict[int, dict[str, float]] = {}
        for step, values in _step_groups(records):
            row = by_step.get(step)
            if row is None:
                by_step[step] = values
            else:
                row.update(values)
        if not by_step:
            return
        known = self._known
        new_names: dict[str, None] = {}
        for row in by_step.values():
            if not known.issuperset(row):
                new_names.update((n, None) for n in row if n not in known)
        steps = sorted(by_step)
        last = self._last_step
        if new_names or (last is not None and steps[0] < last):
            rows = self._read_metrics()
            for step, values in by_step.items():
                rows.setdefault(step, {}).update(values)
            self._columns += [n for n in new_names if n not in self._columns]
            self._known = set(self._columns)
            self._rewrite(rows)
            return
        path = self._path(METRICS_FILE)
        with path.open("r+b") as f:
            if last is not None and steps[0] == last:
                # more metrics for the step written last: rewrite that row in place
                self._last_row.update(by_step.pop(last))
                f.seek(self._last_offset)
                f.truncate()
                f.write(self._row_bytes(last, self._last_row))
                steps = steps[1:]
            else:
                f.seek(0, os.SEEK_END)
            offset = f.tell()
            chunks = []
            for step in steps:
                data = self._row_bytes(step, by_step[step])
                self._last_offset = offset
                self._last_step, self._last_row = step, by_step[step]
                offset += len(data)
                chunks.append(data)
            f.write(b"".join(chunks))

    def _append_whole_rows(self, batch: MetricBatch) -> bool:
        """The common case of a run logging the same metrics every step, without a dict
        per step: when each flush names every column in order, at a step past the last
        row, append the rows and return True; otherwise write nothing, return False."""
        columns = tuple(self._columns[1:])
        last = self._last_step
        groups = list(batch.by_step())
        if not groups:
            return True
        for step, names, _ in groups:
            if names != columns or (last is not None and step <= last):
                return False
            last = step
        path = self._path(METRICS_FILE)
        with path.open("ab") as f:
            offset = f.tell()
            chunks = []
            for step, _, values in groups:
                data = f"{step},{','.join(map(repr, values))}\n".encode("ascii")
                self._last_offset = offset
                offset += len(data)
                chunks.append(data)
            f.write(b"".join(chunks))
        step, names, values = groups[-1]
        self._last_step, self._last_row = step, dict(zip(names, values, strict=True))
        return True

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        """Append a row to ``texts.csv``."""
        self._append(TEXTS_FILE, ("step", "key", "text"), ("" if step is None else step, key, text))

    def log_image(
        self, key: str, path: str, *, step: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """Append a reference (not a copy) to ``images.csv``."""
        self._append(
            IMAGES_FILE, ("step", "key", "path"), ("" if step is None else step, key, path)
        )

    def log_artifact(
        self,
        path: str,
        kind: str,
        *,
        name: str,
        step: int | None,
        metadata: Mapping[str, Any],
    ) -> None:
        """Append a reference (not a copy) to ``artifacts.csv``."""
        self._append(
            ARTIFACTS_FILE,
            ("step", "kind", "name", "path"),
            ("" if step is None else step, kind, name, path),
        )

    def finalize(self, status: str) -> None:
        """Write ``status.json``."""
        run = self._run
        payload = {
            "id": run.id if run else None,
            "name": run.name if run else None,
            "status": status,
        }
        _write_atomic(self._path(STATUS_FILE), json.dumps(payload, indent=2).encode("utf-8"))

    # ------------------------------------------------------------------ files
    def _path(self, fname: str) -> Path:
        if self.dir is None:
            raise RuntimeError("CSVLogger: open(run) must be called before logging")
        return self.dir / fname

    def _row_bytes(self, step: int, values: Mapping[str, float]) -> bytes:
        # numbers never need CSV quoting: join them directly (the csv module costs more
        # than the rest of a row's work on a run that logs every step)
        columns = self._columns
        if len(values) == len(columns) - 1 and list(values) == columns[1:]:
            # every column, in order (a run logging the same metrics every step)
            return f"{step},{','.join(map(repr, values.values()))}\n".encode("ascii")
        get = values.get
        cells = [str(step)]
        for c in columns[1:]:
            v = get(c)
            cells.append("" if v is None else repr(v))
        return (",".join(cells) + "\n").encode("ascii")

    def _read_metrics(self) -> dict[int, dict[str, float]]:
        path = self._path(METRICS_FILE)
        rows: dict[int, dict[str, float]] = {}
        if not path.exists():
            return rows
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or header[0] != "step":
                return rows
            for name in header[1:]:
                if name not in self._known:
                    self._columns.append(name)
                    self._known.add(name)
            for line in reader:
                if not line:
                    continue
                values = {
                    n: float(v) for n, v in zip(header[1:], line[1:], strict=False) if v != ""
                }
                rows.setdefault(int(line[0]), {}).update(values)
        return rows

    def _rewrite(self, rows: Mapping[int, Mapping[str, float]]) -> None:
        out = io.BytesIO()
        out.write(_csv_line(self._columns))
        self._last_step, self._last_row = None, {}
        for step in sorted(rows):
            self._last_offset = out.tell()
            self._last_step, self._last_row = step, dict(rows[step])
            out.write(self._row_bytes(step, rows[step]))
        if self._last_step is None:
            self._last_offset = out.tell()
        _write_atomic(self._path(METRICS_FILE), out.getvalue())

    def _append(self, fname: str, header: Sequence[str], row: Sequence[Any]) -> None:
        """Append ``row`` unless the file holds the same row already (re-delivered)."""
        path = self._path(fname)
        written = self._written.get(fname)
        if written is None:
            written = self._written[fname] = set()
            if path.exists():
                with path.open(newline="", encoding="utf-8") as f:
                    written.update(tuple(ln) for ln in list(csv.reader(f))[1:])
        identity = tuple(str(v) for v in row)
        if identity in written:
            return
        data = _csv_line(row)
        if not path.exists():
            data = _csv_line(header) + data
        with path.open("ab") as f:
            f.write(data)
        written.add(identity)

    def _trim_by_step(self, path: Path, resume_step: int) -> None:
        if not path.exists():
            return
        with path.open(newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
        kept = [lines[0]] + [
            ln for ln in lines[1:] if ln and (ln[0] == "" or int(ln[0]) <= resume_step)
        ]
        _write_atomic(path, b"".join(_csv_line(ln) for ln in kept))
        self._written.pop(path.name, None)


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
