"""A progress bar that stays out of the training loop's way.

The bar counts batches itself and redraws every ``refresh_rate`` batches. The metrics it
shows are the ``prog_bar=True`` values of the last flush point (every ``log_every_n_steps``
steps, the end of each epoch and of each evaluation), which the flush reads back in the
same host transfer as the logged values: the bar never adds a transfer of its own, so it
never makes the device wait.

On a terminal the bar is redrawn in place; metrics that do not fit next to it are wrapped
onto lines below it, at the terminal's width. While it is on screen, whatever the program
prints (``print``, warnings, ``logging`` handlers writing to the terminal) is written above
the bar, which is redrawn underneath. When stderr is not a terminal (CI logs, ``nohup``, a
pipe) it prints whole lines instead: one per epoch, plus one every ``non_tty_interval``
seconds in a long epoch.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import textwrap
import threading
import time
from typing import Any, ClassVar, TextIO

from ember.trainer.callback import Callback
from tqdm import tqdm

#: the least seconds between two redraws of a terminal bar inside an epoch
_MIN_REDRAW_INTERVAL = 0.1
#: the least width of the bar itself when metrics share its line
_MIN_BAR_WIDTH = 10
_UP = "\x1b[A"
_ERASE_LINE = "\x1b[K"
_ERASE_BELOW = "\x1b[J"


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
        text = tqdm.format_num(value) if isinstance(value, (int, float)) else str(value)
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def _flushed_metrics(trainer: Any) -> dict[str, float]:
    """The ``prog_bar`` values of the last flush point: reading them costs no transfer."""
    return trainer.metrics.flushed_progress_bar_metrics


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _TerminalBar:
    """A live bar redrawn in place: the progress line, with the metrics on it when they fit
    the terminal's width and wrapped onto the lines below it when they do not."""

    def __init__(
        self,
        desc: str,
        total: int | None,
        file: TextIO,
        position: int,
        refresh_rate: int,
    ) -> None:
        self._file = file
        self._position = position
        self._refresh_rate = refresh_rate
        #: held while drawing, and by :class:`_PrintAbove` while it writes above the bar
        self.lock = threading.RLock()
        self._drawn = 0  # lines of the bar on screen now; the cursor ends the last one
        self._metrics = ""
        self._last_draw = -math.inf
        self._redirect = _PrintAbove(self)
        self.restart(desc, total)
        self._redirect.install()

    def due(self) -> bool:
        if self.n == self._total:
            return True
        return (
            self.n % self._refresh_rate == 0
            and time.monotonic() - self._last_draw >= _MIN_REDRAW_INTERVAL
        )

    def show(self, metrics: str) -> None:
        self._metrics = metrics
        self._draw()

    def _width(self) -> int:
        """Columns to draw in: the terminal's width (80 when it reports none), less the
        last column, where terminals wrap."""
        try:
            columns = os.get_terminal_size(self._file.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return max((columns if columns > 0 else 80) - 1, 20)

    def _lines(self) -> list[str]:
        width = self._width()
        elapsed = time.monotonic() - self._start
        metrics = self._metrics or None
        meter = {"n": self.n, "total": self._total, "elapsed": elapsed, "prefix": self._desc}
        bare = tqdm.format_meter(**meter, ncols=0, postfix=metrics)  # type: ignore[arg-type]
        if metrics is None or len(bare) + 2 + _MIN_BAR_WIDTH <= width:
            return [tqdm.format_meter(**meter, ncols=width, postfix=metrics)]  # type: ignore[arg-type]
        wrapped = textwrap.wrap(
            metrics,
            width=width,
            initial_indent="  ",
            subsequent_indent="  ",
            break_on_hyphens=False,
        )
        return [tqdm.format_meter(**meter, ncols=width), *wrapped]  # type: ignore[arg-type]

    def _draw(self) -> None:
        with self.lock:
            lines = self._lines()
            # the bar never shrinks while on screen: a shorter drawing blanks the rest
            lines += [""] * (self._drawn - len(lines))
            home = "\r" + _UP * (self._drawn - 1) if self._drawn else "\n" * self._position
            self._file.write(home + (_ERASE_LINE + "\n").join(lines) + _ERASE_LINE)
            self._file.flush()
            self._drawn = len(lines)
            self._last_draw = time.monotonic()

    def clear(self) -> None:
        """Take the bar off the screen, leaving the cursor where its first line was."""
        with self.lock:
            if self._drawn:
                self._file.write("\r" + _UP * (self._drawn - 1) + _ERASE_BELOW)
                self._file.flush()
                self._drawn = 0

    def redraw(self) -> None:
        """Draw the bar again after :meth:`clear`."""
        self._draw()

    def extend(self, extra: int | None) -> None:
        """Add ``extra`` batches to the total (validation run inside a training epoch)."""
        self._total = None if extra is None or self._total is None else self._total + extra

    def restart(self, desc: str, total: int | None) -> None:
        self._desc = desc
        self._total = total
        self.n = 0
        self._start = time.monotonic()

    def close(self) -> None:
        """Leave the final drawing on screen and give the terminal back to the program's
        own output, on the line below the bar."""
        with self.lock:
            self._redirect.uninstall()
            if not self._drawn:
                self._draw()
            self._file.write("\n")
            self._file.flush()
            self._drawn = 0


class _PrintAbove:
    """While a terminal bar is on screen, stands in for ``sys.stdout`` and ``sys.stderr``
    (when they are terminals) and for the streams of ``logging`` handlers writing to them:
    each complete line written is printed above the bar, which is redrawn below it."""

    def __init__(self, bar: _TerminalBar) -> None:
        self._bar = bar
        self._streams: list[tuple[str, Any, _LineThrough]] = []
        self._handlers: list[tuple[logging.StreamHandler[Any], Any, _LineThrough]] = []

    def install(self) -> None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if _is_terminal(stream) and not isinstance(stream, _LineThrough):
                proxy = _LineThrough(stream, self._bar)
                setattr(sys, name, proxy)
                self._streams.append((name, stream, proxy))
        proxies = {id(stream): proxy for _, stream, proxy in self._streams}
        for handler in _stream_handlers():
            # logging.lastResort looks sys.stderr up on each record: it follows by itself
            stream = handler.__dict__.get("stream")
            if stream is not None and id(stream) in proxies:
                handler.setStream(proxies[id(stream)])  # type: ignore[arg-type]
                self._handlers.append((handler, stream, proxies[id(stream)]))

    def uninstall(self) -> None:
        """Put back what :meth:`install` replaced, unless someone replaced it since."""
        for handler, stream, proxy in self._handlers:
            if handler.__dict__.get("stream") is proxy:
                handler.setStream(stream)
        for name, stream, proxy in self._streams:
            proxy.release()
            if getattr(sys, name) is proxy:
                setattr(sys, name, stream)
        self._handlers.clear()
        self._streams.clear()


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[Any] = [logging.getLogger()]
    loggers += [
        lg
        for lg in list(logging.Logger.manager.loggerDict.values())
        if isinstance(lg, logging.Logger)
    ]
    return [h for lg in loggers for h in lg.handlers if isinstance(h, logging.StreamHandler)]


class _LineThrough:
    """A text stream that hands complete lines to the terminal above a live bar (a partial
    line waits for its end, or for the bar to close)."""

    def __init__(self, target: TextIO, bar: _TerminalBar) -> None:
        self._target = target
        self._bar = bar
        self._pending = ""
        self._released = False

    def write(self, text: str) -> int:
        if self._released:  # kept by someone past the bar's life: a plain stream again
            return self._target.write(text)
        with self._bar.lock:
            head, newline, self._pending = (self._pending + text).rpartition("\n")
            if newline:
                self._bar.clear()
                self._target.write(head + newline)
                self._target.flush()
                self._bar.redraw()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._target.flush()

    def release(self) -> None:
        """Write out a partial line still waiting (the bar is closing)."""
        with self._bar.lock:
            self._released = True
            if self._pending:
                self._bar.clear()
                self._target.write(self._pending)
                self._target.flush()
                self._pending = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


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

    def show(self, metrics: str) -> None:
        now = time.monotonic()
        line = tqdm.format_meter(
            self.n, self._total, now - self._start, prefix=self._desc, postfix=metrics or None
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
    """Show training progress: one main bar for each epoch's training and validation
    batches, and a bar of its own for ``validate``, ``test`` and ``predict``.

    The metrics shown are the ``prog_bar=True`` values of the last flush point (every
    ``log_every_n_steps`` steps and at the end of each epoch and evaluation): the bar never
    reads a value from the device itself. Lower ``log_every_n_steps`` to see them change
    more often.

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
        if _is_terminal(file):
            return _TerminalBar(
                desc, total, file, self.process_position + offset, self.refresh_rate
            )
        return _LineBar(desc, total, file, self.refresh_rate, self.non_tty_interval)

    def _advance(self, trainer: Any, bar: _TerminalBar | _LineBar | None) -> None:
        if bar is None:
            return
        bar.n += 1
        if bar.due():
            bar.show(_format_metrics(_flushed_metrics(trainer)))

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
        self._main.show(_format_metrics(_flushed_metrics(trainer)))
        if self.leave and isinstance(self._main, _TerminalBar):
            self._main.close()
            self._main = self._new_bar(desc, total, 0)
        else:
            self._main.restart(desc, total)

    def on_train_batch_end(self, trainer: Any) -> None:
        self._advance(trainer, self._main)

    def on_train_end(self, trainer: Any, module: Any) -> None:
        if self._main is not None:
            self._main.show(_format_metrics(_flushed_metrics(trainer)))
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
            self._eval.show(_format_metrics(_flushed_metrics(trainer)))
            self._eval.close()
            self._eval = None

    def teardown(self, trainer: Any, module: Any, stage: str) -> None:
        # after an exception the end hooks never ran: release the terminal lines
        for bar in (self._main, self._eval):
            if bar is not None:
                bar.close()
        self._main = self._eval = None
