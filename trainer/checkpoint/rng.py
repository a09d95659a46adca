"""Capture and restore every random number generator a training step draws from, as data
that ``torch.load(weights_only=True)`` accepts (tensors, lists, tuples, ints, floats).

Restoring them at the resume point makes dropout masks, random augmentations in the main
process and anything else drawn from the global generators continue exactly where the
interrupted run stopped.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import torch


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's ``random``, numpy's global generator (when numpy is
    installed), torch's CPU generator, and every CUDA device's generator (when CUDA is in
    use in this process)."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss}
    }
    np = _numpy()
    if np is not None:
        legacy = np.random.get_state(legacy=False)
        state["numpy"] = {
            "bit_generator": legacy["bit_generator"],
            "key": torch.from_numpy(legacy["state"]["key"].astype("int64")),
            "pos": int(legacy["state"]["pos"]),
            "has_gauss": int(legacy["has_gauss"]),
            "gauss": float(legacy["gauss"]),
        }
    state["torch"] = torch.get_rng_state()
    # Only when CUDA is initialised: querying it otherwise would start CUDA (and allocate
    # memory on every GPU) in a run that never used it.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the generator states that :func:`capture_rng_state` returned.

    A generator missing from ``state`` is left alone; CUDA states are restored when CUDA is
    available and the device count matches, with a warning otherwise.
    """
    if "python" in state:
        py = state["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "numpy" in state:
        np = _numpy()
        if np is None:
            warnings.warn(
                "the checkpoint holds numpy's random state but numpy is not installed; "
                "numpy draws will not continue where the run stopped",
                UserWarning,
                stacklevel=2,
            )
        else:
            saved = state["numpy"]
            np.random.set_state(
                {
                    "bit_generator": saved["bit_generator"],
                    "state": {"key": saved["key"].numpy().astype("uint32"), "pos": saved["pos"]},
                    "has_gauss": saved["has_gauss"],
                    "gauss": saved["gauss"],
                }
            )
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state:
        _restore_cuda(state["cuda"])


def _restore_cuda(states: list[torch.Tensor]) -> None:
    if not torch.cuda.is_available():
        warnings.warn(
            "the checkpoint holds CUDA random states but CUDA is not available here; "
            "GPU random draws will not continue where the run stopped",
            UserWarning,
            stacklevel=3,
        )
        return
    count = torch.cuda.device_count()
    if count != len(states):
        warnings.warn(
            f"the checkpoint holds random states for {len(states)} CUDA devices but this "
            f"process sees {count}; restoring the first {min(count, len(states))}",
            UserWarning,
            stacklevel=3,
        )
    for device, saved in enumerate(states[:count]):
        torch.cuda.set_rng_state(saved.cpu(), device)
