"""A training-like loop that honours preemption the way the Trainer does: the handler only
sets a flag; the loop saves at the next step boundary and raises ``Preempted``.

usage: preemptible.py CKPT_PATH [--hang]   (--hang: a step that never reaches its boundary)
"""

from __future__ import annotations

import sys
import time

import torch
from ember.trainer.checkpoint import (
    Preempted,
    PreemptionHandler,
    checkpoint_header,
    save_checkpoint_atomic,
)


def main() -> None:
    path, hang = sys.argv[1], "--hang" in sys.argv
    weights = torch.zeros(4)
    with PreemptionHandler() as preemption:
        print("ready", flush=True)
        for step in range(1, 1_000_000):
            weights += 1  # the "step"
            if hang and step == 5:
                while True:
                    time.sleep(0.01)
            time.sleep(0.01)
            if preemption.requested:
                save_checkpoint_atomic(
                    {**checkpoint_header(), "global_step": step, "w": weights}, path
                )
                raise Preempted(preemption.signum, path)


if __name__ == "__main__":
    main()
