"""Where this process sits in a distributed job: its ranks, the world size and the
rendezvous address, read from what started it (``torchrun``, SLURM, or ember itself)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass

#: the variables torchrun (and ember's own launcher) sets in every process it starts
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class ClusterEnvironment:
    """One process's place in the job.

    :param name: what started the processes: ``"plain"``, ``"torchrun"`` or ``"slurm"``.
    :param creates_processes: whether something else started every process (torchrun,
        SLURM); when not, ember's launcher starts them.
    """

    name: str
    global_rank: int
    local_rank: int
    node_rank: int
    world_size: int
    master_addr: str
    master_port: int
    creates_processes: bool

    def requeue(self) -> bool:
        """Ask the scheduler to run this job again (SLURM only); whether it was asked."""
        job = os.environ.get("SLURM_JOB_ID")
        if self.name != "slurm" or not job:
            return False
        array_job, array_task = (
            os.environ.get("SLURM_ARRAY_JOB_ID"),
            os.environ.get("SLURM_ARRAY_TASK_ID"),
        )
        if array_job and array_task:
            job = f"{array_job}_{array_task}"
        try:
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        except FileNotFoundError:
            print("ember: cannot requeue the SLURM job: scontrol not found", file=sys.stderr)
            return False
        if result.returncode != 0:
            print(f"ember: scontrol requeue {job} failed: {result.stderr.strip()}", file=sys.stderr)
            return False
        print(f"ember: requeued SLURM job {job}", file=sys.stderr, flush=True)
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _int_env(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def is_torchrun() -> bool:
    """Whether torchrun (or a launcher that sets the same variables) started this process."""
    return all(v in os.environ for v in TORCHRUN_VARIABLES)


def is_slurm() -> bool:
    """Whether this is a SLURM task started by ``srun`` (not an interactive shell on a node)."""
    if "SLURM_NTASKS" not in os.environ or "SLURM_PROCID" not in os.environ:
        return False
    return os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def slurm_master_addr(nodelist: str) -> str:
    """The first host of a SLURM node list (``"node[03-05,7],gpu1"`` gives ``"node03"``)."""
    first = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if first is None:
        return "127.0.0.1"
    prefix, ranges = first.group(1), first.group(3)
    if not ranges:
        return prefix
    start = ranges.split(",")[0].split("-")[0]
    return prefix + start


def detect(num_processes: int, num_nodes: int) -> ClusterEnvironment:
    """This process's environment: torchrun's variables first, then SLURM's, else a plain
    machine where ember starts ``num_processes`` processes itself."""
    if is_torchrun():
        world = _int_env("WORLD_SIZE")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", num_processes))
        rank = _int_env("RANK")
        node_rank = int(os.environ.get("GROUP_RANK", os.environ.get("NODE_RANK", 0)))
        if "GROUP_RANK" not in os.environ and "NODE_RANK" not in os.environ:
            node_rank = rank // max(local_world, 1)
        return ClusterEnvironment(
            name="torchrun",
            global_rank=rank,
            local_rank=_int_env("LOCAL_RANK"),
            node_rank=node_rank,
            world_size=world,
            master_addr=os.environ["MASTER_ADDR"],
            master_port=_int_env("MASTER_PORT"),
            creates_processes=True,
        )
    if is_slurm():
        job_id = os.environ.get("SLURM_JOB_ID", "0")
        port = int(os.environ.get("MASTER_PORT", 0)) or 10000 + int(job_id[-4:] or 0) % 10000
        return ClusterEnvironment(
            name="slurm",
            global_rank=_int_env("SLURM_PROCID"),
            local_rank=_int_env("SLURM_LOCALID"),
            node_rank=_int_env("SLURM_NODEID"),
            world_size=_int_env("SLURM_NTASKS"),
            master_addr=os.environ.get("MASTER_ADDR")
            or slurm_master_addr(os.environ.get("SLURM_NODELIST", "127.0.0.1")),
            master_port=port,
            creates_processes=True,
        )
    return ClusterEnvironment(
        name="plain",
        global_rank=0,
        local_rank=0,
        node_rank=0,
        world_size=num_processes * num_nodes,
        master_addr=os.environ.get("MASTER_ADDR", "127.0.0.1"),
        master_port=int(os.environ.get("MASTER_PORT", 0)) or free_port(),
        creates_processes=False,
    )
