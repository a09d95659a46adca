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

Tests of capabilities the logger does not declare are skipped. As a pytest plugin
(``pytest_plugins = ["ember.hub.testing"]`` in a root ``conftest.py``) the module also
gives any test the ``ember_run_info`` fixture. A tracker whose API
cannot do what one test needs overrides that test and skips it with the reason.
"""

from __future__ import annotations

import math
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
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
    mapped back to ember's names, or None when the tracker does not record one.
    """

    metrics: list[tuple[str, int, float]] = field(default_factory=list)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    texts: list[tuple[str, int | None, str]] = field(default_factory=list)
    artifacts: list[tuple[str, str, bytes]] = field(default_factory=list)
    status: str | None = None


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
    steps: range, names: tuple[str, ...] = ("loss", "acc"), shift: float = 0.0
) -> list[MetricRecord]:
    now = time.time()
    return [
        MetricRecord(name, _value(name, step, shift), step, now + step)
        for step in steps
        for name in names
    ]


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

    def read_back(self, logger: Logger, run: RunInfo) -> ReadBack:
        """Read what ``logger`` stored for ``run``; every subclass implements this."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement read_back(logger, run) -> ReadBack"
        )

    @pytest.fixture
    def ember_run_info(self, tmp_path: Path) -> RunInfo:
        """A :class:`RunInfo` for a new run in a temporary directory."""
        return make_run_info(tmp_path / "runs")

    # ------------------------------------------------------------------ helpers
    def _caps(self, logger: Logger) -> Capabilities:
        return type(logger).capabilities

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

    def test_provider_record(self, make_logger: Callable[[], Logger]) -> None:
        """The plugin registers the provider with a lazy factory and an options schema."""
        if self.provider_name is None:
            pytest.skip("set provider_name to check the registered record")
        from ember.hub import LoggerSpec, Option, get_plugin_manager

        spec = get_plugin_manager().get("logger", self.provider_name)
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

    def test_resume_reattaches_without_duplicates(
        self, make_logger: Callable[[], Logger], ember_run_info: RunInfo
    ) -> None:
        """Resuming at step 5 re-attaches to the same tracker run; steps 6.. are replaced,
        not stored twice; steps up to 5 are kept."""
        first = make_logger()
        self._require(first, "resume")
        ref = first.open(ember_run_info)
        first.log_metrics(_records(range(10)))
        first.finalize("interrupted")

        resumed = RunInfo(
            **{**ember_run_info.__dict__, "resumed": True, "resume_ref": ref, "resume_step": 5}
        )
        second = make_logger()
        ref2 = second.open(resumed)
        assert ref2 == ref, "the resumed logger must re-attach to the same tracker run"
        second.log_metrics(_records(range(6, 12), shift=10.0))
        second.finalize("success")

        back = self.read_back(second, resumed)
        keys = [(n, int(s)) for n, s, _ in back.metrics]
        assert len(keys) == len(set(keys)), "steps past the checkpoint were stored twice"
        got = self._metric_map(back)
        for name in ("loss", "acc"):
            for step in range(6):
                assert _same(got[(name, step)], _value(name, step), self.rel_tol)
            for step in range(6, 12):
                assert _same(got[(name, step)], _value(name, step, 10.0), self.rel_tol)

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


__all__ = ["LoggerConformance", "ReadBack", "ember_run_info", "make_run_info"]
