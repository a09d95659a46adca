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
    from pathlib import Path
    from ember.hub import Logger
    from ember.hub.testing import LoggerConformance, ReadBack
    from ember.hub.tracking import Capabilities

    STORE = {}


    class MemoryLogger(Logger):
        capabilities = Capabilities(hyperparams=True, metrics=True, text=True, images=True,
                                    reattach=True, rewind=True, offline=True, experiment=True)
        DROP_STEP_7 = DEDUP = REWIND = True
        DROP_STEP_7 = False

        def open(self, run):
            ref = run.resume_ref if run.resumed else run.id
            self.run = STORE.setdefault(
                ref, {"metrics": [], "params": {}, "texts": [], "images": [], "status": None})
            if run.resumed and run.resume_step is not None and self.REWIND:
                self.run["metrics"] = [m for m in self.run["metrics"] if m[1] <= run.resume_step]
            self.max_seq = 0
            return ref

        @property
        def experiment(self):
            return self.run

        def log_hyperparams(self, params):
            self.run["params"].update(params)

        def log_metrics(self, records):
            held = {(n, s) for n, s, _ in self.run["metrics"]}
            for r in records:
                if self.DROP_STEP_7 and r.step == 7:
                    continue
                if self.DEDUP and (r.seq <= self.max_seq or (r.name, r.step) in held):
                    continue
                self.max_seq = max(self.max_seq, r.seq)
                self.run["metrics"].append((r.name, r.step, r.value))

        def log_text(self, key, text, *, step):
            if not (self.DEDUP and (key, step, text) in self.run["texts"]):
                self.run["texts"].append((key, step, text))

        def log_image(self, key, path, *, step, metadata):
            entry = (key, step, Path(path).read_bytes())
            if not (self.DEDUP and entry in self.run["images"]):
                self.run["images"].append(entry)

        def finalize(self, status):
            self.run["status"] = status


    class DropsAStep(MemoryLogger):
        DROP_STEP_7 = True


    class Doubles(MemoryLogger):
        DEDUP = False


    class CannotRewind(MemoryLogger):
        REWIND = False


    def read(logger, run):
        from ember.hub.tracking import flatten_params

        data = logger.run
        return ReadBack(metrics=list(data["metrics"]), hyperparams=flatten_params(data["params"]),
                        texts=list(data["texts"]), images=list(data["images"]),
                        status=data["status"])


    def case(cls):
        class Case(LoggerConformance):
            @pytest.fixture
            def make_logger(self):
                return cls

            def read_back(self, logger, run):
                return read(logger, run)

        return Case


    TestGood = case(MemoryLogger)
    TestDropsAStep = case(DropsAStep)
    TestDoubles = case(Doubles)
    TestCannotRewind = case(CannotRewind)
    """
)


def test_kit_passes_a_good_logger_and_fails_each_broken_one(tmp_path: Path) -> None:
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
    failed: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("FAILED"):
            _, cls, test = line.split(" ")[1].split("::")
            failed.setdefault(cls, []).append(test)
    assert "TestGood" not in failed, out
    assert sorted(failed.pop("TestDropsAStep")) == [
        "test_metrics_round_trip",
        "test_one_tracker_run_across_stages",
        "test_reattach_continues_the_same_tracker_run",
        "test_redelivered_batches_are_stored_once",
        "test_redelivery_after_reattach_is_stored_once",
        "test_rewind_drops_steps_past_the_checkpoint",
        "test_through_a_run",
    ], out
    assert sorted(failed.pop("TestDoubles")) == [
        "test_redelivered_batches_are_stored_once",
        "test_redelivery_after_reattach_is_stored_once",
    ], out
    assert failed.pop("TestCannotRewind") == ["test_rewind_drops_steps_past_the_checkpoint"], out
    assert not failed, out
    assert "does not declare artifacts" in out  # undeclared capabilities skip
