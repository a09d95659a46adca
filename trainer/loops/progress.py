"""Where the fit loop is: epoch, optimizer steps, and the position inside the epoch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class LoopProgress:
    """The fit loop's position, saved in checkpoints so a run resumes where it stopped.

    ``batch_idx`` counts the batches already finished in ``current_epoch``: a run restored
    with ``batch_idx=7`` skips the first seven batches of that epoch.
    """

    #: epochs completed (the index of the running epoch)
    current_epoch: int = 0
    #: optimizer steps taken
    global_step: int = 0
    #: training batches finished in the current epoch
    batch_idx: int = 0
    #: training batches finished since training began, across epochs
    total_batches: int = 0
    #: ``total_batches`` when validation inside fit last ran (-1: never), so a run resumed
    #: from a checkpoint saved between a batch and its validation runs that validation
    validated_at: int = -1
    #: 1 while ``current_epoch``'s end hooks run: a checkpoint saved from them resumes at
    #: the start of the next epoch, without running that epoch's end hooks again
    epoch_ending: int = 0
    #: whether the training batch being processed is its epoch's last (not saved)
    is_last_batch: bool = field(default=False, compare=False)

    def state_dict(self) -> dict[str, int]:
        """The position as plain ints."""
        state = asdict(self)
        del state["is_last_batch"]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by :meth:`state_dict` (unknown keys are ignored)."""
        for f in fields(self):
            if f.name in state:
                setattr(self, f.name, int(state[f.name]))
