"""ember's logger contract, checked against the real comet_ml SDK's offline archives."""

from __future__ import annotations

from pathlib import Path

import pytest
from comet_helpers import read_back
from ember.hub.testing import LoggerConformance, ReadBack, make_run_info
from ember.hub.tracking import Logger, MetricRecord, RunInfo
from ember_comet.logger import CometLogger


class TestCometOffline(LoggerConformance):
    provider_name = "comet"
    sdk_modules = ("comet_ml",)

    @pytest.fixture
    def make_logger(self, tmp_path: Path):
        return lambda: CometLogger(
            project_name="conformance",
            online=False,
            offline_directory=tmp_path / "archives",
            log_checkpoints="all",
        )

    def read_back(self, logger: Logger, run: RunInfo) -> ReadBack:
        assert isinstance(logger, CometLogger)
        return read_back(logger)


class TestCometOfflineInRunDir(TestCometOffline):
    """No ``offline_directory``: archives go to ``<run dir>/comet``."""

    @pytest.fixture
    def make_logger(self, tmp_path: Path):
        return lambda: CometLogger(online=False, log_checkpoints="all")


def _records(steps: range, shift: float = 0.0) -> list[MetricRecord]:
    return [MetricRecord("loss", 1.0 / (s + 1) + shift, s, 0.0) for s in steps]


def test_resume_reattaches_same_experiment(tmp_path: Path) -> None:
    """A resumed logger continues the same experiment key (a second archive); the steps
    past the resume point appear twice, as Comet cannot delete them."""
    run = make_run_info(tmp_path / "runs")
    first = CometLogger(online=False)
    ref = first.open(run)
    first.log_metrics(_records(range(10)))
    first.finalize("interrupted")
    resumed = RunInfo(**{**run.__dict__, "resumed": True, "resume_ref": ref, "resume_step": 5})
    second = CometLogger(online=False)
    assert second.open(resumed) == ref
    second.log_metrics(_records(range(6, 12), shift=10.0))
    second.finalize("success")
    back = read_back(second)
    assert back.status == "success"
    assert [s for _, s, _ in back.metrics] == [*range(10), *range(6, 12)]
    assert back.metrics[-1] == ("loss", 11, pytest.approx(1 / 12 + 10.0))


def test_capabilities_follow_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline loggers are offline; without ``online``, COMET_API_KEY decides."""
    assert CometLogger(online=False).capabilities.offline
    assert not CometLogger(online=True).capabilities.offline
    assert CometLogger().capabilities.offline
    monkeypatch.setenv("COMET_API_KEY", "from-the-environment")
    assert not CometLogger().capabilities.offline
