"""A tqdm progress bar that stays out of the training loop's way.

The bar counts batches itself and redraws every ``refresh_rate`` batches; only then does it
read ``trainer.progress_bar_metrics``, so an idle step costs an increment and a modulo, and
metric tensors are converted to numbers at most once per redraw. When stderr is not a
terminal (CI logs, ``nohup``, a pipe) it prints whole lines instead of carriage-return
redraws: one per epoch, plus one every ``non_tty_interval`` seconds in a long epoch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, ClassVar, TextIO

from ember.trainer.callback import Callback
from tqdm import tqdm


def _total(value: Any) -> int | None:
    """A batch count as tqdm wants it: ``None`` when unknown or infinite."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [_total(v) for v in value]
        return None if any(p is None for p in parts) else sum(parts)  # type: ignore[arg-type]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def _format_metrics(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in metrics.items():
        if hasattr(value, "item"):  # a tensor: converted here, once per redraw
            value = value.item()
        text = tqdm.format_num(value) if isinstance(value, (int, float)) else str(value)
        parts.append(f"{key}={text}")
    return ", ".join(parts)


class _TerminalBar:
    """A live tqdm bar, redrawn in place."""

    def __init__(
        self, desc: str, total: int | None, file: TextIO, position: int, refresh_rate: int
    ) -> None:
        self._refresh_rate = refresh_rate
        # a terminal that reports no size (a bare pty, some containers) would get an
        # empty bar: fall back to 80 by 24
        try:
            sized = min(os.get_terminal_size(file.fileno())) > 0
        except (AttributeError, OSError, ValueError):
            sized = False
        self._bar = tqdm(
            desc=desc,
            total=total,
            file=file,
            position=position,
            leave=True,
            dynamic_ncols=sized,
            ncols=None if sized else 80,
            nrows=None if sized else 24,
            smoothing=0,
        )
        self.n = 0

    def due(self) -> bool:
        return self.n % self._refresh_rate == 0 or self.n == self._bar.total

    def show(self, postfix: str) -> None:
        self._bar.n = self.n
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.refresh()

    def extend(self, extra: int | None) -> None:
        """Add ``extra`` batches to the total (validation run inside a training epoch)."""
        self._bar.total = (
            None if extra is None or self._bar.total is None else self._bar.total + extra
        )

    def restart(self, desc: str, total: int | None) -> None:
        self._bar.set_description(desc, refresh=False)
        self._bar.reset(total=total)
        self.n = 0

    def close(self) -> None:
        self._bar.close()


class _LineBar:
    """The same progress, as whole lines for logs that cannot redraw."""

    def __init__(
        self, desc: str, total: int | None, file: TextIO, refresh_rate: int, interval: float
    ) -> None:
        self._file = file
        self._refresh_rate = refresh_rate
        self._interval = interval
        self.restart(desc, total)

    def due(self) -> bool:
        return (
            self.n % self._refresh_rate == 0
            and time.monotonic() - self._last_line >= self._interval
        )

    def show(self, postfix: str) -> None:
        now = time.monotonic()
        line = tqdm.format_meter(
            self.n, self._total, now - self._start, prefix=self._desc, postfix=postfix or None
        )
        self._file.write(line + "\n")
        self._file.flush()
        self._last_line = now

    def extend(self, extra: int | None) -> None:
        """Add ``extra`` batches to the total (validation run inside a training epoch)."""
        self._total = None if extra is None or self._total is None else self._total + extra

    def restart(self, desc: str, total: int | None) -> None:
        self._desc = desc
        self._total = total
        self.n = 0
        self._start = self._last_line = time.monotonic()

    def close(self) -> None:
        """Nothing to clear: every line is already final."""


