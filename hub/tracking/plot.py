"""``ember runs plot``: metric curves of a run as a PNG. matplotlib is imported here
only, when a plot is asked for."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path

from ember.hub.tracking.journal import JournalError, JournalReader


def select_metrics(available: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The metrics named by ``patterns`` (exact names or shell-style globs), in order."""
    chosen: list[str] = []
    for pattern in patterns:
        matched = [m for m in available if fnmatch.fnmatchcase(m, pattern)]
        if not matched:
            import difflib

            hint = difflib.get_close_matches(pattern, list(available), n=1)
            msg = f"no metric {pattern!r} in this run"
            msg += f"; did you mean {hint[0]!r}?" if hint else "."
            raise JournalError(f"{msg} Logged metrics: {', '.join(available) or 'none'}")
        chosen += [m for m in matched if m not in chosen]
    return chosen


def plot_run(
    run_dir: str | os.PathLike[str],
    metrics: Sequence[str],
    output: str | os.PathLike[str],
    *,
    overlay: bool = False,
    log_y: bool = False,
) -> Path:
    """Draw each metric against step (one panel per metric, or one shared panel with
    ``overlay``) and save a PNG; resume points are marked."""
    try:
        import matplotlib
    except ImportError as exc:
        raise JournalError("ember runs plot needs matplotlib: pip install 'ember[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with JournalReader(run_dir) as reader:
        names = select_metrics(reader.metric_names(), metrics)
        series = {n: reader.metric_series(n) for n in names}
        resumes = [s["from_step"] for s in reader.segments() if s["from_step"] is not None]
        title = reader.id if reader.name == reader.id else f"{reader.name} ({reader.id})"

    panels = 1 if overlay else len(names)
    fig, axes = plt.subplots(
        panels, 1, sharex=True, squeeze=False, figsize=(8.0, 1.2 + 2.6 * panels)
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(names):
        ax = axes[0 if overlay else i][0]
        steps = [s for s, _, _ in series[name]]
        values = [v for _, v, _ in series[name]]
        style = "-o" if len(steps) <= 30 else "-"
        ax.plot(
            steps,
            values,
            style,
            color=colors[i % len(colors)],
            label=name,
            linewidth=1.6,
            markersize=3,
        )
        if steps and values[-1] == values[-1]:  # label the final value unless it is NaN
            ax.annotate(
                f"{values[-1]:.4g}",
                (steps[-1], values[-1]),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=colors[i % len(colors)],
            )
        if not overlay:
            ax.set_ylabel(name)
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    for row in axes:
        ax = row[0]
        for step in resumes:
            ax.axvline(step, color="0.4", linestyle=":", linewidth=1.0)
        if overlay:
            ax.set_ylabel("value")
            ax.legend(loc="best", frameon=False)
    if resumes:
        axes[0][0].text(
            resumes[-1],
            1.0,
            " resumed",
            transform=axes[0][0].get_xaxis_transform(),
            va="bottom",
            fontsize=8,
            color="0.3",
        )
    axes[-1][0].set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, format="png")
    plt.close(fig)
    return out
