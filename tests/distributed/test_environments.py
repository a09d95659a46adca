"""Reading a process's place in the job from torchrun's and SLURM's variables, and
SLURM's requeue after a preemption checkpoint."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from ember.trainer import Trainer
from ember.trainer.distributed.environments import detect, slurm_master_addr

_CLEAR = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("SLURM_") or name in _CLEAR or name == "NODE_RANK":
            monkeypatch.delenv(name)
    return monkeypatch


def test_plain_machine(clean_env: pytest.MonkeyPatch) -> None:
    env = detect(num_processes=2, num_nodes=1)
    assert (env.name, env.world_size, env.global_rank, env.creates_processes) == (
        "plain",
        2,
        0,
        False,
    )
    assert env.master_addr == "127.0.0.1" and env.master_port > 0


def test_torchrun_variables(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in dict(
        RANK="3",
        LOCAL_RANK="1",
        WORLD_SIZE="4",
        MASTER_ADDR="10.0.0.1",
        MASTER_PORT="29500",
        GROUP_RANK="1",
        LOCAL_WORLD_SIZE="2",
    ).items():
        clean_env.setenv(name, value)
    env = detect(num_processes=2, num_nodes=2)
    assert (env.name, env.global_rank, env.local_rank, env.node_rank, env.world_size) == (
        "torchrun",
        3,
        1,
        1,
        4,
    )
    assert env.creates_processes and env.master_addr == "10.0.0.1"


def test_slurm_variables(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in dict(
        SLURM_NTASKS="4",
        SLURM_PROCID="2",
        SLURM_LOCALID="0",
        SLURM_NODEID="1",
        SLURM_JOB_ID="123456",
        SLURM_NODELIST="gpu[07-08]",
        SLURM_JOB_NAME="train",
    ).items():
        clean_env.setenv(name, value)
    env = detect(num_processes=2, num_nodes=2)
    assert (env.name, env.global_rank, env.local_rank, env.node_rank, env.world_size) == (
        "slurm",
        2,
        0,
        1,
        4,
    )
    assert env.master_addr == "gpu07" and env.master_port == 10000 + 3456


def test_an_interactive_slurm_shell_is_a_plain_machine(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLURM_NTASKS", "1")
    clean_env.setenv("SLURM_PROCID", "0")
    clean_env.setenv("SLURM_JOB_NAME", "bash")
    assert detect(1, 1).name == "plain"


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [("node1", "node1"), ("node[03-05,7]", "node03"), ("a[1,2],b[3]", "a1"), ("x,y", "x")],
)
def test_slurm_node_lists(nodelist: str, first: str) -> None:
    assert slurm_master_addr(nodelist) == first


def test_preempted_under_slurm_requeues_the_job(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SIGUSR1 (SLURM's warning before the time limit): the checkpoint is saved, the run
    stops with status 75, and rank zero asks SLURM to requeue the job with ``scontrol``."""
    import signal

    import torch
    from ember.trainer import EmberModule
    from ember.trainer.checkpoint import Preempted
    from torch.utils.data import DataLoader, TensorDataset

    calls = tmp_path / "scontrol.calls"
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    clean_env.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    for name, value in dict(
        SLURM_NTASKS="1",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
        SLURM_JOB_ID="4242",
        SLURM_NODELIST="localhost",
        SLURM_JOB_NAME="train",
        MASTER_ADDR="127.0.0.1",
    ).items():
        clean_env.setenv(name, value)
    from ember.trainer.distributed.environments import free_port

    clean_env.setenv("MASTER_PORT", str(free_port()))

    class Signals(EmberModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: object, batch_idx: int) -> torch.Tensor:
            if batch_idx == 1:
                os.kill(os.getpid(), signal.SIGUSR1)
            return self.layer(batch[0]).sum()  # type: ignore[index]

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        max_epochs=1,
    )
    assert trainer.strategy.name == "ddp"  # auto under SLURM
    loader = DataLoader(TensorDataset(torch.ones(8, 2)), batch_size=2)
    with pytest.raises(Preempted) as info:
        trainer.fit(Signals(), loader)
    assert info.value.code == 75
    assert Path(info.value.checkpoint_path or "").is_file()
    assert calls.read_text().split() == ["requeue", "4242"]
