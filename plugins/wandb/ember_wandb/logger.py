"""The W&B logger: an ember ``Logger`` over one ``wandb`` run.

ember calls it from its own worker thread. ``wandb`` is imported when a logger opens, so
discovering plugins, or building a trainer that never opens this logger, costs nothing.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ember.hub import Logger
from ember.hub.tracking import Capabilities, MetricRecord, RunInfo

#: the x axis every ember metric is plotted against (declared with ``define_metric``)
STEP_METRIC = "trainer/global_step"
MODES = ("online", "offline", "disabled")
CHECKPOINT_POLICIES = ("none", "best", "all")
#: W&B's older spellings of the modes, as WANDB_MODE may hold them
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}
#: the exit code each ember status is finished with (W&B shows non-zero as failed)
_EXIT_CODES = {"success": 0, "failed": 1, "interrupted": 255}


def resolve_mode(mode: str | None) -> str:
    """The W&B mode to use: ``mode``, else ``WANDB_MODE``, else ``online``."""
    value = mode or os.environ.get("WANDB_MODE") or "online"
    value = _MODE_ALIASES.get(value, value)
    if value not in MODES:
        source = "mode" if mode else "WANDB_MODE"
        raise ValueError(f"wandb logger: {source}={value!r} is not one of {', '.join(MODES)}")
    return value


class WandbLogger(Logger):
    """Sends ember's records to one W&B run (see the README for every option).

    Metrics are plotted against ``trainer/global_step`` (declared with ``define_metric``),
    so W&B's own ``_step`` counter never drops a step that arrives out of order. The API
    key is W&B's business: ``WANDB_API_KEY`` or ``wandb login``; ember has no option for it.
    """

    name = "wandb"
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
        project: str | None = None,
        entity: str | None = None,
        run_name: str | None = None,
        id: str | None = None,
        group: str | None = None,
        job_type: str | None = None,
        tags: Sequence[str] | None = None,
        notes: str | None = None,
        mode: str | None = None,
        dir: str | os.PathLike[str] | None = None,
        log_checkpoints: str = "none",
    ) -> None:
        if importlib.util.find_spec("wandb") is None:
            raise ImportError(
                "the wandb logger needs the wandb package: pip install ember-wandb (or wandb)"
            )
        if log_checkpoints not in CHECKPOINT_POLICIES:
            raise ValueError(
                f"wandb logger: log_checkpoints={log_checkpoints!r} is not one of "
                f"{', '.join(CHECKPOINT_POLICIES)}"
            )
        if tags is not None and not all(isinstance(t, str) for t in tags):
            raise TypeError(f"wandb logger: tags must be a list of strings, got {tags!r}")
        self.project, self.entity, self.run_name, self.id = project, entity, run_name, id
        self.group, self.job_type, self.notes = group, job_type, notes
        self.tags = list(tags) if tags is not None else None
        self.mode = resolve_mode(mode)
        self.dir = None if dir is None else Path(dir)
        self.log_checkpoints = log_checkpoints
        # capabilities per instance: the same class online is not offline
        self.capabilities = replace(WandbLogger.capabilities, offline=self.mode != "online")
        #: the folder W&B writes under (``<root>/wandb``) and the W&B run id, once opened
        self.root: Path | None = None
        self.run_id: str | None = None
        self._run: Any = None
        # re-delivery (delivery is at-least-once): the highest MetricRecord.seq this object
        # wrote, those written by a call that then failed, and the (kind, key, step) of
        # the texts, images and artifacts the W&B run holds (and, re-attached, its metrics)
        self._seq = 0
        self._partial: set[int] = set()
        self._held: set[tuple[str, str, int | None]] = set()

    @property
    def experiment(self) -> Any:
        """The ``wandb`` Run itself, for what ember does not model (tables, histograms)."""
        if self._run is None:
            raise RuntimeError("wandb logger: the W&B run exists only between open and finalize")
        return self._run

    # ------------------------------------------------------------------ contract
    def destination(self) -> str | None:
        """The W&B run given by ``id``; ``None`` when each open creates a run."""
        if self.id is None:
            return None
        return f"wandb run {self.entity or '<entity>'}/{self.project or '<project>'}/{self.id}"

    def open(self, run: RunInfo) -> str:
        """Start the W&B run, or resume the one ember resumes; return its run id."""
        self.root = Path(self.dir if self.dir is not None else run.dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        # W&B's debug logs and staged artifact copies default to the home folder; keep them
        # with the run unless the user chose a place. wandb-core reads these when it starts.
        os.environ.setdefault("WANDB_CACHE_DIR", str(self.root / "wandb" / "cache"))
        os.environ.setdefault("WANDB_DATA_DIR", str(self.root / "wandb" / "data"))
        import wandb

        run_id = run.resume_ref if run.resumed and run.resume_ref else self.id
        quiet = self.mode != "online"
        if quiet:
            _disable_usage_analytics()
        if run.resumed and run_id and self.mode == "offline":
            self._held = _held_offline(self.root / "wandb", run_id, run.resume_step)
        settings = wandb.Settings(
            mode=self.mode,
            console="off",
            silent=True,
            reinit="create_new",
            # system metrics run a helper process that probes cloud metadata endpoints
            x_disable_stats=quiet,
        )
        self._run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=self.run_name or run.name,
            id=run_id,
            group=self.group,
            job_type=self.job_type,
            tags=self.tags,
            notes=self.notes,
            dir=str(self.root),
            resume="allow" if run_id else None,
            settings=settings,
        )
        self._run.define_metric(STEP_METRIC)
        self._run.define_metric("*", step_metric=STEP_METRIC)
        self.run_id = str(self._run.id)
        return self.run_id

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Merge ``params`` (nested) into the run's config."""
        self.experiment.config.update(dict(params), allow_val_change=True)

    def log_metrics(self, records: Sequence[MetricRecord]) -> None:
        """One history row per step, in the order the steps first appear; records this
        object or the re-attached run already hold are skipped."""
        rows: dict[int, dict[str, float]] = {}
        seqs: dict[int, list[int]] = {}
        for r in records:
            if r.seq and (r.seq <= self._seq or r.seq in self._partial):
                continue
            if ("metric", r.name, r.step) not in self._held:
                rows.setdefault(r.step, {})[r.name] = r.value
                seqs.setdefault(r.step, []).append(r.seq)
        for step, values in rows.items():
            self.experiment.log({**values, STEP_METRIC: step})
            self._partial.update(seqs[step])  # a retry after a failure skips these
        self._seq = max([self._seq, *(r.seq for r in records)])
        self._partial.clear()

    def log_text(self, key: str, text: str, *, step: int | None) -> None:
        """Text at a step goes to the history; text without a step to the summary."""
        if ("text", key, step) in self._held:
            return
        if step is None:
            self.experiment.summary[key] = text
        else:
            self.experiment.log({key: text, STEP_METRIC: step})
        self._held.add(("text", key, step))

    def log_image(
        self, key: str, path: str, *, step: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """Log the PNG at ``path`` as a ``wandb.Image`` (``metadata["caption"]`` shown)."""
        import wandb

        if ("image", key, step) in self._held:
            return
        row: dict[str, Any] = {key: wandb.Image(path, caption=metadata.get("caption"))}
        if step is not None:
            row[STEP_METRIC] = step
        self.experiment.log(row)
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
        """Upload a file or folder as a W&B artifact.

        Checkpoints follow ``log_checkpoints`` and become versions of one ``model``
        artifact per run, aliased ``latest`` (and ``best`` for the best one so far);
        other kinds become artifacts of that type named after the file.
        """
        import wandb

        run = self.experiment
        aliases = ["latest"]
        if kind == "checkpoint":
            best = bool(metadata.get("best"))
            if self.log_checkpoints == "none" or (self.log_checkpoints == "best" and not best):
                return
        if ("artifact", name, step) in self._held:
            return
        if kind == "checkpoint":
            art_name, art_type = f"model-{run.id}", "model"
            if metadata.get("best"):
                aliases.append("best")
        else:
            art_name, art_type = _artifact_name(name), _artifact_name(kind)
        info = {**metadata, "ember_kind": kind, "ember_name": name, "ember_step": step}
        artifact = wandb.Artifact(art_name, type=art_type, metadata=info)
        if os.path.isdir(path):
            artifact.add_dir(path, name=name)
        else:
            artifact.add_file(path, name=name)
        run.log_artifact(artifact, aliases=aliases)
        self._held.add(("artifact", name, step))

    def finalize(self, status: str) -> None:
        """Finish the W&B run with ``status``; stop wandb-core unless other runs use it."""
        import wandb

        run, self._run = self._run, None
        if run is None:
            return
        if status == "interrupted":
            run.mark_preempting()
        run.finish(exit_code=_EXIT_CODES.get(status, 1))
        if not _other_runs_active():
            wandb.teardown()


def _held_offline(
    wandb_dir: Path, run_id: str, resume_step: int | None
) -> set[tuple[str, str, int | None]]:
    """What the offline run files of ``run_id`` already hold, as ``(kind, key, step)``;
    records past ``resume_step`` are superseded, so they do not count."""
    from ember_wandb.offline import read_offline_run

    try:
        run = read_offline_run(wandb_dir, run_id)
    except FileNotFoundError:
        return set()
    held: set[tuple[str, str, int | None]] = set()
    for row in run.history:
        step = row.get(STEP_METRIC)
        for key, value in row.items():
            if key.startswith("_") or key == STEP_METRIC:
                continue
            if isinstance(value, dict) and value.get("_type") == "image-file":
                held.add(("image", key, step))
            elif isinstance(value, str):
                held.add(("text", key, step))
            else:
                held.add(("metric", key, step))
    for art in run.artifacts:
        if "ember_name" in art.metadata:
            held.add(("artifact", art.metadata["ember_name"], art.metadata.get("ember_step")))
    if resume_step is None:
        return held
    return {h for h in held if h[2] is None or h[2] <= resume_step}


def _artifact_name(text: str) -> str:
    """W&B artifact names and types allow letters, digits, '-', '_' and '.'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "artifact"


def _disable_usage_analytics() -> None:
    """Stop W&B's usage analytics for this process: they are configured from the global
    settings, not the run's, and post to W&B's server at exit even for an offline run."""
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy
    except ImportError:  # an SDK without them
        return
    opentelemetry_proxy.disable()


def _other_runs_active() -> bool:
    """Whether this process still has W&B runs open (the user's own, another logger's)."""
    import wandb
    from wandb.sdk import wandb_setup

    setup = wandb_setup._singleton  # W&B keeps no public list of open runs
    active = getattr(setup, "_active_runs", None)
    if active is None:
        return wandb.run is not None
    return bool(active)
