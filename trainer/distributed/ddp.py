"""``strategy="ddp"``: one process per device, gradients averaged by
``DistributedDataParallel``; processes started by ember (one machine), torchrun or SLURM."""

from __future__ import annotations

import atexit
import contextlib
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from ember.trainer.distributed.environments import ClusterEnvironment, detect
from ember.trainer.distributed.launcher import EXIT_PREEMPTED, SubprocessLauncher
from ember.trainer.plugins import (
    Accelerator,
    Launcher,
    MisconfigurationError,
    Precision,
    Strategy,
)
from torch import Tensor, nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
)

_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN", "mean": "SUM"}


class ParallelStrategy(Strategy):
    """What every process-group strategy shares: the environment, the process group, the
    distributed sampler and the collectives. Subclasses wrap the model.

    :param process_group_backend: ``"gloo"``, ``"nccl"``, ... (default: nccl on CUDA,
        gloo otherwise).
    :param timeout_s: how long a collective waits for the other processes.
    :param requeue: under SLURM, requeue the job after a preemption checkpoint (the
        signal SLURM sends before the time limit, ``#SBATCH --signal=USR1@90``).
    """

    def __init__(
        self,
        process_group_backend: str | None = None,
        timeout_s: float = 1800.0,
        requeue: bool = True,
    ) -> None:
        super().__init__()
        self.process_group_backend = process_group_backend
        self.timeout_s = float(timeout_s)
        self.requeue = requeue
        self.environment: ClusterEnvironment | None = None
        self._launcher: SubprocessLauncher | None = None
        self._warned_samplers: set[int] = set()
        #: set when the run raised: the processes are out of step, collectives would hang
        self._failed = False
        #: a gloo group for host-side decisions when the main backend is a GPU one
        self._cpu_group: Any = None

    # ------------------------------------------------------------------ set-up
    def connect(
        self, accelerator: Accelerator, precision: Precision, devices: list[torch.device]
    ) -> None:
        """Attach the parts and read the environment: torchrun, SLURM, or plain (ember
        then starts one process per device)."""
        super().connect(accelerator, precision, devices)
        env = detect(len(devices), self.num_nodes)
        if not env.creates_processes and self.num_nodes > 1:
            raise MisconfigurationError(
                f"num_nodes={self.num_nodes}: ember starts processes on one machine only; "
                f"start them on every machine with torchrun (torchrun --nnodes "
                f"{self.num_nodes} --nproc-per-node {len(devices)} --rdzv-endpoint HOST:PORT "
                "script.py) or srun under SLURM"
            )
        if env.creates_processes and env.world_size != len(devices) * self.num_nodes:
            raise MisconfigurationError(
                f"{env.name} started {env.world_size} processes, but the trainer asks for "
                f"devices={len(devices)} x num_nodes={self.num_nodes} = "
                f"{len(devices) * self.num_nodes}: make Trainer(devices=, num_nodes=) match "
                "--nproc-per-node and --nnodes (or the SLURM tasks)"
            )
        self.environment = env
        if not env.creates_processes and env.world_size > 1:
            self._launcher = SubprocessLauncher(env)

    @property
    def launcher(self) -> Launcher | None:
        """ember's launcher when nothing else started the processes."""
        return self._launcher

    @property
    def backend(self) -> str:
        """The process group backend this strategy uses."""
        if self.process_group_backend:
            return self.process_group_backend
        return "nccl" if self.root_device.type == "cuda" else "gloo"

    def setup_environment(self) -> None:
        """Join the process group (once per process), then set up the device."""
        env = self.environment
        if env is None:
            raise RuntimeError(f"{type(self).__name__}.connect() was not called")
        if not dist.is_initialized():
            # the group outlives fit (the script's next entry point reuses it); closed at
            # exit, since a gloo group left to the interpreter's teardown can abort it
            atexit.register(_destroy_process_group)
            # torchrun's agent already serves the rendezvous store: join it through env://
            address = f"tcp://{env.master_addr}:{env.master_port}"
            dist.init_process_group(
                self.backend,
                init_method="env://" if env.name == "torchrun" else address,
                rank=env.global_rank,
                world_size=env.world_size,
                timeout=timedelta(seconds=self.timeout_s),
            )
        if self.backend != "gloo" and self._cpu_group is None and dist.is_gloo_available():
            # decisions (stop, preemption, objects) travel on the CPU: deciding on the host
            # from a GPU tensor would make every step wait for the GPU
            self._cpu_group = dist.new_group(backend="gloo")
        self._failed = False
        super().setup_environment()

    def teardown(self) -> None:
        """Release the model; a one-process group is closed too (a group of several
        stays for the program's next entry point, which all processes run alike)."""
        super().teardown()
        if self.world_size == 1 and dist.is_initialized():
            dist.destroy_process_group()
            self._cpu_group = None

    def on_exception(self, error: BaseException) -> None:
        """Issue no more collectives: the other processes are not in step with this one.
        A preemption is the exception (every process saved together and stops alike);
        under SLURM, rank zero then requeues the job, which resumes from ``ckpt_path="last"``."""
        if not (isinstance(error, SystemExit) and error.code == EXIT_PREEMPTED):
            self._failed = True
            return
        if self.requeue and self.environment is not None and self.is_global_zero:
            self.environment.requeue()

    def _collective(self) -> bool:
        """Whether collectives are due: a process group of several, not broken by an error."""
        return dist.is_initialized() and self.world_size > 1 and not self._failed

    def model_to_device(self, module: nn.Module) -> nn.Module:
        """Place the module on this process's device."""
        return module.to(self.root_device)

    # ------------------------------------------------------------------ ranks
    @property
    def root_device(self) -> torch.device:
        """This process's device: the one its local rank names."""
        if not self.devices:
            return torch.device("cpu")
        return self.devices[self.local_rank % len(self.devices)]

    @property
    def global_rank(self) -> int:
        """This process's rank among all."""
        return self.environment.global_rank if self.environment else 0

    @property
    def local_rank(self) -> int:
        """This process's rank on its machine."""
        return self.environment.local_rank if self.environment else 0

    @property
    def node_rank(self) -> int:
        """This machine's rank."""
        return self.environment.node_rank if self.environment else 0

    @property
    def world_size(self) -> int:
        """How many processes take part."""
        return self.environment.world_size if self.environment else 1

    # ------------------------------------------------------------------ data
    def process_dataloader(self, dataloader: Any) -> Any:
        """Give each process its share: a loader with the default sampler is rebuilt with
        a ``DistributedSampler`` (shuffling kept); a loader with the user's own sampler is
        left alone, with a warning that every process then sees all of it."""
        if self.world_size == 1 or not isinstance(dataloader, DataLoader):
            return dataloader
        if isinstance(dataloader.dataset, IterableDataset):
            return dataloader
        sampler = dataloader.sampler
        if isinstance(sampler, DistributedSampler) or isinstance(
            getattr(dataloader.batch_sampler, "sampler", None), DistributedSampler
        ):
            return dataloader
        default_batching = type(dataloader.batch_sampler) is BatchSampler
        if type(sampler) not in (SequentialSampler, RandomSampler) or not default_batching:
            custom = type(sampler if default_batching else dataloader.batch_sampler).__name__
            if id(dataloader) not in self._warned_samplers:
                self._warned_samplers.add(id(dataloader))
                warnings.warn(
                    f"the loader's own {custom} keeps ember from inserting a "
                    f"DistributedSampler, so each of the {self.world_size} processes sees "
                    "the whole dataset: shard it yourself (give your sampler num_replicas="
                    "trainer.world_size and rank=trainer.global_rank, or use "
                    "torch.utils.data.DistributedSampler)",
                    UserWarning,
                    stacklevel=2,
                )
            return dataloader
        shuffle = isinstance(sampler, RandomSampler)
        distributed = DistributedSampler(
            dataloader.dataset,
            num_replicas=self.world_size,
            rank=self.global_rank,
            shuffle=shuffle,
            seed=_sampler_seed(sampler) if shuffle else 0,
        )
        return _rebuild(dataloader, distributed)

    # ------------------------------------------------------------------ collectives
    def reduce(self, tensor: Tensor, reduce_op: str = "mean") -> Tensor:
        """All-reduce ``tensor`` (a copy): ``"mean"``, ``"sum"``, ``"max"`` or ``"min"``."""
        if reduce_op not in _OPS:
            raise ValueError(f"reduce_op must be one of {', '.join(_OPS)}; got {reduce_op!r}")
        if not self._collective():
            return tensor
        out = tensor.detach().clone()
        if not out.is_floating_point():
            out = out.float()
        group = self._cpu_group if out.device.type == "cpu" else None
        if group is None and self.backend == "nccl" and out.device.type != "cuda":
            out = out.to(self.root_device)
        dist.all_reduce(out, op=getattr(dist.ReduceOp, _OPS[reduce_op]), group=group)
        if reduce_op == "mean":
            out = out / self.world_size
        return out.to(tensor.device)

    def all_gather(self, tensor: Tensor, sync_grads: bool = False) -> Tensor:
        """``tensor`` from every process (same shape on each), stacked on a new dim 0;
        with ``sync_grads`` the gather is differentiable."""
        if not self._collective():
            return tensor.unsqueeze(0)
        source = tensor.contiguous()
        if self.backend == "nccl" and source.device.type != "cuda":
            source = source.to(self.root_device)
        if sync_grads:
            from torch.distributed.nn.functional import all_gather

            return torch.stack(all_gather(source)).to(tensor.device)
        source = source.detach()
        parts = [torch.empty_like(source) for _ in range(self.world_size)]
        dist.all_gather(parts, source)
        return torch.stack(parts).to(tensor.device)

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        """Every process's ``decision`` combined: all true (``all``) or any true."""
        if not self._collective():
            return bool(decision)
        flag = torch.tensor(float(bool(decision)), device=self._collective_device())
        dist.all_reduce(flag, op=dist.ReduceOp.SUM, group=self._cpu_group)
        count = int(flag.item())
        return count == self.world_size if all else count > 0

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """``obj`` from process ``src`` (any picklable object)."""
        if not self._collective():
            return obj
        box = [obj]
        dist.broadcast_object_list(
            box, src=src, device=self._collective_device(), group=self._cpu_group
        )
        return box[0]

    def barrier(self, name: str | None = None) -> None:
        """Wait for every process."""
        if not self._collective():
            return
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.root_device.index or 0])
        else:
            dist.barrier()

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any) -> bool:
        """Rank zero writes the file, with every rank's random state in it (so that a
        resume continues each process's dropout and augmentation draws exactly)."""
        if self._collective() and "rng" in checkpoint:
            states: list[Any] = [None] * self.world_size
            dist.all_gather_object(states, checkpoint["rng"], group=self._cpu_group)
            checkpoint = {**checkpoint, "rng_per_rank": states}
        return super().save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path: Any) -> dict[str, Any]:
        """Read the checkpoint; this rank gets back its own random state when the
        checkpoint was taken with as many processes."""
        checkpoint = super().load_checkpoint(path)
        per_rank = checkpoint.pop("rng_per_rank", None)
        if per_rank is not None and len(per_rank) == self.world_size:
            checkpoint["rng"] = per_rank[self.global_rank]
        return checkpoint

    def _collective_device(self) -> torch.device:
        if self.backend == "nccl" and self._cpu_group is None:
            return self.root_device
        return torch.device("cpu")


