"""Turning a scheduler's "you are about to be stopped" signal into a checkpoint at the next
step boundary and a clean exit with a status that says "preempted, run me again".

The signal handler only sets a flag. Saving from inside a handler would run in the middle
of whatever the step was doing (half an optimizer update, a collective in flight), so the
trainer checks the flag between steps, where the state is consistent, saves, and raises
:class:`Preempted`.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

#: The exit status of a run stopped by preemption after saving its checkpoint: sysexits'
#: ``EX_TEMPFAIL`` ("temporary failure; the user is invited to retry"). It is clear of 0
#: (success), 1 (an error), 2 (bad usage) and 128+N (killed by signal N: 137 for SIGKILL,
#: 143 for SIGTERM, 138 for SIGUSR1), so a job script or scheduler rule can tell "saved,
#: requeue me" apart from both a crash and a kill that saved nothing.
EXIT_PREEMPTED = 75

#: SIGTERM: what Kubernetes, torchrun/TorchElastic and SLURM (at the time limit or on
#: preemption) send first. SIGUSR1: what SLURM sends ahead of time with ``--signal=USR1@N``.
DEFAULT_SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGUSR1")


class Preempted(SystemExit):
    """Raised by the trainer after saving on a preemption signal.

    A ``SystemExit`` with code :data:`EXIT_PREEMPTED`: uncaught, the interpreter exits with
    that status after running ``finally`` blocks and ``atexit`` handlers; ``except
    Exception`` does not swallow it.
    """

    def __init__(self, signum: int, checkpoint_path: str | None = None) -> None:
        super().__init__(EXIT_PREEMPTED)
        self.signum = signum
        self.checkpoint_path = checkpoint_path

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        saved = f"; checkpoint saved to {self.checkpoint_path}" if self.checkpoint_path else ""
        return f"preempted by {name}{saved}; exiting with status {EXIT_PREEMPTED}"


class PreemptionHandler:
    """Catch preemption signals and record them for the training loop to act on.

    ``install`` replaces the handlers of ``signals`` with one that sets
    :attr:`requested` (and :attr:`signum`); ``uninstall`` puts the previous handlers back.
    A second signal of the same kind while the first is pending means the step did not
    reach its boundary in time: the previous handler is restored and the signal delivered
    again, so the process stops the way it would have without ember.

    Usable as a context manager. Signal handlers can only be installed from the main
    thread; elsewhere ``install`` warns and does nothing (the run then stops on the signal
    as usual).
    """

    def __init__(self, signals: Iterable[str | int] = DEFAULT_SIGNALS) -> None:
        self.signals: tuple[signal.Signals, ...] = tuple(
            _resolve(s) for s in signals if _available(s)
        )
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def installed(self) -> bool:
        """Whether the handlers are in place."""
        return bool(self._previous)

    def install(self) -> PreemptionHandler:
        """Install the handlers (idempotent); returns self."""
        if self.installed:
            return self
        if threading.current_thread() is not threading.main_thread():
            import warnings

            warnings.warn(
                "preemption signals are not handled: handlers can only be installed from the "
                "main thread, and the Trainer is running in another one",
                UserWarning,
                stacklevel=2,
            )
            return self
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        """Restore the handlers that were there before :meth:`install`."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def reset(self) -> None:
        """Forget a recorded request (after it was acted on, or for a new run)."""
        self.requested = False
        self.signum = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == self.signum:
            sig = signal.Signals(signum)
            previous = self._previous.pop(sig, signal.SIG_DFL)
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.requested = True
        self.signum = signum

    def __enter__(self) -> PreemptionHandler:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


def _available(sig: str | int) -> bool:
    return isinstance(sig, int) or hasattr(signal, sig)


def _resolve(sig: str | int) -> signal.Signals:
    if isinstance(sig, int):
        return signal.Signals(sig)
    return signal.Signals[sig]
