"""The MLflow logger: ember's records into one MLflow run, through ``MlflowClient``.

Where things go in the MLflow run:

* metrics: MLflow metrics (``log_batch``, at most 999 per request), with ember's step
  and wall time, so a batch delivered twice is stored once by MLflow's SQL stores;
* hyperparameters: MLflow params, flattened with ``/`` and cut to MLflow's limits, plus
  the whole nested dict, uncut, as the artifact ``ember/hparams.json``;
* texts: artifacts ``text/<key>/step_<step>.txt`` (``text/<key>/nostep.txt``);
* images: MLflow's step images (``client.log_image``, shown under the run's images) when
  Pillow and numpy are installed, otherwise the PNG as ``images/<key>/step_<step>.png``;
* artifacts: ``checkpoints/<name>`` for checkpoints (filtered by ``log_checkpoints``),
  ``<kind>/<name>`` for everything else;
* the final status: FINISHED, FAILED or KILLED; tags ``ember.run_id`` and ``ember.run_dir``;
  ``ember.seq``, the journal position of the last metric written (how a re-attached logger
  skips a batch MLflow already holds).

MLflow cannot delete metric steps: after resuming from a checkpoint, the steps past it
that MLflow already held stay next to the resumed ones (``rewind=False``), and the run
gets the tag ``ember.resumed_from_step``.

MLflow is imported in :meth:`MLflowLogger.open`, never when the plugin is discovered.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from math import isfinite
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ember.hub.tracking import Capabilities, Logger, MetricRecord, RunInfo, flatten_params

from ember_mlflow import CHECKPOINT_POLICIES

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: ember's final statuses as MLflow run statuses
STATUS_TO_MLFLOW = {"success": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
#: the default store's file, next to the run directories: ``<root>/ember_runs/mlflow.db``
DEFAULT_DB = "mlflow.db"
#: where the default store (and any SQLite store without ``artifact_location``) keeps
#: artifacts: a folder next to the database file, not MLflow's ``./mlruns`` in the cwd
ARTIFACTS_DIR = "mlflow-artifacts"
#: the whole nested hyperparameters, as logged (params are flat and cut to MLflow's limits)
HPARAMS_ARTIFACT = "ember/hparams.json"
#: the tag holding the journal position (``MetricRecord.seq``) of the last metric written
SEQ_TAG = "ember.seq"
#: MLflow's own HTTP retries (7, exponential backoff: minutes per call) stack on ember's;
#: ember retries and then leaves the rest to ``ember sync``, so a call may give up sooner
HTTP_RETRIES = "2"

# MLflow's limits (mlflow.utils.validation), restated so the module imports without MLflow
MAX_ENTITIES_PER_BATCH = 1000  # metrics, params and tags of one log_batch together
#: a request's metrics: room is left for the tag ``ember.seq`` sent with them
METRICS_PER_REQUEST = MAX_ENTITIES_PER_BATCH - 1
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_VALUE = 6000
MAX_KEY = 250
_NOT_IN_NAME = re.compile(r"[^/\w.\- :]")
_NOT_IN_IMAGE_KEY = re.compile(r"[^a-zA-Z0-9_\-./ ]")


@dataclass(frozen=True)
class MlflowRun:
    """What ``trainer.loggers["mlflow"].call(fn)`` hands to ``fn``: the logger's
    ``MlflowClient`` and the ids of its run, e.g.
    ``lambda mlf: mlf.client.log_figure(mlf.run_id, figure, "plots/roc.png")``."""

    client: MlflowClient
    run_id: str
    experiment_id: str
    tracking_uri: str


class MLflowLogger(Logger):
    """Logs an ember run into one MLflow run. See the package README for every option.

    :param tracking_uri: an MLflow tracking URI; by default a SQLite store
        ``<default_root_dir>/ember_runs/mlflow.db`` that needs no server.
    :param experiment_name: the experiment, created when missing.
    :param run_name: the MLflow run name (default: ember's run name).
    :param run_id: log into this existing MLflow run instead of creating one.
    :param tags: extra tags for the MLflow run.
    :param artifact_location: the artifact root of an experiment this logger creates.
    :param log_checkpoints: ``none``, ``best`` (each new best checkpoint) or ``all``.
    :param prefix: prepended to every metric name.
    """

    name = "mlflow"
    #: one ``log_batch`` request per delivery: ember's batches of 1000 metrics would be
    #: sent as 999 and then 1 (the ``ember.seq`` tag takes the last of MLflow's 1000 places)
    max_batch = METRICS_PER_REQUEST
    #: the class-level declaration; an instance on a local store declares ``offline=True``
    capabilities = Capabilities(
        hyperparams=True,
        metrics=True,
        text=True,
        images=True,
        artifacts=True,
        reattach=True,
        rewind=False,
        offline=False,
        experiment=True,
    )

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "ember",
        run_name: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        artifact_location: str | None = None,
        log_checkpoints: str = "best",
        prefix: str = "",
    ) -> None:
        if log_checkpoints not in CHECKPOINT_POLICIES:
            raise ValueError(
                f"log_checkpoints must be one of {', '.join(CHECKPOINT_POLICIES)}; "
                f"got {log_checkpoints!r}"
            )
        if tracking_uri is not None:
            _check_not_file_store(tracking_uri)
        if not experiment_name:
            raise ValueError("experiment_name must not be empty")
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.run_id: str | None = run_id
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.artifact_location = artifact_location
        self.log_checkpoints = log_checkpoints
        self.prefix = prefix
        self.capabilities = Capabilities(
            **{**type(self).capabilities.__dict__, "offline": _is_local(tracking_uri)}
        )
        self._client: MlflowClient | None = None
        #: the tracking server's credentials, when the store is one (metrics go straight to
        #: its REST endpoint)
        self._rest: Any = None
        self._run: MlflowRun | None = None
        self._seq = 0
        self._images: set[tuple[str, int]] | None = None
        self._params: dict[str, str] = {}
        self._hparams: dict[str, Any] | None = {}
        self.resolved_uri: str | None = None
        self._renamed: set[str] = set()
        #: the MLflow key of each metric name seen (see :meth:`_key`)
        self._keys: dict[str, str] = {}

    # ------------------------------------------------------------------ the tracker
    @property
    def experiment(self) -> MlflowRun:
        """The ``MlflowClient`` this logger writes with, and its run's ids."""
        if self._run is None:
            raise RuntimeError("the MLflow logger is not open yet: it opens when the run starts")
        return self._run

    # ------------------------------------------------------------------ contract
    def destination(self) -> str | None:
        """The MLflow run given by ``run_id``; ``None`` when each open creates a run."""
        if self.run_id is None:
            return None
        return f"mlflow run {self.run_id} at {self.tracking_uri or '<run dir> store'}"

    def open(self, run: RunInfo) -> str:
        """Create the MLflow run, or re-attach to ``run.resume_ref`` (or ``run_id``)."""
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_RETRIES)
        from mlflow import MlflowClient

        uri = self.tracking_uri or default_tracking_uri(run.dir)
        self.resolved_uri = uri
        with _one_store_opener(uri):
            client = MlflowClient(tracking_uri=uri)
        self._rest = _rest_credentials(uri)
        attach = (run.resume_ref if run.resumed else None) or self.run_id
        if attach:
            found = client.get_run(attach)  # raises when the run does not exist
            if found.info.status != "RUNNING":
                client.update_run(attach, status="RUNNING")
            self.run_id = attach
            self._params = dict(found.data.params)
            self._hparams = None
            if found.data.tags.get("ember.run_id") == run.id:
                # the journal positions are this run's: skip what MLflow already holds
                self._seq = int(found.data.tags.get(SEQ_TAG, "0"))
            if run.resumed and run.resume_step is not None:
                # MLflow cannot delete the steps past the checkpoint: mark where they end
                client.set_tag(attach, "ember.resumed_from_step", str(run.resume_step))
            experiment_id = found.info.experiment_id
        else:
            experiment_id = self._experiment_id(client, uri)
            tags = {**self.tags, "ember.run_id": run.id, "ember.run_dir": run.dir}
            created = client.create_run(
                experiment_id, run_name=self.run_name or run.name, tags=tags
            )
            self.run_id = created.info.run_id
            self._params, self._hparams = {}, {}
        self._client = client
        self._run = MlflowRun(client, self.run_id, experiment_id, uri)
        return self.run_id

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Log flattened params (MLflow keeps a param's first value) and ``hparams.json``."""
        from mlflow.entities import Param

        client, run_id = self._open_client(), self._run_id()
        if self._hparams is None:  # re-attached: continue the file the run holds
            self._hparams = _held_hparams(client, run_id)
        _merge(self._hparams, params)
        new: list[Param] = []
        changed: list[str] = []
        for raw_key, raw_value in flatten_params(params).items():
            key = self._key(raw_key)
            value = _param_value(raw_value)
            if key not in self._params:
                new.append(Param(key, value))
            elif self._params[key] != value:
                changed.append(key)
        for i in range(0, len(new), MAX_PARAMS_PER_BATCH):
            chunk = new[i : i + MAX_PARAMS_PER_BATCH]
            client.log_batch(run_id, params=chunk)
            # only once MLflow has them: a failed call is retried with the same params
            self._params.update((p.key, p.value) for p in chunk)
        client.log_dict(run_id, self._hparams, HPARAMS_ARTIFACT)
        if changed:
            warnings.warn(
                f"MLflow params cannot change value; kept the first value of "
                f"{', '.join(changed)} (the latest values are in ember/hparams.json)",
                stacklevel=2,
            )

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        """Log ``records`` with ``log_batch``, at most 999 metrics (and the tag) per
        request.

        A record whose journal position (``seq``) this run already holds is skipped: the
        tag ``ember.seq``, written after the metrics of each request, says how far MLflow
        got. (MLflow's SQL stores would also ignore the exact same metric twice.)
        """
        client, run_id = self._open_client(), self._run_id()
        fresh = [r for r in records if not r.seq or r.seq > self._seq]
        key, prefix = self._key, self.prefix
        for i in range(0, len(fresh), METRICS_PER_REQUEST):
            chunk = fresh[i : i + METRICS_PER_REQUEST]
            metrics = [
                (key(prefix + r.name), float(r.value), int(r.wall_time * 1000), int(r.step))
                for r in chunk
            ]
            seq = max(r.seq for r in chunk)
            tags = [(SEQ_TAG, str(seq))] if seq > self._seq else []
            if self._rest is not None:
                _post_log_batch(self._rest, run_id, metrics, tags)
            else:
                from mlflow.entities import Metric, RunTag

                client.log_batch(
                    run_id,
                    metrics=[Metric(*m) for m in metrics],
                    tags=[RunTag(*t) for t in tags],
                )
            self._seq = max(self._seq, seq)

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        """Store ``text`` as the artifact ``text/<key>/step_<step>.txt``."""
        self._open_client().log_text(self._run_id(), text, text_artifact(self._key(key), step))

    def log_image(
        self, key: str, path: str, *, step: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """Log the PNG at ``path`` as an MLflow step image (or a PNG artifact); an image
        MLflow already holds under this key and step is not logged again."""
        client, run_id = self._open_client(), self._run_id()
        clean = _NOT_IN_IMAGE_KEY.sub("_", key).strip("/") or "image"
        pil = _pil_image_module()
        if pil is not None:
            held = self._held_images(client, run_id)
            if (clean, step or 0) in held:
                return
            with pil.open(path) as image:
                image.load()
                client.log_image(run_id, image, key=clean, step=step or 0)
            held.add((clean, step or 0))
            return
        with tempfile.TemporaryDirectory(prefix="ember-mlflow-") as tmp:
            staged = Path(tmp) / image_file(step)
            shutil.copyfile(path, staged)
            client.log_artifact(run_id, str(staged), f"images/{clean}")

    def log_artifact(
        self,
        path: str,
        kind: str,
        *,
        name: str,
        step: int | None,
        metadata: Mapping[str, Any],
    ) -> None:
        """Upload the file or directory to ``checkpoints/`` or ``<kind>/``."""
        if kind == "checkpoint":
            if self.log_checkpoints == "none":
                return
            if self.log_checkpoints == "best" and not metadata.get("best"):
                return
            folder = "checkpoints"
        else:
            folder = _artifact_folder(kind)
        client, run_id = self._open_client(), self._run_id()
        name = _artifact_folder(name)
        if os.path.isdir(path):
            client.log_artifacts(run_id, path, f"{folder}/{name}")
        elif os.path.basename(path) == name:
            client.log_artifact(run_id, path, folder)
        else:
            with tempfile.TemporaryDirectory(prefix="ember-mlflow-") as tmp:
                staged = Path(tmp) / name
                shutil.copyfile(path, staged)
                client.log_artifact(run_id, str(staged), folder)
        if kind == "checkpoint" and metadata.get("best"):
            client.set_tag(run_id, "ember.best_checkpoint", f"{folder}/{name}")

    def finalize(self, status: str) -> None:
        """Set the MLflow run's status: FINISHED, FAILED or KILLED."""
        self._open_client().set_terminated(self._run_id(), STATUS_TO_MLFLOW.get(status, "FAILED"))

    # ------------------------------------------------------------------ helpers
    def _open_client(self) -> MlflowClient:
        if self._client is None:
            raise RuntimeError("the MLflow logger is not open yet: it opens when the run starts")
        return self._client

    def _held_images(self, client: MlflowClient, run_id: str) -> set[tuple[str, int]]:
        """(key, step) of the step images the run holds, listed once per logger."""
        if self._images is None:
            self._images = set()
            for info in client.list_artifacts(run_id, "images"):
                name = info.path.rsplit("/", 1)[-1]
                if "+step+" in name and name.endswith(".png"):
                    key, _, rest = name.partition("+step+")
                    self._images.add((key.replace("~", "/"), int(rest.split("+", 1)[0])))
        return self._images

    def _run_id(self) -> str:
        if self.run_id is None:
            raise RuntimeError("the MLflow logger is not open yet: it opens when the run starts")
        return self.run_id

    def _key(self, name: str) -> str:
        """``name`` as a valid MLflow key (warning once for each name that changes);
        remembered, since a run logs the same names at every step."""
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = self._make_key(name)
        return key

    def _make_key(self, name: str) -> str:
        key = _NOT_IN_NAME.sub("_", name)
        key = "/".join(p for p in key.split("/") if p not in ("", ".", ".."))[:MAX_KEY] or "_"
        if key != name and name not in self._renamed:
            self._renamed.add(name)
            warnings.warn(f"MLflow: {name!r} is logged as {key!r}", stacklevel=4)
        return key

    def _experiment_id(self, client: MlflowClient, uri: str) -> str:
        """The experiment's id; create it (with the artifact root chosen here) if missing."""
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(self.experiment_name)
        if found is None:
            location = self.artifact_location
            if location is None and uri.startswith("sqlite:"):
                location = (_db_path(uri).parent / ARTIFACTS_DIR).as_uri()
            try:
                return client.create_experiment(self.experiment_name, artifact_location=location)
            except MlflowException:
                found = client.get_experiment_by_name(self.experiment_name)  # created meanwhile
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise ValueError(
                f"the MLflow experiment {self.experiment_name!r} is deleted; restore it "
                "(mlflow experiments restore) or choose another experiment_name"
            )
        return found.experiment_id


# --------------------------------------------------------------------------- module helpers


def _rest_credentials(uri: str) -> Any:
    """The credentials MLflow's REST store would use for ``uri`` (``MlflowHostCreds``:
    token, basic auth, TLS settings from the environment), or None for a store that is
    not a tracking server."""
    if urlparse(uri).scheme not in ("http", "https"):
        return None
    from mlflow.utils.credentials import get_default_host_creds

    return get_default_host_creds(uri)


#: MLflow's REST endpoint for ``log_batch`` (``MlflowService.logBatch``)
LOG_BATCH_ENDPOINT = "/api/2.0/mlflow/runs/log-batch"


def _post_log_batch(
    creds: Any,
    run_id: str,
    metrics: Sequence[tuple[str, float, int, int]],
    tags: Sequence[tuple[str, str]],
) -> None:
    """``log_batch`` to a tracking server, the request body encoded here with the C JSON
    encoder: the SDK builds an entity, a protobuf and a JSON object per metric and
    encodes with ``indent`` (pure Python), about 50 µs of this worker's Python per
    metric, which a training thread pays for in GIL waits. The body goes to MLflow's own
    ``http_request`` as bytes (its ``call_endpoint`` would decode it and have ``requests``
    encode it again, about 2 ms a request), which does the rest: retries, credentials,
    headers; ``verify_rest_response`` maps an error answer to MLflow's exception."""
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    body = {
        "run_id": run_id,
        "metrics": [
            {
                "key": k,
                "value": v if isfinite(v) else _JSON_NONFINITE[str(v)],
                "timestamp": t,
                "step": s,
            }
            for k, v, t, s in metrics
        ],
        "tags": [{"key": k, "value": v} for k, v in tags],
    }
    response = http_request(
        creds,
        LOG_BATCH_ENDPOINT,
        "POST",
        data=json.dumps(body).encode("utf-8"),
        extra_headers={"Content-Type": "application/json"},
    )
    verify_rest_response(response, LOG_BATCH_ENDPOINT)


#: protobuf's JSON spelling of the values JSON has none for
_JSON_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def default_tracking_uri(run_dir: str) -> str:
    """The default store: ``sqlite:///<default_root_dir>/ember_runs/mlflow.db``, shared by
    every run under one root so MLflow lists them side by side."""
    return "sqlite:///" + str(Path(run_dir).resolve().parent / DEFAULT_DB)


def text_artifact(key: str, step: int | None) -> str:
    """Where a text is stored in the run's artifacts."""
    return f"text/{key}/" + ("nostep.txt" if step is None else f"step_{step}.txt")


def image_file(step: int | None) -> str:
    """The file name of an image stored as a plain PNG artifact."""
    return f"step_{0 if step is None else step}.png"


def _is_file_store(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme == "file" or (scheme == "" and not uri.startswith("databricks"))


def _is_local(uri: str | None) -> bool:
    """Whether the store needs no network: the default, SQLite, the file store."""
    return uri is None or uri.startswith("sqlite:") or _is_file_store(uri)


def _db_path(uri: str) -> Path:
    return Path(uri.split(":///", 1)[-1] if ":///" in uri else uri.split(":", 1)[-1])


@contextmanager
def _one_store_opener(uri: str) -> Iterator[None]:
    """While MLflow opens a SQLite store, hold a lock beside it (``<db>.lock``). MLflow
    creates and migrates a new database when it first opens it; processes that do so at
    once (a sweep starting on the default store) fail with "table ... already exists" or
    "duplicate column name". A store that is not SQLite needs no lock."""
    if not uri.startswith("sqlite:"):
        yield
        return
    db = _db_path(uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the hub retries an open that lost the race
        yield
        return
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_not_file_store(uri: str) -> None:
    if _is_file_store(uri) and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":
        raise ValueError(
            f"tracking_uri {uri!r} is MLflow's file store, which MLflow has deprecated; use a "
            f"SQLite store such as 'sqlite:///{uri.removeprefix('file://')}/mlflow.db' (or "
            "leave tracking_uri unset), or set MLFLOW_ALLOW_FILE_STORE=true to use it anyway"
        )


def _param_value(value: Any) -> str:
    text = str(value)
    if len(text) > MAX_PARAM_VALUE:
        return text[: MAX_PARAM_VALUE - 3] + "..."
    return text


def _artifact_folder(name: str) -> str:
    clean = "/".join(p for p in str(name).replace("\\", "/").split("/") if p not in ("", ".", ".."))
    return clean or "file"


def _pil_image_module() -> Any:
    """``PIL.Image`` when Pillow and numpy (which ``log_image`` needs) are installed."""
    try:
        import numpy  # noqa: F401
        from PIL import Image
    except ImportError:
        return None
    return Image


def _held_hparams(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The run's ``ember/hparams.json``, or an empty dict when it has none."""
    if not any(f.path == HPARAMS_ARTIFACT for f in client.list_artifacts(run_id, "ember")):
        return {}
    with tempfile.TemporaryDirectory(prefix="ember-mlflow-") as tmp:
        local = client.download_artifacts(run_id, HPARAMS_ARTIFACT, tmp)
        return json.loads(Path(local).read_text("utf-8"))


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = json.loads(json.dumps(value, default=str))
