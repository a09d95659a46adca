"""ember.hub.testing: the conformance kit for logger plugins, as a pytest plugin module.

Subclass :class:`LoggerConformance` in your plugin's tests, supply a ``make_logger``
fixture (a zero-argument callable that builds a fresh logger writing somewhere you can
read) and a :meth:`~LoggerConformance.read_back` method, and inherit every test of the
contract::

    import pytest
    from ember.hub.testing import LoggerConformance, ReadBack

    class TestMyLogger(LoggerConformance):
        provider_name = "mylogger"

        @pytest.fixture
        def make_logger(self, tmp_path):
            return lambda: MyLogger(root=str(tmp_path))

        def read_back(self, logger, run):
            ...  # read what the tracker stored, with the tracker's own reader
            return ReadBack(metrics=[...], hyperparams={...}, ...)

Tests of capabilities the logger does not declare are skipped (reattach and rewind are
tested only where declared). Set ``sdk_modules`` to the top-level modules of the tracker's
SDK to check that discovering the plugin imports none of them. A tracker whose API
cannot do what one test needs overrides that test and skips it with the reason.

The kit around the suites (:mod:`ember.hub.testing.kit`): :func:`isolated_plugin_manager`,
:func:`install_distribution` (a real ``pip install`` into a temporary folder, discovered
through real entry points), :func:`fresh_venv` (a new virtual environment holding only the
running torch, to install a plugin on its own) and, as a pytest plugin (``pytest_plugins =
["ember.hub.testing"]`` in a root ``conftest.py``), the fixtures ``ember_run_info``,
``ember_plugin_manager``, ``ember_install`` and ``ember_venv``. ``docs/testing-plugins.md``
walks through them.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ember.hub.manager import PluginManager, get_plugin_manager
from ember.hub.testing.kit import (
    InstalledDistribution,
    VirtualEnv,
    ember_install,
    ember_plugin_manager,
    ember_venv,
    fresh_venv,
    install_distribution,
    isolated_plugin_manager,
    missing_fixture,
    running_torch,
)
from ember.hub.tracking import (
    STATUSES,
    Capabilities,
    DeliveryPolicy,
    Logger,
    MetricRecord,
    Run,
    RunInfo,
    TrackingWarning,
    flatten_params,
)
from ember.hub.tracking.images import Pixels, encode_png

HYPERPARAMS: dict[str, Any] = {
    "lr": 0.001,
    "batch_size": 32,
    "model": {"hidden": 128, "activation": "relu", "dropout": 0.1},
    "optimizer": {"name": "adam", "betas": {"beta1": 0.9, "beta2": 0.999}},
    "seed": 7,
}


@dataclass
class ReadBack:
    """What a tracker holds for one run, read with the tracker's own reader.

    ``metrics``: every stored ``(name, step, value)``, duplicates included;
    ``hyperparams``: flattened with ``/`` (``{"model/hidden": 128}``), values as the
    tracker returns them (numbers may come back as text); ``texts``: ``(key, step,
    text)``; ``artifacts``: ``(kind, name, content bytes)``; ``status``: the final status
    mapped back to ember's names, or None when the tracker does not record one;
    ``images``: ``(key, step, PNG bytes)`` as the tracker returns them (re-encoded PNGs
    are fine: the kit compares the decoded size).
    """

    metrics: list[tuple[str, int, float]] = field(default_factory=list)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    texts: list[tuple[str, int | None, str]] = field(default_factory=list)
    artifacts: list[tuple[str, str, bytes]] = field(default_factory=list)
    status: str | None = None
    images: list[tuple[str, int | None, bytes]] = field(default_factory=list)


def make_run_info(root: str | Path, **changes: Any) -> RunInfo:
    """A fresh :class:`RunInfo` whose directory is under ``root``."""
    run_id = f"conformance-{uuid.uuid4().hex[:8]}"
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    info = RunInfo(id=run_id, name="conformance", dir=str(run_dir), started_at=time.time())
    return RunInfo(**{**info.__dict__, **changes})


@pytest.fixture
def ember_run_info(tmp_path: Path) -> RunInfo:
    """A :class:`RunInfo` for a new run in a temporary directory."""
    return make_run_info(tmp_path / "runs")


def _records(
    steps: range, names: tuple[str, ...] = ("loss", "acc"), shift: float = 0.0, seq0: int = 0
) -> list[MetricRecord]:
    """Records of ``names`` at ``steps``. ``seq`` follows from the step (plus ``seq0``,
    for records logged after a rewind), so the same call returns the same identities: a
    re-delivery."""
    now = time.time()
    return [
        MetricRecord(
            name, _value(name, step, shift), step, now + step, seq0 + step * len(names) + i + 1
        )
        for step in steps
        for i, name in enumerate(names)
    ]


def _png(path: Path, width: int, height: int) -> bytes:
    """Write an RGB test card of ``width`` x ``height`` at ``path``; return its bytes."""
    data = bytes(
        v
        for y in range(height)
        for x in range(width)
        for v in (x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), 128)
    )
    payload = encode_png(Pixels(height, width, 3, data))
    path.write_bytes(payload)
    return payload


def _png_dims(payload: bytes) -> tuple[int, int]:
    import struct

    assert payload[:8] == b"\x89PNG\r\n\x1a\n", "the image read back is not a PNG"
    width, height = struct.unpack(">II", payload[16:24])
    return width, height


def _value(name: str, step: int, shift: float = 0.0) -> float:
    base = 1.0 / (step + 1) if name == "loss" else step / 100.0
    return base + shift


def _same(a: Any, b: Any, rel: float) -> bool:
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
    return math.isclose(x, y, rel_tol=rel, abs_tol=rel)


class LoggerConformance:
    """The logger contract as tests. Subclass it; see the module docstring."""

    #: the provider name the plugin registers, to check its record and options schema
    provider_name: ClassVar[str | None] = None
    #: relative tolerance for values read back (float32 trackers round)
    rel_tol: ClassVar[float] = 1e-6
    #: top-level module names of the tracker's SDK (``("tensorboard",)``): discovering the
    #: plugin and loading its logger factory must import none of them
    sdk_modules: ClassVar[tuple[str, ...]] = ()

    def read_back(self, logger: Logger, run: RunInfo) -> ReadBack:
        """Read what ``logger`` stored for ``run``; every subclass implements this."""
        missing_fixture(
            self,
            "read_back(self, logger, run) -> ReadBack",
            "read what the logger stored for the run with the tracker's own reader",
        )

    @pytest.fixture
    def make_logger(self) -> Callable[[], Logger]:
        """Required: a zero-argument callable that builds a fresh logger."""
        missing_fixture(
            self,
            "a make_logger fixture",
            "return a zero-argument callable that builds a fresh logger writing somewhere "
            "read_back can read",
        )

    @pytest.fixture
    def plugin_manager(self) -> PluginManager:
        """The manager the provider is looked up in (override for an isolated one)."""
        return get_plugin_manager()

    @pytest.fixture
    def ember_run_info(self, tmp_path: Path) -> RunInfo:
        """A :class:`RunInfo` for a new run in a temporary directory."""
        return make_run_info(tmp_path / "runs")

    # ------------------------------------------------------------------ helpers
    def _caps(self, logger: Logger) -> Capabilities:
        return logger.capabilities

    def _require(self, logger: Logger, capability: str) -> None:
        if not getattr(self._caps(logger), capability):
            pytest.skip(f"{type(logger).__name__} does not declare {capability}")

    def _metric_map(self, back: ReadBack) -> dict[tuple[str, int], float]:
        return {(n, int(s)): v for n, s, v in back.metrics}

    # ------------------------------------------------------------------ the contract
    def test_is_a_logger(self, make_logger: Callable[[], Logger]) -> None:
        """The object subclasses ember.hub.Logger and declares its capabilities."""
        from ember.hub.tracking.logger import check_logger

        logger = make_logger()
        check_logger(logger, type(self).__name__)
        assert isinstance(self._caps(logger), Capabilities)
        assert self._caps(logger).metrics, "every logger takes metrics"

    def test_provider_record(
        self, make_logger: Callable[[], Logger], plugin_manager: PluginManager
    ) -> None:
        """The plugin registers the provider with a lazy factory and an options schema."""
        if self.provider_name is None:
            pytest.skip("set provider_name to check the registered record")
        from ember.hub import LoggerSpec, Option

        spec = plugin_manager.get("logger", self.provider_name)
        assert isinstance(spec, LoggerSpec)
        assert spec.description, "give the provider a one-line description"
        for key, opt in spec.options.items():
            assert isinstance(opt, Option), f"option {key!r} must be an ember.hub.Option"
        factory = spec.load()
        if isinstance(factory, type):
            assert issubclass(factory, Logger)
            assert factory is type(make_logger()) or issubclass(type(make_logger()), factory)

    def test_metrics_round_trip(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo
    ) -> None:
        """Every metric record of several batches arrives once, with its step and value."""
        logger = make_logger()
        logger.open(ember_run_info)
        sent = _records(range(0, 10)), _records(range(10, 25)), _records(range(25, 30))
        for batch in sent:
            logger.log_metrics(batch)
        logger.finalize("success")
        back = self.read_back(logger, ember_run_info)
        keys = [(n, int(s)) for n, s, _ in back.metrics]
        assert len(keys) == len(set(keys)), "a (name, step) was stored twice"
        got = self._metric_map(back)
        expected = {(r.name, r.step): r.value for batch in sent for r in batch}
        assert set(got) == set(expected)
        for key, value in expected.items():
            assert _same(got[key], value, self.rel_tol), (key, got[key], value)

    def test_a_copy_made_before_open_delivers(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo
    ) -> None:
        """With ``logger_delivery="process"`` ember pickles the logger before ``open`` and
        a copy delivers, in ember's delivery process: the copy must pickle and work."""
        try:
            logger = pickle.loads(pickle.dumps(make_logger()))
        except Exception as exc:
            pytest.fail(
                f"the logger cannot be pickled before open ({type(exc).__name__}: {exc}): "
                "logger_delivery='process' copies it into another process. Build SDK "
                "objects, locks and connections in open(), not in __init__"
            )
        logger.open(ember_run_info)
        sent = _records(range(0, 5))
        logger.log_metrics(sent)
        logger.finalize("success")
        got = self._metric_map(self.read_back(logger, ember_run_info))
        assert set(got) == {(r.name, r.step) for r in sent}

    def test_hyperparams_nested(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo
    ) -> None:
        """Nested hyperparameters arrive whole (compared flattened with '/')."""
        logger = make_logger()
        self._require(logger, "hyperparams")
        logger.open(ember_run_info)
        logger.log_hyperparams(HYPERPARAMS)
        logger.finalize("success")
        back = self.read_back(logger, ember_run_info)
        for key, value in flatten_params(HYPERPARAMS).items():
            assert key in back.hyperparams, f"hyperparameter {key!r} missing"
            assert _same(back.hyperparams[key], value, self.rel_tol), key

    def test_text(self, make_logger: Callable[[], Logger], ember_run_info: RunInfo) -> None:
        """Texts arrive with their key and step, multi-line text intact."""
        logger = make_logger()
        self._require(logger, "text")
        logger.open(ember_run_info)
        logger.log_text("note", "first line\nsecond, with a comma", step=3)
        logger.log_text("summary", "done", step=None)
        logger.finalize("success")
        texts = self.read_back(logger, ember_run_info).texts
        assert ("note", 3, "first line\nsecond, with a comma") in texts
        assert any(k == "summary" and t == "done" for k, _, t in texts)

    def test_artifact(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo, tmp_path: Path
    ) -> None:
        """An artifact arrives with its kind, and its bytes can be read back."""
        logger = make_logger()
        self._require(logger, "artifacts")
        payload = bytes(range(256)) * 4
        path = tmp_path / "weights.bin"
        path.write_bytes(payload)
        logger.open(ember_run_info)
        logger.log_artifact(
            str(path), "checkpoint", name="weights.bin", step=10, metadata={"epoch": 1}
        )
        logger.finalize("success")
        artifacts = self.read_back(logger, ember_run_info).artifacts
        assert ("checkpoint", "weights.bin", payload) in artifacts

    @pytest.mark.parametrize("status", STATUSES)
    def test_finalize_status(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo, status: str
    ) -> None:
        """The final status reaches the tracker (when it records one)."""
        logger = make_logger()
        logger.open(ember_run_info)
        logger.log_metrics(_records(range(2)))
        logger.finalize(status)
        back = self.read_back(logger, ember_run_info)
        if back.status is None:
            pytest.skip("this tracker does not record a final status")
        assert back.status == status

    def _resumed(self, info: RunInfo, ref: str | None, step: int | None) -> RunInfo:
        return RunInfo(**{**info.__dict__, "resumed": True, "resume_ref": ref, "resume_step": step})

    def _assert_once(self, back: ReadBack, what: str) -> dict[tuple[str, int], float]:
        keys = [(n, int(s)) for n, s, _ in back.metrics]
        doubled = sorted({k for k in keys if keys.count(k) > 1})
        assert not doubled, f"{what}: stored twice: {doubled[:5]}"
        return self._metric_map(back)

    def test_reattach_continues_the_same_tracker_run(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo
    ) -> None:
        """A logger re-opened after a crash (no checkpoint step to rewind to) re-attaches
        to the same tracker run and continues it: the old steps and the new are there."""
        first = make_logger()
        self._require(first, "reattach")
        ref = first.open(ember_run_info)
        assert ref is not None, "a logger that declares reattach must return a reference"
        first.log_metrics(_records(range(10)))
        first.finalize("interrupted")

        resumed = self._resumed(ember_run_info, ref, None)
        second = make_logger()
        assert second.open(resumed) == ref, "re-attach must return the same reference"
        second.log_metrics(_records(range(10, 14)))
        second.finalize("success")
        got = self._assert_once(self.read_back(second, resumed), "re-attach")
        for name in ("loss", "acc"):
            for step in range(14):
                assert _same(got[(name, step)], _value(name, step), self.rel_tol), (name, step)

    def test_rewind_drops_steps_past_the_checkpoint(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo
    ) -> None:
        """Resuming at step 5 re-attaches to the same tracker run; steps 6.. are replaced,
        not stored twice; steps up to 5 are kept."""
        first = make_logger()
        self._require(first, "rewind")
        ref = first.open(ember_run_info)
        first.log_metrics(_records(range(10)))
        first.finalize("interrupted")

        resumed = self._resumed(ember_run_info, ref, 5)
        second = make_logger()
        ref2 = second.open(resumed)
        assert ref2 == ref, "the resumed logger must re-attach to the same tracker run"
        second.log_metrics(_records(range(6, 12), shift=10.0, seq0=100))
        second.finalize("success")

        got = self._assert_once(self.read_back(second, resumed), "rewind")
        for name in ("loss", "acc"):
            for step in range(6):
                assert _same(got[(name, step)], _value(name, step), self.rel_tol)
            for step in range(6, 12):
                assert _same(got[(name, step)], _value(name, step, 10.0), self.rel_tol)

    def test_redelivered_batches_are_stored_once(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo
    ) -> None:
        """Delivery is at-least-once: a batch that arrives twice (a retried call) is stored
        once; so are texts and images delivered twice."""
        logger = make_logger()
        caps = self._caps(logger)
        logger.open(ember_run_info)
        a, b = _records(range(0, 5)), _records(range(5, 8))
        logger.log_metrics(a)
        logger.log_metrics(a)  # the retry of a call whose success went unrecorded
        logger.log_metrics(b)
        logger.log_metrics(b[3:])  # a partial batch again
        if caps.text:
            logger.log_text("note", "once", step=2)
            logger.log_text("note", "once", step=2)
        image = Path(ember_run_info.dir) / "redelivered.png"
        if caps.images:
            _png(image, 4, 3)
            meta = {"width": 4, "height": 3, "channels": 3}
            logger.log_image("card", str(image), step=2, metadata=meta)
            logger.log_image("card", str(image), step=2, metadata=meta)
        logger.finalize("success")
        back = self.read_back(logger, ember_run_info)
        got = self._assert_once(back, "re-delivery")
        assert set(got) == {(r.name, r.step) for r in a + b}
        if caps.text:
            assert [t for t in back.texts if t[0] == "note"] == [("note", 2, "once")]
        if caps.images:
            assert [(k, s) for k, s, _ in back.images if k == "card"] == [("card", 2)]

    def test_redelivery_after_reattach_is_stored_once(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo
    ) -> None:
        """The process died after a call but before ember noted it: a fresh logger that
        re-attaches receives that batch again, and stores it once."""
        first = make_logger()
        self._require(first, "reattach")
        ref = first.open(ember_run_info)
        first.log_metrics(_records(range(0, 5)))
        last = _records(range(5, 8))
        first.log_metrics(last)
        first.finalize("failed")

        resumed = self._resumed(ember_run_info, ref, None)
        second = make_logger()
        second.open(resumed)
        second.log_metrics(last)  # delivered again
        second.log_metrics(_records(range(8, 10)))
        second.finalize("success")
        got = self._assert_once(self.read_back(second, resumed), "re-delivery after re-attach")
        assert set(got) == {(n, s) for s in range(10) for n in ("loss", "acc")}

    def test_images(self, make_logger: Callable[[], Logger], ember_run_info: RunInfo) -> None:
        """Images (PNG files in the run directory) arrive under their key and step."""
        logger = make_logger()
        self._require(logger, "images")
        folder = Path(ember_run_info.dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        logger.open(ember_run_info)
        for step, (w, h) in enumerate([(8, 6), (5, 7)]):
            path = folder / f"card-{step}.png"
            _png(path, w, h)
            logger.log_image(
                "samples/card", str(path), step=step, metadata={"width": w, "height": h}
            )
        logger.finalize("success")
        images = self.read_back(logger, ember_run_info).images
        got = sorted((k, s, _png_dims(payload)) for k, s, payload in images)
        assert got == [("samples/card", 0, (8, 6)), ("samples/card", 1, (5, 7))], got

    def test_one_tracker_run_across_stages(
        self, make_logger: Callable[[], Logger], tmp_path: Path
    ) -> None:
        """fit then test in one Trainer: one open, one finalize, every record once."""
        logger = make_logger()
        calls: list[str] = []
        for method in ("open", "finalize"):
            original = getattr(logger, method)

            def counted(*args: Any, _m: str = method, _f: Any = original, **kw: Any) -> Any:
                calls.append(_m)
                return _f(*args, **kw)

            setattr(logger, method, counted)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrackingWarning)
            run = Run.start(
                tmp_path / "root", loggers=[logger], policy=DeliveryPolicy(backoff=0.05)
            )
        run.begin_stage("fit")
        for step in range(10):
            run.log_metrics({"loss": _value("loss", step)}, step)
        fit = run.end_stage("fit", "success", timeout=60)
        assert fit.loggers[0].complete, str(fit)
        run.begin_stage("test")
        run.log_metrics({"test_acc": 0.5}, 10)
        report = run.finish("success", timeout=60)
        assert report.loggers[0].complete, str(report)
        assert calls == ["open", "finalize"]
        back = self.read_back(logger, run.info)
        got = self._assert_once(back, "two stages")
        assert set(got) == {("loss", s) for s in range(10)} | {("test_acc", 10)}

    def test_escape_hatch_runs_in_order_on_the_worker(
        self, make_logger: Callable[[], Logger], tmp_path: Path
    ) -> None:
        """``run.loggers[i].call(fn)`` runs ``fn(logger.experiment)`` on the logger's
        worker thread, after the records logged before it."""
        logger = make_logger()
        self._require(logger, "experiment")
        seen: list[Any] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrackingWarning)
            run = Run.start(
                tmp_path / "root", loggers=[logger], policy=DeliveryPolicy(backoff=0.05)
            )
        run.log_metrics({"loss": 1.0}, 1)
        future = run.loggers[0].call(
            lambda exp: seen.append((exp, threading.current_thread().name)) or "done"
        )
        run.log_metrics({"loss": 0.5}, 2)
        assert future.result(timeout=60) == "done"
        report = run.finish("success", timeout=60)
        assert report.loggers[0].complete, str(report)
        experiment, thread = seen[0]
        assert experiment is not None
        assert thread.startswith("ember-logger-"), thread

    def test_discovery_imports_no_sdk(self, make_logger: Callable[[], Logger]) -> None:
        """Discovering the plugin and loading its logger factory import no tracker SDK
        (checked in a fresh interpreter)."""
        if not self.sdk_modules or self.provider_name is None:
            pytest.skip("set provider_name and sdk_modules to check the plugin's imports")
        code = (
            "import json, sys\n"
            "from ember.hub import get_plugin_manager\n"
            f"spec = get_plugin_manager().get('logger', {self.provider_name!r})\n"
            "spec.load()\n"
            f"sdk = {list(self.sdk_modules)!r}\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in sdk)))\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "EMBER_DISABLE_PLUGIN_AUTOLOAD"}
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        imported = json.loads(proc.stdout.strip().splitlines()[-1])
        assert imported == [], f"discovery imported the SDK: {imported}"

    def test_through_a_run(self, make_logger: Callable[[], Logger], tmp_path: Path) -> None:
        """Driven by ember's own pipeline (journal, worker thread, report), the logger
        receives everything and the report says so."""
        logger = make_logger()
        caps = self._caps(logger)
        with warnings.catch_warnings():  # capabilities it lacks are warned about once
            warnings.simplefilter("ignore", TrackingWarning)
            run = Run.start(
                tmp_path / "root",
                loggers=[logger],
                policy=DeliveryPolicy(backoff=0.05),
                config={"conformance": True},
            )
        if caps.hyperparams:
            run.log_hyperparams({"lr": 0.01, "model": {"hidden": 8}})
        for step in range(40):
            run.log_metrics({"loss": _value("loss", step), "acc": _value("acc", step)}, step)
        report = run.finish("success", timeout=60)
        entry = report.loggers[0]
        assert entry.complete, str(report)
        assert entry.pending == 0 and entry.failed == 0
        back = self.read_back(logger, run.info)
        got = self._metric_map(back)
        assert len(got) == 80
        if caps.hyperparams:
            assert _same(back.hyperparams.get("model/hidden"), 8, self.rel_tol)


__all__ = [
    "InstalledDistribution",
    "LoggerConformance",
    "ReadBack",
    "VirtualEnv",
    "ember_install",
    "ember_plugin_manager",
    "ember_run_info",
    "ember_venv",
    "fresh_venv",
    "install_distribution",
    "isolated_plugin_manager",
    "make_run_info",
    "missing_fixture",
    "running_torch",
]
