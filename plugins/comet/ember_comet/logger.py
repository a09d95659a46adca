"""The Comet logger: an ember ``Logger`` over one ``comet_ml`` experiment.

ember calls it from its own worker thread. ``comet_ml`` is imported when a logger opens,
so discovering plugins costs nothing.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ember.hub import Logger
from ember.hub.tracking import Capabilities, MetricRecord, RunInfo

CHECKPOINT_POLICIES = ("none", "best", "all")
#: where checkpoints are grouped among the experiment's model files
MODEL_NAME = "checkpoints"
#: the ``log_other`` key holding ember's final status (Comet has no run status of its own)
STATUS_KEY = "ember_status"
#: Comet features that phone home even offline (cloud metadata probe, outgoing-IP lookup,
#: Sentry error reports), and the environment variables that switch them off
_QUIET_ENV = {
    "COMET_AUTO_LOG_ENV_DETAILS": "false",
    "COMET_ERROR_TRACKING_ENABLE": "false",
    "COMET_DISABLE_ANNOUNCEMENT": "true",
}


class CometLogger(Logger):
    """Sends ember's records to one Comet experiment (see the README for every option).

    The API key is read by Comet itself from ``COMET_API_KEY`` (or its own config file);
    ember has no option for it.
    """

    name = "comet"
    capabilities = Capabilities(
        hyperparams=True,
        metrics=True,
        text=True,
        images=True,
        artifacts=True,
        reattach=True,
        experiment=True,
    )

    def __init__(
        self,
        project_name: str | None = None,
        workspace: str | None = None,
        experiment_key: str | None = None,
        online: bool | None = None,
        offline_directory: str | os.PathLike[str] | None = None,
        experiment_name: str | None = None,
        tags: Sequence[str] | None = None,
        log_checkpoints: str = "none",
        auto_log: bool = False,
    ) -> None:
        if importlib.util.find_spec("comet_ml") is None:
            raise ImportError(
                "the comet logger needs the comet-ml package: pip install ember-comet (or comet-ml)"
            )
        if log_checkpoints not in CHECKPOINT_POLICIES:
            raise ValueError(
                f"comet logger: log_checkpoints={log_checkpoints!r} is not one of "
                f"{', '.join(CHECKPOINT_POLICIES)}"
            )
        if tags is not None and not all(isinstance(t, str) for t in tags):
            raise TypeError(f"comet logger: tags must be a list of strings, got {tags!r}")
        self.project_name, self.workspace = project_name, workspace
        self.experiment_key = experiment_key
        self.online = bool(os.environ.get("COMET_API_KEY")) if online is None else online
        self.offline_directory = None if offline_directory is None else Path(offline_directory)
        self.experiment_name = experiment_name
        self.tags = list(tags) if tags is not None else []
        self.log_checkpoints = log_checkpoints
        self.auto_log = auto_log
        # capabilities per instance: the same class online is not offline
        self.capabilities = replace(CometLogger.capabilities, offline=not self.online)
        #: the experiment key and, offline, the folder its archives go to, once opened
        self.key: str | None = None
        self.archive_dir: Path | None = None
        self._exp: Any = None
        # re-delivery (delivery is at-least-once): the highest MetricRecord.seq this object
        # wrote, those written by a call that then failed, and the (kind, key, step) of
        # the texts, images and artifacts the experiment holds (and, re-attached, its
        # metrics)
        self._seq = 0
        self._partial: set[int] = set()
        self._held: set[tuple[str, str, int | None]] = set()

    @property
    def experiment(self) -> Any:
        """The ``comet_ml`` Experiment itself, for what ember does not model."""
        if self._exp is None:
            raise RuntimeError(
                "comet logger: the Comet experiment exists only between open and finalize"
            )
        return self._exp

    # ------------------------------------------------------------------ contract
    def destination(self) -> str | None:
        """The Comet experiment given by ``experiment_key``; ``None`` when each open
        creates one."""
        if self.experiment_key is None:
            return None
        return f"comet experiment {self.experiment_key}"

    def open(self, run: RunInfo) -> str:
        """Start the experiment, or continue the one ember resumes; return its key."""
        if not self.auto_log:
            for var, value in _QUIET_ENV.items():
                os.environ.setdefault(var, value)
        import comet_ml

        key = run.resume_ref if run.resumed and run.resume_ref else self.experiment_key
        folder = self.offline_directory or Path(run.dir) / "comet"
        self.archive_dir = None if self.online else folder.resolve()
        if self.archive_dir is not None:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
            if run.resumed and key:
                self._held = _held_offline(self.archive_dir, key, run.resume_step)
        auto = self.auto_log
        config = comet_ml.ExperimentConfig(
            name=self.experiment_name or run.name,
            tags=self.tags,
            offline_directory=None if self.archive_dir is None else str(self.archive_dir),
            display_summary_level=0,
            auto_output_logging="default" if auto else False,
            auto_metric_logging=auto,
            auto_param_logging=auto,
            auto_histogram_weight_logging=False,
            log_code=auto,
            log_graph=auto,
            log_git_metadata=auto,
            log_git_patch=auto,
            log_env_details=auto,
            log_env_host=auto,
            log_env_gpu=auto,
            log_env_cpu=auto,
            log_env_network=auto,
            log_env_disk=auto,
        )
        self._exp = comet_ml.start(
            workspace=self.workspace,
            project_name=self.project_name,
            experiment_key=key,
            online=self.online,
            experiment_config=config,
        )
        self.key = str(self._exp.get_key())
        return self.key

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Log ``params``; Comet shows nested ones as ``optimizer|lr``."""
        self.experiment.log_parameters(dict(params))

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        """One ``log_metrics`` call per step, in the order the steps first appear; records
        this object or the re-attached experiment already hold are skipped."""
        rows: dict[int, dict[str, float]] = {}
        seqs: dict[int, list[int]] = {}
        for r in records:
            if r.seq and (r.seq <= self._seq or r.seq in self._partial):
                continue
            if ("metric", r.name, r.step) not in self._held:
                rows.setdefault(r.step, {})[r.name] = r.value
                seqs.setdefault(r.step, []).append(r.seq)
        for step, values in rows.items():
            self.experiment.log_metrics(values, step=step)
            self._partial.update(seqs[step])  # a retry after a failure skips these
        self._seq = max([self._seq, *(r.seq for r in records)])
        self._partial.clear()

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        """A Comet text sample, its ember key in the metadata."""
        if ("text", key, step) not in self._held:
            self.experiment.log_text(text, step=step, metadata={"key": key})
            self._held.add(("text", key, step))

    def log_image(
        self, key: str, path: str, *, step: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """The PNG at ``path``, named ``key`` in Comet's image panel."""
        if ("image", key, step) not in self._held:
            self.experiment.log_image(path, name=key, step=step, metadata=dict(metadata))
            self._held.add(("image", key, step))

    def log_artifact(
        self,
        path: str,
        kind: str,
        *,
        name: str,
        step: int | None,
        metadata: Mapping[str, Any],
    ) -> None:
        """Checkpoints (per ``log_checkpoints``) become files of the experiment's
        ``checkpoints`` model; anything else an asset. ``metadata`` travels along."""
        info = {**metadata, "ember_kind": kind, "ember_name": name, "ember_step": step}
        exp = self.experiment
        if ("artifact", name, step) in self._held:
            return
        if kind == "checkpoint":
            best = bool(metadata.get("best"))
            if self.log_checkpoints == "none" or (self.log_checkpoints == "best" and not best):
                return
            exp.log_model(MODEL_NAME, path, file_name=name, metadata=info)
        elif os.path.isdir(path):
            exp.log_asset_folder(path, step=step, log_file_name=True, recursive=True, metadata=info)
        else:
            exp.log_asset(path, file_name=name, step=step, metadata=info)
        self._held.add(("artifact", name, step))

    def finalize(self, status: str) -> None:
        """Record ``status`` (as the ``ember_status`` other value) and end the experiment,
        which writes the offline archive."""
        exp, self._exp = self._exp, None
        if exp is None:
            return
        exp.log_other(STATUS_KEY, status)
        exp.end()


def _held_offline(
    folder: Path, key: str, resume_step: int | None
) -> set[tuple[str, str, int | None]]:
    """What the earlier offline archives of ``key`` hold, as ``(kind, key, step)``;
    records past ``resume_step`` are superseded, so they do not count."""
    from ember_comet.archive import read_archives

    try:
        archive = read_archives(folder, key, validate=False)
    except FileNotFoundError:
        return set()
    held: set[tuple[str, str, int | None]] = set()
    for msg in archive.messages:
        p = msg.payload
        if msg.type == "metric_msg":
            held.add(("metric", p["metric"]["metricName"], p["metric"]["step"]))
        elif msg.type == "file_upload":
            meta, extra = p.get("metadata") or {}, p.get("additional_params") or {}
            if p.get("upload_type") == "text-sample" and "key" in meta:
                held.add(("text", meta["key"], extra.get("step")))
            elif p.get("upload_type") == "visualization":
                held.add(("image", extra.get("figName", ""), extra.get("step")))
            elif "ember_name" in meta:
                held.add(("artifact", meta["ember_name"], meta.get("ember_step")))
    if resume_step is None:
        return held
    return {h for h in held if h[2] is None or h[2] <= resume_step}
