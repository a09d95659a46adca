"""The tracking session of a trainer: its loggers, the run each entry point writes to
(fit then test continue one run; a resumed fit continues its checkpoint's run), and what
the run records (configuration, hyperparameters, metrics, texts, artifacts)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ember.hub import PluginManager
from ember.trainer.errors import MisconfigurationError

if TYPE_CHECKING:
    from ember.hub.tracking import LoggerArg, LoggerEntry, Report, Run


class TrackingSession:
    """The runs of one trainer.

    Loggers are resolved when the session is made (at ``Trainer(...)``), so that a
    misspelled name or option fails before any training; a run starts with each entry
    point (:meth:`start`) and ends with it (:meth:`finish`).
    """

    def __init__(
        self, logger: LoggerArg, timeout: float, plugins: PluginManager, delivery: str = "thread"
    ) -> None:
        # the pipeline (SQLite, threads) is imported with the first trainer, not with
        # ``import ember.trainer``
        from ember.hub.tracking import DeliveryPolicy, DisabledRun, resolve_loggers

        self.plugins = plugins
        self.entries: list[LoggerEntry] | None = resolve_loggers(logger, plugin_manager=plugins)
        self._policy = DeliveryPolicy(finalize_timeout=timeout, process=delivery == "process")
        #: the run of the running (or last) entry point
        self.run: Run = DisabledRun()
        #: the identity of the last run: later entry points continue it
        self._identity: dict[str, Any] | None = None
        #: what a fit's checkpoint says to resume: (run identity or None, global step)
        self.resume_from: tuple[dict[str, Any] | None, int] | None = None
        self._hparams_logged: tuple[str, str] | None = None
        #: the run's directory once one was made (every rank learns rank zero's)
        self.run_dir: str | None = None
        #: where each logger stood when the last stage ended (``None``: no run recorded it)
        self.report: Report | None = None
        #: the directory the next entry point's run will have (see :meth:`plan`)
        self.planned_dir: str | None = None
        self._planned_id: str | None = None

    def plan(
        self, root_dir: str, broadcast: Callable[[Any], Any], enabled: bool = True
    ) -> str | None:
        """Decide, before the callbacks' ``setup``, the directory of the run the entry
        point will open (its checkpoint folder goes under it): this trainer's live or
        last run, else a new run's (its id chosen now). ``None`` without a run
        (``logger=False``, or ``enabled`` false: ``fast_dev_run``). A fit that resumes a
        checkpoint opens the checkpoint's run instead, and its checkpointers follow their
        saved folder."""
        from ember.hub.tracking import RUNS_DIR, Run

        self._planned_id = None
        if self.entries is None or not enabled:
            planned = None
        elif self.open:
            planned = str(self.run.dir)
        elif self._identity is not None:
            planned = str(self._identity.get("dir") or self.run_dir)
        else:
            self._planned_id = Run.new_id()
            planned = os.path.join(os.path.abspath(root_dir), RUNS_DIR, self._planned_id)
        self.planned_dir = broadcast(planned)
        return self.planned_dir

    def start(
        self,
        root_dir: str,
        config: dict[str, Any],
        hparams: dict[str, Any],
        rank: int,
        broadcast: Callable[[Any], Any],
        print_line: Callable[[str], None],
        stage: str,
    ) -> None:
        """Open the entry point's ``stage``: in the run of the checkpoint a fit resumes
        from, else in this trainer's live run (fit then test: one run, one tracker run per
        logger), else in a continuation of its finished run, else in a new run.

        :param broadcast: sends rank zero's run directory to every rank (called exactly
            once on every rank, whichever way the run is opened).
        """
        from ember.hub.tracking import Run, finish_when_collected

        resume_from, self.resume_from = self.resume_from, None
        if self.entries is None:
            return
        live = self.run
        if live.enabled and live.report is None:  # only ever true on rank zero
            if resume_from is None:
                self.run_dir = broadcast(str(live.dir))
                live.begin_stage(stage)
                self._log_hparams(live, hparams)
                return
            # resuming a checkpoint: its run is opened afresh, so this one ends now
            self._report(live.finish(live.exit_status), print_line)
        ckpt_run, resume_step = resume_from if resume_from is not None else (None, None)
        identity = ckpt_run or self._identity
        run = Run.start(
            root_dir,
            self.entries,
            config=config,
            resume=identity,
            resume_step=resume_step,
            rank=rank,
            policy=self._policy,
            run_id=self._planned_id,
        )
        self._planned_id = None
        self.run = run
        self.run_dir = broadcast(str(run.dir) if run.enabled else None)
        if not run.enabled:
            return
        # a successful stage leaves the tracker runs open for the next one: they are
        # finalized when a stage fails, when the trainer is collected, or at exit
        run.quiet_exit = True
        finish_when_collected(self, run)
        run.begin_stage(stage)
        self._identity = run.state_dict()
        self._log_hparams(run, hparams)
        if identity is None or ckpt_run is not None:
            print_line(self.header(run, resumed=identity is not None))

    def _log_hparams(self, run: Run, hparams: dict[str, Any]) -> None:
        """Record ``hparams`` unless this run already holds the same ones."""
        if hparams:
            logged = (run.id, repr(hparams))
            if logged != self._hparams_logged:
                run.log_hyperparams(hparams)
                self._hparams_logged = logged

    @staticmethod
    def _report(report: Any, print_line: Callable[[str], None]) -> None:
        if not report.complete:
            print_line(str(report))

    def finish(self, outcome: str, stage: str) -> str | None:
        """End the entry point's ``stage`` with ``outcome``, waiting at most
        ``logger_timeout`` for the loggers; returns the report when not all was delivered.

        A success keeps the tracker runs open for the next stage; a failure or an
        interruption finalizes them now."""
        self.resume_from = None
        self.report = None
        run = self.run
        if not run.enabled or run.report is not None:
            return None
        report = run.end_stage(stage, outcome) if outcome == "success" else run.finish(outcome)
        self.report = report
        return None if report.complete else str(report)

    @property
    def open(self) -> bool:
        """Whether a run is recording now."""
        return self.run.enabled and self.run.report is None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Append flushed metrics to the run (the loggers get them from their threads)."""
        self.run.log_metrics(metrics, step)

    def _open_run(self, what: str) -> Run:
        """The run, or an error naming ``what`` once the run has finished."""
        run = self.run
        if run.report is not None:
            raise MisconfigurationError(
                f"{what} was called after the run {run.id} finished: call it while fit, "
                "validate or test runs (from a hook or a step)"
            )
        return run

    def log_text(self, key: str, text: str, step: int) -> None:
        """Record a piece of text in the run; an error once the run has finished."""
        self._open_run(f"trainer.log_text({key!r}, ...)").log_text(key, text, step=step)

    def log_image(self, key: str, image: Any, step: int) -> None:
        """Save ``image`` as a PNG under the run directory's ``images/`` and record it; an
        error once the run has finished, dropped without a run."""
        run = self._open_run(f"trainer.log_image({key!r}, ...)")
        if not run.enabled:
            return
        from ember.hub.tracking import save_png
        from ember.trainer.images import as_image

        folder = run.dir / "images" / _file_safe(key)
        path = folder / f"step{step}.png"
        n = 1
        while path.exists():
            n += 1
            path = folder / f"step{step}-{n}.png"
        width, height, channels = save_png(as_image(image), path)
        run.log_image(
            key, path, step=step, metadata={"width": width, "height": height, "channels": channels}
        )

    def record_artifact(
        self, path: str | os.PathLike[str], kind: str, step: int, metadata: dict[str, Any]
    ) -> None:
        """Record a file the run wrote (``kind``: ``"checkpoint"``) by reference."""
        if self.open:
            self.run.log_artifact(path, kind, step=step, metadata=metadata)

    def config(
        self,
        given: dict[str, Any],
        flags: Any,
        hardware: Any,
        callbacks: list[Any],
        module: Any,
        datamodule: Any,
        world_size: int,
    ) -> dict[str, Any]:
        """The resolved configuration the run records (the run redacts secrets itself)."""
        recorded: dict[str, Any] = {}
        for flag, value in given.items():
            value = getattr(flags, flag, value)
            if isinstance(value, timedelta):
                value = str(value)
            elif isinstance(value, os.PathLike):
                value = os.fspath(value)
            recorded[flag] = value
        entries = self.entries
        recorded.update(
            accelerator=hardware.accelerator.name or type(hardware.accelerator).__name__,
            strategy=hardware.strategy.name or type(hardware.strategy).__name__,
            precision=hardware.precision.name or type(hardware.precision).__name__,
            devices=[str(d) for d in hardware.devices],
            # options as resolved: secret ones already replaced by ***
            logger=False
            if entries is None
            else [{"name": e.provider or e.label, **e.options} for e in entries],
            callbacks=[type(c).__qualname__ for c in callbacks],
            enable_checkpointing=flags.enable_checkpointing,
        )
        config: dict[str, Any] = {"trainer": recorded, "world_size": world_size}
        for key, obj in (("model", module), ("data", datamodule)):
            if obj is not None:
                config[key] = {"class_path": f"{type(obj).__module__}.{type(obj).__qualname__}"}
        return config

    def header(self, run: Run, resumed: bool) -> str:
        """One line: the run, where its files go, its loggers and the active plugins."""
        entries = self.entries or []
        loggers = ", ".join(e.label for e in entries) or "none (journal only)"
        active = dict.fromkeys(
            " ".join(filter(None, (p.distribution or p.name, p.version)))
            for p in self.plugins.plugins()
            if p.status == "active"
        )
        where = str(run.dir)
        with contextlib.suppress(ValueError):  # another drive on Windows
            relative = os.path.relpath(where)
            where = where if relative.startswith("..") else relative
        verb = "resumed run" if resumed else "run"
        return (
            f"ember {verb} {run.id} in {where}; loggers: {loggers}; "
            f"plugins: {', '.join(active) or 'none'}"
        )


def run_hyperparameters(module: Any, datamodule: Any) -> dict[str, Any]:
    """The datamodule's hyperparameters merged with the module's (as Lightning does);
    ``save_hyperparameters(logger=False)`` keeps an object's out."""
    params: dict[str, Any] = {}
    if datamodule is not None and getattr(datamodule, "_log_hyperparams", True):
        params.update(datamodule.hparams)
    if module is not None and getattr(module, "_log_hyperparams", True):
        clashes = [
            k for k, v in module.hparams.items() if k in params and repr(params[k]) != repr(v)
        ]
        if clashes:
            raise MisconfigurationError(
                f"the hyperparameters {clashes} are saved by both the module and the "
                "datamodule with different values, so the run cannot record one value: "
                "rename them in one of the two, or call save_hyperparameters(logger=False) "
                "on one"
            )
        params.update(module.hparams)
    return params


def _file_safe(key: str) -> str:
    """``key`` as one folder name: path separators and odd characters become ``_``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(key)).strip(".")
    return safe or "image"
