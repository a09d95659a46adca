"""What the run journal costs a training step, measured inside one fit, next to the
least any crash-safe record of a step costs.

The benchmark module (two ``self.log`` per step, flushed every step) trains once with the
journal only (``logger=[]``), and what ``Run.log_metrics`` does rotates every block of
steps among three states: ``off`` (nothing is recorded), ``floor`` (the step's values
are packed in the journal's row layout, framed with a CRC-32 and copied into a shared
memory map of a scratch file: the work any record that survives the process being
killed has to do on the training thread, with nothing else) and ``journal`` (the real
``Run.log_metrics``). The median step time of each state's blocks, minus that of the
``off`` blocks, is its cost per step. Blocks a few milliseconds apart see the same
machine, so these differences are steadier on a shared machine than comparing separate
fits (``logging_overhead.py``), whose drift between rounds is often as large as the
journal's cost. The background thread that moves spooled rows into the database (every
0.25 s) runs during every kind of block, so its share is not in the difference:
``logging_overhead.py --trackers`` (``ember journal only``) counts it.

Run: ``python benchmarks/journal_cost.py [--steps 21000] [--block 100] [--repeats 3]
[--hidden 64] [--json OUT]`` (``--hidden``: the MLP's width, for a longer step; the
journal's cost per flush does not grow with it). Prints, per repeat, the step time with
nothing recorded and the cost of the floor and of the journal (wall and training-thread
CPU); then the medians over repeats.
Information only: no target.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import statistics
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

from ember.hub.tracking import Run
from harness import (
    Batch,
    add_hidden_option,
    make_batches,
    module_class,
    prepare,
    use_hidden_option,
)

#: what each block of steps records, in the order the blocks rotate through
STATES = ("off", "floor", "journal")
#: the floor's scratch file: it is written round and round
FLOOR_BYTES = 8 * 1024 * 1024
_FRAME = struct.Struct("<II")


class RotatingBlocks:
    """The batches; moves to the next of :data:`STATES` every ``block`` steps and times
    each block (wall and this thread's CPU), leaving out the first two rotations."""

    def __init__(self, batches: list[Batch], block: int) -> None:
        self.batches = batches
        self.block = block
        self.state = STATES[0]
        self.times: dict[str, list[tuple[float, float]]] = {s: [] for s in STATES}

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        wall, cpu = time.perf_counter(), time.thread_time()
        for i, batch in enumerate(self.batches):
            if i % self.block == 0:
                now_wall, now_cpu = time.perf_counter(), time.thread_time()
                if i >= 2 * len(STATES) * self.block:
                    self.times[self.state].append(
                        ((now_wall - wall) * 1e6 / self.block, (now_cpu - cpu) * 1e6 / self.block)
                    )
                wall, cpu = now_wall, now_cpu
                self.state = STATES[(i // self.block) % len(STATES)]
            yield batch


class FloorRecorder:
    """The least a crash-safe record of a step costs the training thread: the values
    packed after the journal's row head (sequence, segment, names, step, time), framed
    with their length and CRC-32, copied into a shared memory map under a lock. No name
    handling, no sequence bookkeeping, no database."""

    def __init__(self, path: str) -> None:
        with open(path, "wb") as f:  # blocks allocated up front, as the spool files are
            f.write(bytes(FLOOR_BYTES))
        self._file = open(path, "r+b")  # noqa: SIM115 (closed by close())
        self._map = mmap.mmap(self._file.fileno(), FLOOR_BYTES)
        self._lock = threading.Lock()
        self._rows: dict[int, struct.Struct] = {}
        self._at = 0
        self._seq = 0

    def record(self, metrics: Any, step: int) -> None:
        """Frame one step's values and copy them into the map."""
        row = self._rows.get(len(metrics))
        if row is None:
            row = self._rows[len(metrics)] = struct.Struct("<qqqqd" + "d" * len(metrics))
        with self._lock:
            self._seq += len(metrics)
            body = row.pack(self._seq, 1, 1, step, time.time(), *metrics.values())
            at = self._at if self._at + _FRAME.size + len(body) <= FLOOR_BYTES else 0
            end = at + _FRAME.size + len(body)
            _FRAME.pack_into(self._map, at, len(body), zlib.crc32(body))
            self._map[at + _FRAME.size : end] = body
            self._at = end

    def close(self) -> None:
        """Unmap and close the scratch file."""
        self._map.close()
        self._file.close()


def measure(batches: list[Batch], block: int, root: str) -> dict[str, float]:
    """One fit rotating through :data:`STATES` every ``block`` steps; medians per state."""
    from ember.trainer import EmberModule, Trainer

    data = RotatingBlocks(batches, block)
    floor = FloorRecorder(os.path.join(root, "floor.bin"))
    log_metrics = Run.log_metrics

    def rotated(self: Run, metrics: Any, step: int, **kwargs: Any) -> None:
        state = data.state
        if state == "journal":
            log_metrics(self, metrics, step, **kwargs)
        elif state == "floor":
            floor.record(metrics, step)

    Run.log_metrics = rotated  # type: ignore[method-assign]
    try:
        trainer = Trainer(
            accelerator="cpu",
            max_epochs=1,
            logger=[],
            log_every_n_steps=1,
            default_root_dir=root,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        trainer.fit(module_class(EmberModule)(True), data)
        trainer.run.finish()
    finally:
        Run.log_metrics = log_metrics  # type: ignore[method-assign]
        floor.close()
    result = {}
    for state in STATES:
        result[f"{state}_wall_us"] = statistics.median(w for w, _ in data.times[state])
        result[f"{state}_cpu_us"] = statistics.median(c for _, c in data.times[state])
    return result


def cost(run: dict[str, float], state: str, clock: str = "wall") -> float:
    """What ``state`` adds to a step over recording nothing, in µs."""
    return run[f"{state}_{clock}_us"] - run[f"off_{clock}_us"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=21_000, help="steps of each fit (21000)")
    parser.add_argument("--block", type=int, default=100, help="steps per block (100)")
    parser.add_argument("--repeats", type=int, default=3, help="fits (3)")
    parser.add_argument("--json", metavar="OUT", help="also write every measurement to OUT")
    add_hidden_option(parser)
    args = parser.parse_args(argv)
    use_hidden_option(parser, args)
    if args.steps < 6 * len(STATES) * args.block:
        parser.error(
            f"--steps ({args.steps}) must be at least {6 * len(STATES)} blocks "
            f"({6 * len(STATES) * args.block})"
        )
    _, root, _ = prepare(0)
    batches = make_batches(args.steps)
    runs = []
    print(
        "µs per step with nothing recorded, and what the floor (the least a crash-safe "
        "record costs) and the journal add to it (median over the blocks of one fit); "
        f"MLP hidden width {args.hidden}"
    )
    for i in range(args.repeats):
        r = measure(batches, args.block, root)
        runs.append(r)
        print(
            f"  fit {i + 1}: off {r['off_wall_us']:.1f}; floor {cost(r, 'floor'):+.1f} "
            f"(cpu {cost(r, 'floor', 'cpu'):+.1f}); journal {cost(r, 'journal'):+.1f} "
            f"(cpu {cost(r, 'journal', 'cpu'):+.1f}, "
            f"x{r['journal_wall_us'] / r['off_wall_us']:.3f})"
        )
    for state in STATES[1:]:
        added = statistics.median(cost(r, state) for r in runs)
        ratio = statistics.median(r[f"{state}_wall_us"] / r["off_wall_us"] for r in runs)
        print(f"the {state}'s cost per step: {added:+.1f} µs (x{ratio:.3f}), median over fits")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "states": STATES, "runs": runs}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
