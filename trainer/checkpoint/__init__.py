"""Checkpoints: atomic saves, safe loads, exact mid-epoch resume, preemption.

* :mod:`.io`: ``save_checkpoint_atomic`` / ``load_checkpoint_safe`` and the format version;
* :mod:`.hparams`: ``to_plain`` for hyperparameters;
* :mod:`.rng`: every random generator's state as safe data;
* :mod:`.samplers`: samplers and a loader wrapper that resume mid-epoch without reading
  the skipped data;
* :mod:`.model_checkpoint`, :mod:`.on_exception`: the callbacks;
* :mod:`.preemption`: SIGTERM/SIGUSR1 to a checkpoint at the next step boundary;
* :mod:`.resolve`: what ``ckpt_path="last" | "best"`` means.

See ``docs/checkpoints.md`` for the layout of a checkpoint and the guarantees.
"""

from __future__ import annotations

from ember.trainer.checkpoint.errors import (
    AmbiguousCheckpointError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointSaveError,
    NewerCheckpointVersionError,
    NotACheckpointError,
    StateMismatchError,
    TruncatedCheckpointError,
    UnsafeCheckpointError,
    UnsafeValueError,
)
from ember.trainer.checkpoint.hparams import to_plain
from ember.trainer.checkpoint.io import (
    FORMAT_VERSION,
    check_format,
    check_weights_only_safe,
    checkpoint_header,
    ember_version,
    instantiate_from_checkpoint,
    link_checkpoint_atomic,
    load_checkpoint_safe,
    load_module_state,
    remove_stale_temp_files,
    save_checkpoint_atomic,
)
from ember.trainer.checkpoint.model_checkpoint import ModelCheckpoint
from ember.trainer.checkpoint.on_exception import OnExceptionCheckpoint
from ember.trainer.checkpoint.preemption import (
    EXIT_PREEMPTED,
    Preempted,
    PreemptionHandler,
)
from ember.trainer.checkpoint.resolve import (
    PREEMPTED_NAME,
    find_last_checkpoint,
    preemption_checkpoint_path,
    resolve_ckpt_path,
)
from ember.trainer.checkpoint.rng import capture_rng_state, restore_rng_state
from ember.trainer.checkpoint.samplers import (
    ResumableDistributedSampler,
    ResumableLoader,
    ResumableRandomSampler,
    ResumableSequentialSampler,
    make_resumable,
    resumable_sampler,
)

__all__ = [
    "EXIT_PREEMPTED",
    "FORMAT_VERSION",
    "PREEMPTED_NAME",
    "AmbiguousCheckpointError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointSaveError",
    "ModelCheckpoint",
    "NewerCheckpointVersionError",
    "NotACheckpointError",
    "OnExceptionCheckpoint",
    "Preempted",
    "PreemptionHandler",
    "ResumableDistributedSampler",
    "ResumableLoader",
    "ResumableRandomSampler",
    "ResumableSequentialSampler",
    "StateMismatchError",
    "TruncatedCheckpointError",
    "UnsafeCheckpointError",
    "UnsafeValueError",
    "capture_rng_state",
    "check_format",
    "check_weights_only_safe",
    "checkpoint_header",
    "ember_version",
    "find_last_checkpoint",
    "instantiate_from_checkpoint",
    "link_checkpoint_atomic",
    "load_checkpoint_safe",
    "load_module_state",
    "make_resumable",
    "preemption_checkpoint_path",
    "remove_stale_temp_files",
    "resolve_ckpt_path",
    "restore_rng_state",
    "resumable_sampler",
    "save_checkpoint_atomic",
    "to_plain",
]
