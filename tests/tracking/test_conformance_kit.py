"""The conformance kit catches broken loggers: a correct in-memory logger passes it,
one that loses a step and doubles steps on resume fails exactly those tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN_TESTS = textwrap.dedent(
    """
    import pytest
    from ember.hub import Logger
    from ember.hub.testing import LoggerConformance, ReadBack
    from ember.hub.tracking import Capabilities

    STORE = {}


    class MemoryLogger(Logger):
        capabilities = Capabilities(hyperparams=True, metrics=True, resume=True, offline=True)
        BROKEN = False

        def open(self, run):
            ref = run.resume_ref if run.resumed else run.id
            self.run = STORE.setdefault(ref, {"metrics": [], "params": {}, "status": None})
            if run.resumed and not self.BROKEN:
                self.run["metrics"] = [m for m in self.run["metrics"] if m[1] <= run.resume_step]
            return ref

        def log_hyperparams(self, params):
            self.run["params"].update(params)

        def log_metrics(self, records):
            # the broken one silently drops step 7, whatever the batching
            kept = [r for r in records if not (self.BROKEN and r.step == 7)]
            self.run["metrics"] += [(r.name, r.step, r.value) for r in kept]

        def finalize(self, status):
            self.run["status"] = status


    class BrokenLogger(MemoryLogger):
        BROKEN = True


    def read(logger, run):
        from ember.hub.tracking import flatten_params

        data = logger.run
        return ReadBack(metrics=list(data["metrics"]),
                        hyperparams=flatten_params(data["params"]), status=data["status"])


    class TestGood(LoggerConformance):
        @pytest.fixture
        def make_logger(self):
            return MemoryLogger

        def read_back(self, logger, run):
            return read(logger, run)


    class TestBroken(LoggerConformance):
        @pytest.fixture
        def make_logger(self):
            return BrokenLogger

        def read_back(self, logger, run):
            return read(logger, run)
    """
)


def test_kit_passes_a_good_logger_and_fails_a_broken_one(tmp_path: Path) -> None:
    (tmp_path / "test_plugin.py").write_text(PLUGIN_TESTS)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfs",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_plugin.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    out = proc.stdout
    failed = sorted(
        line.split("::")[-1].split(" ")[0] for line in out.splitlines() if line.startswith("FAILED")
    )
    assert failed == [
        "test_metrics_round_trip",
        "test_resume_reattaches_without_duplicates",
        "test_through_a_run",
    ], out
    assert all("TestBroken" in line for line in out.splitlines() if line.startswith("FAILED"))
    assert "skipped" in out  # text and artifacts are not declared: those tests skip
