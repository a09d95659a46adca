"""ember's built-in callbacks.

Each is also selectable by provider name (``Trainer(callbacks=["early_stopping", ...])``),
registered in ``ember.trainer.builtins``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ember.trainer.callback import Callback
from ember.trainer.callbacks.early_stopping import EarlyStopping, EarlyStoppingReason
from ember.trainer.callbacks.gradient_accumulation import GradientAccumulationScheduler
from ember.trainer.callbacks.gradient_norm import GradientNormMonitor
from ember.trainer.callbacks.lambda_function import LambdaCallback
from ember.trainer.callbacks.lr_monitor import LearningRateMonitor
from ember.trainer.callbacks.model_summary import ModelSummary
from ember.trainer.callbacks.prediction_writer import BasePredictionWriter, WriteInterval
from ember.trainer.callbacks.progress_bar import ProgressBar
from ember.trainer.callbacks.timer import Timer

__all__ = [
    "BasePredictionWriter",
    "Callback",
    "EarlyStopping",
    "EarlyStoppingReason",
    "GradientAccumulationScheduler",
    "GradientNormMonitor",
    "LambdaCallback",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "Timer",
    "WriteInterval",
]

# --- checkpoint callbacks -------------------------------------------------------------
# ModelCheckpoint and OnExceptionCheckpoint live in ember.trainer.checkpoint, next to the
# checkpoint I/O they drive; they are re-exported here and imported on first access, so
# importing the other callbacks does not load the checkpoint machinery.
_CHECKPOINT_CALLBACKS = {
    "ModelCheckpoint": "ember.trainer.checkpoint.model_checkpoint",
    "OnExceptionCheckpoint": "ember.trainer.checkpoint.on_exception",
}


def __getattr__(name: str) -> Any:
    module = _CHECKPOINT_CALLBACKS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
