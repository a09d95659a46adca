"""DDP with two real processes on gloo: launched by ember, under torchrun (one and two
nodes), against one process with the same global batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dist_helpers import TIMEOUT_S, TRAIN, check, metric_rows, results, run_script
from ember.trainer.distributed.environments import free_port


def _weights(result: dict) -> list[torch.Tensor]:
    return [torch.tensor(w, dtype=torch.float64) for w in result["weights"]]


def _assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    for x, y in zip(_weights(a), _weights(b), strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-5)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One process, batches of 16: the reference."""
    out = tmp_path_factory.mktemp("single")
    check(run_script(out, "--devices", "1", "--batch", "16"))
    return results(out)[0]


@pytest.mark.slow
def test_ddp_launched_by_ember_matches_one_process(single: dict, tmp_path: Path) -> None:
    """devices=2 on the CPU: ember starts the second process; each sees half of every
    global batch (a DistributedSampler was inserted), the weights equal one process's with
    the same global batch, metrics are reduced and logged once, checkpoints written once."""
    out = tmp_path / "ddp"
    proc = run_script(
        out, "--devices", "2", "--batch", "8", "--strategy", "counting_ddp", "--then-validate"
    )
    check(proc)
    ranks = results(out)
    assert sorted(ranks) == [0, 1]
    assert proc.stderr.count("rank 1 done") == 1  # no second set of processes
    assert proc.stdout.count("fit finished: max_epochs=2 reached") == 1  # rank zero only
    for rank, result in ranks.items():
        assert result["validated"]["world_size"] == 2 and result["validated"]["rank"] == rank
    assert ranks[0]["validated"]["val_loss"] == ranks[1]["validated"]["val_loss"]
    for rank in ranks.values():
        assert rank["world_size"] == 2
        assert rank["seen"] == single["seen"] // 2  # its share, over both epochs
        assert rank["global_step"] == single["global_step"]
        _assert_same_weights(rank, single)
        assert rank["gathered"] == [[0.0, 1.0], [0.0, 1.0]]
        assert rank["metrics"]["rank_sum"] == 1.0  # sync_dist sum over ranks 0 and 1
    assert ranks[0]["metrics"]["train_loss"] == ranks[1]["metrics"]["train_loss"]
    assert ranks[0]["checkpoint_writes"] > 0 and ranks[1]["checkpoint_writes"] == 0
    assert ranks[0]["log_dir"] == ranks[1]["log_dir"]  # rank zero's run dir, broadcast
    rows = [r for r in metric_rows(out) if r["train_loss"]]
    assert len(rows) == single["global_step"]  # one row per step: logged by rank zero only
    assert {r["rank_sum"] for r in rows} == {"1.0"}


@pytest.mark.slow
def test_ddp_gradient_accumulation_matches_one_process(tmp_path: Path) -> None:
    """Accumulating 2 batches (no gradient all-reduce on the first) gives the weights of
    one process accumulating the same global batches."""
    one = tmp_path / "one"
    check(run_script(one, "--devices", "1", "--batch", "8", "--accumulate", "2", "--epochs", "1"))
    two = tmp_path / "two"
    check(run_script(two, "--devices", "2", "--batch", "4", "--accumulate", "2", "--epochs", "1"))
    reference = results(one)[0]
    for rank in results(two).values():
        _assert_same_weights(rank, reference)


@pytest.mark.slow
def test_torchrun_two_processes(single: dict, tmp_path: Path) -> None:
    """The same script under ``torchrun --nproc-per-node 2`` joins torchrun's processes."""
    out = tmp_path / "torchrun"
    port = free_port()
    check(
        run_script(
            out,
            "--devices",
            "2",
            "--batch",
            "8",
            "--strategy",
            "counting_ddp",
            torchrun=[
                "--nproc-per-node",
                "2",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
            ],
        )
    )
    ranks = results(out)
    assert sorted(ranks) == [0, 1]
    for rank in ranks.values():
        _assert_same_weights(rank, single)
    assert ranks[0]["checkpoint_writes"] > 0 and ranks[1]["checkpoint_writes"] == 0
    assert len([r for r in metric_rows(out) if r["train_loss"]]) == single["global_step"]


@pytest.mark.slow
def test_two_nodes_under_torchrun(single: dict, tmp_path: Path) -> None:
    """Two ``torchrun --nnodes 2`` invocations (node ranks 0 and 1) meeting on 127.0.0.1,
    one process each, with ``Trainer(devices=1, num_nodes=2)``."""
    out = tmp_path / "nodes"
    out.mkdir()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
    ]
    script = [str(TRAIN), "--out", str(out), "--devices", "1", "--num-nodes", "2", "--batch", "8"]
    nodes = [
        subprocess.Popen(
            [
                *command,
                "--node-rank",
                str(node),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                *script,
            ],
            cwd=out,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    try:
        logs = [node.communicate(timeout=TIMEOUT_S)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(logs)
    ranks = results(out)
    assert sorted(ranks) == [0, 1]
    for rank in ranks.values():
        assert rank["world_size"] == 2
        _assert_same_weights(rank, single)


@pytest.mark.slow
def test_a_failing_rank_stops_every_rank_and_its_error_shows_once(tmp_path: Path) -> None:
    """Rank 1 raises at step 2: the job ends (no hang) with a failure status, and the
    error's traceback appears once."""
    proc = run_script(tmp_path, "--devices", "2", "--batch", "8", "--fail-rank", "1", timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("RuntimeError: deliberate failure on rank 1") == 1, proc.stderr
    assert "rank 1 exited with status 1" in proc.stderr
    assert not list(tmp_path.glob("rank*.json"))


@pytest.mark.slow
def test_every_rank_agrees_on_stopping(tmp_path: Path) -> None:
    """``should_stop`` set on rank 1 alone in its second batch, and a NaN loss on one rank,
    end every rank at the same step instead of leaving the other waiting in a collective."""
    check(run_script(tmp_path / "stop", "--devices", "2", "--batch", "8", "--stop-rank", "1"))
    ranks = results(tmp_path / "stop")
    # agreed every log_every_n_steps (1 here) batches: both stop after that batch
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 2
    proc = run_script(tmp_path / "nan", "--devices", "2", "--batch", "8", "--nan-rank", "1")
    assert proc.returncode != 0
    assert "NonFiniteLossError: training_step returned a loss of nan" in proc.stderr
    assert not list((tmp_path / "nan").glob("rank*.json"))


@pytest.mark.slow
def test_own_sampler_is_kept_with_a_warning(tmp_path: Path) -> None:
    """A loader with the user's own sampler is not sharded; a warning says why."""
    proc = run_script(tmp_path, "--devices", "2", "--batch", "8", "--own-sampler", "--epochs", "1")
    check(proc)
    assert "keeps ember from inserting a DistributedSampler" in proc.stderr
    ranks = results(tmp_path)
    assert ranks[0]["seen"] == ranks[1]["seen"] == 32