class DDPStrategy(ParallelStrategy):
    """Data parallel: every process holds the whole model and a share of each batch;
    ``DistributedDataParallel`` averages the gradients during backward.

    :param find_unused_parameters: let DDP handle parameters a step does not use.
    :param static_graph: tell DDP the graph is the same every step (faster).
    :param gradient_as_bucket_view: gradients as views into DDP's buckets (less memory).
    """

    name: ClassVar[str] = "ddp"

    def __init__(
        self,
        process_group_backend: str | None = None,
        timeout_s: float = 1800.0,
        find_unused_parameters: bool = False,
        static_graph: bool = False,
        gradient_as_bucket_view: bool = False,
        requeue: bool = True,
    ) -> None:
        super().__init__(process_group_backend, timeout_s, requeue)
        self.find_unused_parameters = find_unused_parameters
        self.static_graph = static_graph
        self.gradient_as_bucket_view = gradient_as_bucket_view

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel`` around the step-forwarding module."""
        from torch.nn.parallel import DistributedDataParallel

        device = self.root_device
        return DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=self.find_unused_parameters,
            static_graph=self.static_graph,
            gradient_as_bucket_view=self.gradient_as_bucket_view,
        )

    @contextlib.contextmanager
    def no_backward_sync(self) -> Iterator[None]:
        """DDP's ``no_sync``: accumulate locally, all-reduce on the stepping batch."""
        model = self.model
        no_sync = getattr(model, "no_sync", None)
        if no_sync is None:
            yield
            return
        with no_sync():
            yield


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _sampler_seed(sampler: RandomSampler) -> int:
    """The distributed shuffle's seed, the same on every rank: the loader's generator's
    initial seed if it was given one, else 0 (the order still changes every epoch)."""
    generator = sampler.generator
    return int(generator.initial_seed()) % (2**31) if generator is not None else 0


def _rebuild(loader: DataLoader, sampler: DistributedSampler) -> DataLoader:
    """``loader`` again with ``sampler`` (every other setting kept)."""
    kwargs: dict[str, Any] = {
        "batch_size": loader.batch_size,
        "drop_last": loader.drop_last,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
        "pin_memory_device": loader.pin_memory_device,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    if hasattr(loader, "in_order"):
        kwargs["in_order"] = loader.in_order
    return DataLoader(loader.dataset, sampler=sampler, **kwargs)
