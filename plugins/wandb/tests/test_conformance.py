"""ember's logger contract, checked against the real wandb SDK in offline mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from ember.hub.testing import LoggerConformance, ReadBack, make_run_info
from ember.hub.tracking import Logger, MetricRecord, RunInfo
from ember_wandb.logger import WandbLogger
from wandb_helpers import read_back


class TestWandbOffline(LoggerConformance):
    provider_name = "wandb"
    sdk_modules = ("wandb",)

    @pytest.fixture
    def make_logger(self, tmp_path: Path):
        return lambda: WandbLogger(
            project="conformance", mode="offline", dir=tmp_path / "wb", log_checkpoints="all"
        )

    def read_back(self, logger: Logger, run: RunInfo) -> ReadBack:
        assert isinstance(logger, WandbLogger)
        return read_back(logger)


class TestWandbOfflineInRunDir(TestWandbOffline):
    """No ``dir``: W&B writes under ember's run directory."""

    @pytest.fixture
    def make_logger(self, tmp_path: Path):
        return lambda: WandbLogger(project="conformance", mode="offline", log_checkpoints="all")


def _records(steps: range, shift: float = 0.0) -> list[MetricRecord]:
    return [MetricRecord("loss", 1.0 / (s + 1) + shift, s, 0.0) for s in steps]


def test_resume_reattaches_same_run(tmp_path: Path) -> None:
    """A resumed logger re-opens the same W&B run id; both processes' rows are kept and
    the steps past the resume point appear twice (W&B cannot rewind offline)."""
    run = make_run_info(tmp_path / "runs")
    first = WandbLogger(mode="offline")
    ref = first.open(run)
    first.log_metrics(_records(range(10)))
    first.finalize("interrupted")
    resumed = RunInfo(**{**run.__dict__, "resumed": True, "resume_ref": ref, "resume_step": 5})
    second = WandbLogger(mode="offline")
    assert second.open(resumed) == ref
    second.log_metrics(_records(range(6, 12), shift=10.0))
    second.finalize("success")
    back = read_back(second)
    assert back.status == "success"
    steps = [s for _, s, _ in back.metrics]
    assert steps == [*range(10), *range(6, 12)]
    assert back.metrics[-1] == ("loss", 11, pytest.approx(1 / 12 + 10.0))


def test_capabilities_follow_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline and disabled loggers are offline; online is not; WANDB_MODE is the default."""
    assert WandbLogger(mode="offline").capabilities.offline
    assert WandbLogger(mode="disabled").capabilities.offline
    assert not WandbLogger(mode="online").capabilities.offline
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert WandbLogger().mode == "offline"
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ValueError, match="WANDB_MODE='sometimes'"):
        WandbLogger()
