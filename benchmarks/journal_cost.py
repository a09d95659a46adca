"""What the run journal costs a training step, measured inside one fit.

The benchmark module (two ``self.log`` per step, flushed every step) trains once with the
journal only (``logger=[]``), and ``Run.log_metrics`` is switched off and on in
alternating blocks of steps. The median step time of the blocks with it on, minus that of
the blocks with it off, is the journal's cost per step on the training thread. Two
blocks a few milliseconds apart see the same machine, so this difference is steadier on a
shared machine than comparing separate fits (``logging_overhead.py``), whose drift
between rounds is often as large as the journal's cost. The background thread that moves
spooled rows into the database (every 0.25 s) runs during both kinds of block, so its
share is not in the difference: ``logging_overhead.py --trackers`` (``ember journal
only``) counts it.

Run: ``python benchmarks/journal_cost.py [--steps 20000] [--block 100] [--repeats 3]
[--hidden 64] [--json OUT]`` (``--hidden``: the MLP's width, for a longer step; the
journal's cost per flush does not grow with it). Prints, per repeat, the step time with
the journal off and on (wall and training-thread CPU), the difference and the ratio; then
the median over repeats.
Information only: no target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
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


class AlternatingBlocks:
    """The batches; switches the journal every ``block`` steps and times each block
    (wall and this thread's CPU), leaving out the first two blocks."""

    def __init__(self, batches: list[Batch], block: int) -> None:
        self.batches = batches
        self.block = block
        self.journal_on = True
        self.times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        wall, cpu = time.perf_counter(), time.thread_time()
        for i, batch in enumerate(self.batches):
            if i % self.block == 0:
                now_wall, now_cpu = time.perf_counter(), time.thread_time()
                if i >= 2 * self.block:
                    self.times[self.journal_on].append(
                        ((now_wall - wall) * 1e6 / self.block, (now_cpu - cpu) * 1e6 / self.block)
                    )
                wall, cpu = now_wall, now_cpu
                self.journal_on = (i // self.block) % 2 == 0
            yield batch


def measure(batches: list[Batch], block: int, root: str) -> dict[str, float]:
    """One fit with the journal switched every ``block`` steps; medians per state."""
    from ember.trainer import EmberModule, Trainer

    data = AlternatingBlocks(batches, block)
    log_metrics = Run.log_metrics

    def switched(self: Run, metrics: Any, step: int, **kwargs: Any) -> None:
        if data.journal_on:
            log_metrics(self, metrics, step, **kwargs)

    Run.log_metrics = switched  # type: ignore[method-assign]
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
    result = {}
    for state, label in ((False, "off"), (True, "on")):
        result[f"{label}_wall_us"] = statistics.median(w for w, _ in data.times[state])
        result[f"{label}_cpu_us"] = statistics.median(c for _, c in data.times[state])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="steps of each fit (20000)")
    parser.add_argument("--block", type=int, default=100, help="steps per block (100)")
    parser.add_argument("--repeats", type=int, default=3, help="fits (3)")
    parser.add_argument("--json", metavar="OUT", help="also write every measurement to OUT")
    add_hidden_option(parser)
    args = parser.parse_args(argv)
    use_hidden_option(parser, args)
    if args.steps < 6 * args.block:
        parser.error(f"--steps ({args.steps}) must be at least 6 blocks ({6 * args.block})")
    _, root, _ = prepare(0)
    batches = make_batches(args.steps)
    runs = []
    print(
        "journal off / on, µs per step (median over blocks of one fit); "
        f"MLP hidden width {args.hidden}"
    )
    for i in range(args.repeats):
        r = measure(batches, args.block, root)
        runs.append(r)
        print(
            f"  fit {i + 1}: wall {r['off_wall_us']:.1f} / {r['on_wall_us']:.1f} "
            f"(+{r['on_wall_us'] - r['off_wall_us']:.1f}, "
            f"x{r['on_wall_us'] / r['off_wall_us']:.3f}); training-thread CPU "
            f"{r['off_cpu_us']:.1f} / {r['on_cpu_us']:.1f} "
            f"(+{r['on_cpu_us'] - r['off_cpu_us']:.1f})"
        )
    cost = statistics.median(r["on_wall_us"] - r["off_wall_us"] for r in runs)
    ratio = statistics.median(r["on_wall_us"] / r["off_wall_us"] for r in runs)
    print(f"the journal's cost per step: +{cost:.1f} µs (x{ratio:.3f}), median over fits")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
