"""The loops: fit (epochs of training batches with validation), evaluation (validate,
sanity check, test) and prediction. Each receives the parts it drives."""

from __future__ import annotations

from ember.trainer.loops.evaluation import EvaluationLoop
from ember.trainer.loops.fit import FitLoop
from ember.trainer.loops.predict import PredictLoop
from ember.trainer.loops.progress import LoopProgress

__all__ = ["EvaluationLoop", "FitLoop", "LoopProgress", "PredictLoop"]
