"""FSDP2 (``fully_shard``) with two real processes on gloo: the weights of one process
with the same global batch, and a sharded checkpoint (a folder written by both processes
through ``torch.distributed.checkpoint``) that a later run resumes from exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from dist_helpers import check, results, run_script
from ember.trainer.distributed.fsdp import META_FILE, fsdp_available
from ember.trainer.testing import StrategyConformance

pytestmark = pytest.mark.skipif(
    not fsdp_available(),
    reason=f"torch {torch.__version__} has no FSDP2 (torch.distributed.fsdp.fully_shard)",
)

SHARDED = json.dumps({"name": "fsdp", "state_dict_type": "sharded"})


class TestFSDPInOneProcess(StrategyConformance):
    strategy = "fsdp"


def _same(a: dict, b: dict) -> None:
    for x, y in zip(a["weights"], b["weights"], strict=True):
        torch.testing.assert_close(torch.tensor(x), torch.tensor(y), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_fsdp_two_processes_and_a_sharded_checkpoint_round_trip(tmp_path: Path) -> None:
    """2 epochs in one go equal 1 epoch, then a resume from its sharded ``last.ckpt``
    folder for the second; both equal one process with the same global batch."""
    single = tmp_path / "single"
    check(run_script(single, "--devices", "1", "--batch", "16", "--epochs", "2"))
    straight = tmp_path / "straight"
    check(run_script(straight, "--devices", "2", "--batch", "8", "--strategy", SHARDED))
    reference = results(single)[0]
    for rank in results(straight).values():
        _same(rank, reference)

    first = tmp_path / "first"
    check(
        run_script(first, "--devices", "2", "--batch", "8", "--strategy", SHARDED, "--epochs", "1")
    )
    (last,) = (first / "root" / "ember_runs").glob("*/checkpoints/last.ckpt")  # the run's
    assert last.is_dir() and (last / META_FILE).is_file()
    shards = sorted(p.name for p in last.glob("*.distcp"))
    assert len(shards) == 2, shards  # one file per process
    resumed = tmp_path / "resumed"
    check(
        run_script(
            resumed,
            "--devices",
            "2",
            "--batch",
            "8",
            "--strategy",
            SHARDED,
            "--epochs",
            "2",
            "--ckpt-path",
            str(last),
        )
    )
    for rank in results(resumed).values():
        assert rank["global_step"] == reference["global_step"]
        _same(rank, reference)