class ProgressBar(Callback):
    """Show training progress with tqdm: one main bar for each epoch's training and
    validation batches, and a bar of its own for ``validate``, ``test`` and ``predict``.

    :param refresh_rate: redraw every this many batches; 0 disables the bar.
    :param leave: keep each finished epoch's bar on screen (one line per epoch); by
        default the main bar is reused and only the last epoch stays.
    :param process_position: line offset of the bars, for several trainers running at
        once in one terminal.
    :param non_tty_interval: when stderr is not a terminal, the least number of seconds
        between two progress lines inside an epoch (a line is always printed when an epoch
        or an evaluation run finishes).
    """

    role: ClassVar[str | None] = "progress_bar"

    def __init__(
        self,
        refresh_rate: int = 1,
        leave: bool = False,
        process_position: int = 0,
        non_tty_interval: float = 30.0,
    ) -> None:
        if not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(
                f"ProgressBar(refresh_rate=...) must be an integer >= 0, got {refresh_rate!r}"
            )
        if non_tty_interval < 0:
            raise ValueError(
                f"ProgressBar(non_tty_interval=...) must be >= 0 seconds, got {non_tty_interval}"
            )
        self.refresh_rate = refresh_rate
        self.leave = leave
        self.process_position = process_position
        self.non_tty_interval = non_tty_interval
        self._enabled = refresh_rate > 0
        self._stage: str | None = None
        self._sanity_checking = False
        self._main: _TerminalBar | _LineBar | None = None
        self._eval: _TerminalBar | _LineBar | None = None

    @property
    def is_enabled(self) -> bool:
        """Whether this process draws bars (the bar is off with ``refresh_rate=0`` and on
        every rank but global rank zero)."""
        return self._enabled

    def _new_bar(self, desc: str, total: int | None, offset: int) -> _TerminalBar | _LineBar:
        file = sys.stderr
        if file.isatty():
            return _TerminalBar(
                desc, total, file, self.process_position + offset, self.refresh_rate
            )
        return _LineBar(desc, total, file, self.refresh_rate, self.non_tty_interval)

    def _advance(self, trainer: Any, bar: _TerminalBar | _LineBar | None) -> None:
        if bar is None:
            return
        bar.n += 1
        if bar.due():
            bar.show(_format_metrics(trainer.progress_bar_metrics))

    # ------------------------------------------------------------------ fit
    def setup(self, trainer: Any, module: Any, stage: str) -> None:
        self._enabled = self.refresh_rate > 0 and trainer.is_global_zero
        self._stage = str(stage)

    def on_sanity_check_start(self, trainer: Any, module: Any) -> None:
        self._sanity_checking = True

    def on_sanity_check_end(self, trainer: Any, module: Any) -> None:
        self._sanity_checking = False

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        if not self._enabled:
            return
        desc = f"Epoch {trainer.current_epoch}"
        total = _total(trainer.num_training_batches)
        if self._main is None:
            self._main = self._new_bar(desc, total, 0)
            return
        self._main.show(_format_metrics(trainer.progress_bar_metrics))
        if self.leave and isinstance(self._main, _TerminalBar):
            self._main.close()
            self._main = self._new_bar(desc, total, 0)
        else:
            self._main.restart(desc, total)

    def on_train_batch_end(self, trainer: Any) -> None:
        self._advance(trainer, self._main)

    def on_train_end(self, trainer: Any, module: Any) -> None:
        if self._main is not None:
            self._main.show(_format_metrics(trainer.progress_bar_metrics))
            self._main.close()
            self._main = None

    # ------------------------------------------------------------------ validation
    def on_validation_start(self, trainer: Any, module: Any) -> None:
        if not self._enabled or self._sanity_checking:
            return
        if self._stage == "fit":
            if self._main is not None:
                # validation inside fit continues the epoch's bar
                self._main.extend(_total(trainer.num_val_batches))
            return
        self._eval = self._new_bar("Validation", _total(trainer.num_val_batches), 0)

    def on_validation_batch_end(self, trainer: Any) -> None:
        if self._sanity_checking:
            return
        self._advance(trainer, self._main if self._stage == "fit" else self._eval)

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        if self._stage != "fit":
            self._close_eval(trainer)

    # ------------------------------------------------------------------ test and predict
    def on_test_start(self, trainer: Any, module: Any) -> None:
        if self._enabled:
            self._eval = self._new_bar("Testing", _total(trainer.num_test_batches), 0)

    def on_test_batch_end(self, trainer: Any) -> None:
        self._advance(trainer, self._eval)

    def on_test_end(self, trainer: Any, module: Any) -> None:
        self._close_eval(trainer)

    def on_predict_start(self, trainer: Any, module: Any) -> None:
        if self._enabled:
            self._eval = self._new_bar("Predicting", _total(trainer.num_predict_batches), 0)

    def on_predict_batch_end(self, trainer: Any) -> None:
        self._advance(trainer, self._eval)

    def on_predict_end(self, trainer: Any, module: Any) -> None:
        self._close_eval(trainer)

    def _close_eval(self, trainer: Any) -> None:
        if self._eval is not None:
            self._eval.show(_format_metrics(trainer.progress_bar_metrics))
            self._eval.close()
            self._eval = None

    def teardown(self, trainer: Any, module: Any, stage: str) -> None:
        # after an exception the end hooks never ran: release the terminal lines
        for bar in (self._main, self._eval):
            if bar is not None:
                bar.close()
        self._main = self._eval = None
