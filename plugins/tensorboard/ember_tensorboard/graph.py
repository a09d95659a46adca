"""``log_graph``: the module's graph as a TensorBoard ``GraphDef``, traced in the
training process (torch is there; this module is imported only when a fit starts with
``log_graph=True``)."""

from __future__ import annotations

import warnings
from typing import Any


def module_graph(module: Any) -> bytes | None:
    """The serialized graph of ``module`` run on ``module.example_input_array`` (traced
    in eval mode without gradients, so batch-norm statistics are untouched), or None
    with a warning when there is no example input or tracing fails."""
    example = getattr(module, "example_input_array", None)
    if example is None:
        warnings.warn(
            "ember-tensorboard: log_graph=True needs an example input: set "
            "self.example_input_array in the module's __init__ (a tensor, or a tuple of "
            "the forward's arguments); no graph was written",
            UserWarning,
            stacklevel=2,
        )
        return None
    import torch
    from torch.utils.tensorboard._pytorch_graph import graph

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch.jit.trace is deprecated, and it is what TensorBoard's graphs are made of
            warnings.simplefilter("ignore", DeprecationWarning)
            device = next((p.device for p in module.parameters()), None)
            args = example if isinstance(example, tuple) else (example,)
            if device is not None:
                args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
            graph_def, _ = graph(module, args)
    except Exception as exc:  # a module that cannot be traced still trains
        warnings.warn(
            f"ember-tensorboard: could not trace the module for log_graph "
            f"({type(exc).__name__}: {exc}); no graph was written",
            UserWarning,
            stacklevel=2,
        )
        return None
    finally:
        module.train(was_training)
    return graph_def.SerializeToString()
