"""``strategy="fsdp"``: fully sharded data parallel through FSDP2's ``fully_shard``:
each process keeps a shard of the parameters, gradients and optimizer state, gathering
a layer's parameters only while it runs. Checkpoints are either one consolidated file
(``state_dict_type="full"``, the default: readable anywhere) or a folder of shards written
by every process at once through ``torch.distributed.checkpoint`` (``"sharded"``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from ember.trainer.distributed.ddp import ParallelStrategy
from ember.trainer.plugins import MisconfigurationError
from torch import nn

#: the file of a sharded checkpoint folder that holds everything but the shards
META_FILE = "meta.ckpt"


def fsdp_available() -> bool:
    """Whether this torch has FSDP2 (``torch.distributed.fsdp.fully_shard``)."""
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError:
        return False
    return torch.distributed.is_available()


@dataclass(frozen=True)
class _Shards:
    """Stands in a loaded checkpoint for state that stays in the shard files until the
    strategy loads it into the sharded module or optimizer."""

    path: str
    key: str


class FSDPStrategy(ParallelStrategy):
    """FSDP2 on every process of the group (CPU with gloo, or GPUs with nccl).

    :param state_dict_type: ``"full"`` gathers weights and optimizer state into one file
        written by rank zero; ``"sharded"`` makes each checkpoint a folder in which every
        process writes its own shard (no gathering; resume needs the same world size).
    :param reshard_after_forward: free gathered parameters after forward (less memory,
        one more all-gather in backward).
    """

    name: ClassVar[str] = "fsdp"

    def __init__(
        self,
        process_group_backend: str | None = None,
        timeout_s: float = 1800.0,
        state_dict_type: str = "full",
        reshard_after_forward: bool = True,
        requeue: bool = True,
    ) -> None:
        super().__init__(process_group_backend, timeout_s, requeue)
        if state_dict_type not in ("full", "sharded"):
            raise MisconfigurationError(
                f"fsdp state_dict_type must be 'full' or 'sharded'; got {state_dict_type!r}"
            )
        if not fsdp_available():
            raise MisconfigurationError(
                f"strategy 'fsdp' needs FSDP2 (torch.distributed.fsdp.fully_shard), which "
                f"torch {torch.__version__} lacks: upgrade torch, or use strategy='ddp'"
            )
        self.state_dict_type = state_dict_type
        self.reshard_after_forward = reshard_after_forward

    # ------------------------------------------------------------------ the model
    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Shard each top-level child of the module that holds parameters, then the whole
        (a module whose ``configure_model`` sharded its own layers keeps its choice)."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import FSDPModule, fully_shard

        mesh = init_device_mesh(self.root_device.type, (self.world_size,))
        module = self.module
        assert module is not None
        options = {"mesh": mesh, "reshard_after_forward": self.reshard_after_forward}
        if not any(isinstance(m, FSDPModule) for m in module.modules()):
            for child in module.children():
                if any(p.requires_grad for p in child.parameters()):
                    fully_shard(child, **options)
        fully_shard(model, **options)
        return model

    @contextlib.contextmanager
    def no_backward_sync(self) -> Iterator[None]:
        """Keep accumulated gradients unsharded and skip the reduce-scatter until the
        batch that steps."""
        model = self.model
        set_sync = getattr(model, "set_requires_gradient_sync", None)
        if set_sync is None:
            yield
            return
        set_sync(False)
        try:
            yield
        finally:
            set_sync(True)

    def teardown(self) -> None:
        """Release the model; the process group stays (the sharded parameters need it
        for a checkpoint saved after fit)."""
        super(ParallelStrategy, self).teardown()

    # ------------------------------------------------------------------ state
    def _options(self, full: bool) -> Any:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=full, cpu_offload=full)

    def module_state_dict(self) -> dict[str, Any]:
        """The weights: gathered on rank zero (``full``) or this process's shards."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        if self.module is None:
            raise RuntimeError("FSDPStrategy.setup_module() was not called")
        return get_model_state_dict(
            self.module, options=self._options(self.state_dict_type == "full")
        )

    def load_module_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Load full weights (sharded on the way in) or this process's shards."""
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            set_model_state_dict,
        )

        if self.module is None:
            raise RuntimeError("FSDPStrategy.setup_module() was not called")
        if isinstance(state_dict, _Shards):
            template = get_model_state_dict(self.module, options=self._options(False))
            state_dict = self._load_shards(state_dict, template)
            set_model_state_dict(self.module, state_dict, options=self._options(False))
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        set_model_state_dict(
            self.module,
            dict(state_dict),
            options=StateDictOptions(full_state_dict=True, strict=strict),
        )

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's state, keyed by parameter name: gathered or sharded."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        assert self.module is not None
        return get_optimizer_state_dict(
            self.module, optimizer, options=self._options(self.state_dict_type == "full")
        )

    def load_optimizer_state(
        self, optimizer: torch.optim.Optimizer, state: Mapping[str, Any]
    ) -> None:
        """Restore what :meth:`optimizer_state` returned (full or sharded)."""
        from torch.distributed.checkpoint.state_dict import (
            get_optimizer_state_dict,
            set_optimizer_state_dict,
        )

        assert self.module is not None
        if isinstance(state, _Shards):
            template = get_optimizer_state_dict(
                self.module, optimizer, options=self._options(False)
            )
            state = self._load_shards(state, template)
            full = False
        else:
            full = True
            if not any(isinstance(v, torch.Tensor) and v.dim() for v in _leaves(state)):
                # torch cannot scatter a full state without tensors (plain SGD): only the
                # hyperparameters are there to restore
                for group, saved in zip(optimizer.param_groups, state["param_groups"], strict=True):
                    group.update({k: v for k, v in saved.items() if k != "params"})
                return
        set_optimizer_state_dict(self.module, optimizer, dict(state), options=self._options(full))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any) -> bool:
        """``full``: one file from rank zero. ``sharded``: a folder in which every process
        writes its shards and rank zero the rest (``meta.ckpt``); it is assembled under a
        temporary name and renamed into place, so a reader never sees half of one."""
        if self.state_dict_type == "full" or "state_dict" not in checkpoint:
            return super().save_checkpoint(checkpoint, path)
        import torch.distributed.checkpoint as dcp

        target = Path(path)
        rest = dict(checkpoint)
        optimizers = rest.pop("optimizer_states", [])
        shards = {
            "state_dict": rest.pop("state_dict"),
            "optimizer_states": {str(i): state for i, state in enumerate(optimizers)},
        }
        rest["sharded"] = {"optimizers": len(shards["optimizer_states"])}
        tmp = Path(self.broadcast(str(target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp")))
        dcp.save(shards, checkpoint_id=tmp)
        super().save_checkpoint(rest, tmp / META_FILE)
        self.barrier("fsdp.save_checkpoint")
        if self.is_global_zero:
            _replace_folder(tmp, target)
        return self.is_global_zero

    def load_checkpoint(self, path: Any) -> dict[str, Any]:
        """A file, or a sharded folder: its ``meta.ckpt``, with the weights and optimizer
        states left in the shards until :meth:`load_module_state_dict` and
        :meth:`load_optimizer_state` read this process's part."""
        folder = Path(path)
        if not folder.is_dir():
            return super().load_checkpoint(path)
        checkpoint = super().load_checkpoint(folder / META_FILE)
        sharded = checkpoint.pop("sharded", {})
        checkpoint["state_dict"] = _Shards(os.fspath(folder), "state_dict")
        checkpoint["optimizer_states"] = [
            _Shards(os.fspath(folder), f"optimizer_states.{i}")
            for i in range(int(sharded.get("optimizers", 0)))
        ]
        return checkpoint

    def _load_shards(self, shards: _Shards, template: dict[str, Any]) -> dict[str, Any]:
        import torch.distributed.checkpoint as dcp

        head, _, index = shards.key.partition(".")
        wrapped: dict[str, Any] = {head: {index: template} if index else template}
        dcp.load(wrapped, checkpoint_id=shards.path)
        return wrapped[head][index] if index else wrapped[head]


def _leaves(tree: Any) -> Iterator[Any]:
    """Every value in nested mappings and lists."""
    if isinstance(tree, Mapping):
        for value in tree.values():
            yield from _leaves(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _leaves(value)
    else:
        yield tree


def _replace_folder(source: Path, target: Path) -> None:
    """Put the finished folder ``source`` at ``target``, removing what was there."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
        os.replace(target, old)
    os.replace(source, target)
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()
