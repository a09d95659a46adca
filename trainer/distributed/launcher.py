"""ember's own launcher for one machine: the script is run again once per extra device,
with torchrun's variables set, so every process executes the same program top to
bottom and joins the same process group (no pickling of the model or the data)."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ember.trainer.distributed.environments import ClusterEnvironment
from ember.trainer.plugins import MisconfigurationError

#: a child exiting with this status saved a preemption checkpoint: not a failure
EXIT_PREEMPTED = 75
#: how long the parent waits at exit for the children to finish their script
_EXIT_WAIT_S = 600.0


def script_command() -> list[str]:
    """The command that runs this program again (``python script.py ...`` or
    ``python -m package.module ...``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        name = spec.name.removesuffix(".__main__")
        return [sys.executable, "-m", name, *sys.argv[1:]]
    path = getattr(main, "__file__", None)
    if not path or not os.path.exists(path):
        raise MisconfigurationError(
            "strategy 'ddp' starts one process per device by running your script again, but "
            "this program has no script file (an interactive session or notebook): put the "
            "training in a script, or start the processes with torchrun "
            "(torchrun --nproc-per-node N script.py)"
        )
    return [sys.executable, os.path.abspath(path), *sys.argv[1:]]


class SubprocessLauncher:
    """Starts ``environment.world_size - 1`` copies of the script (local ranks 1..N-1) and
    runs the entry point here as rank 0.

    A watcher thread stops the whole job when a child fails: the failing child printed
    its own error; the others are killed and this process exits with the child's status,
    instead of every rank waiting forever on a collective.
    """

    def __init__(self, environment: ClusterEnvironment) -> None:
        self.environment = environment
        self.children: list[subprocess.Popen[bytes]] = []

    def launch(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Start the children (once per program), then run ``function`` as rank 0."""
        if not self.children:
            self._start_children()
        try:
            return function(*args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, SystemExit) and exc.code == EXIT_PREEMPTED:
                raise
            # an error here may only echo a child's (a collective whose peer died): then
            # the child's own error, already printed, is the one to show
            failed = self._failed_child(wait_s=3.0)
            if failed is not None:
                self._stop_all(*failed)
            self.kill_children()
            raise

    def _start_children(self) -> None:
        env = self.environment
        command = script_command()
        shared = {
            "MASTER_ADDR": env.master_addr,
            "MASTER_PORT": str(env.master_port),
            "WORLD_SIZE": str(env.world_size),
            "LOCAL_WORLD_SIZE": str(env.world_size),
            "GROUP_RANK": "0",
            "NODE_RANK": "0",
        }
        for local_rank in range(1, env.world_size):
            child_env = {**os.environ, **shared, "RANK": str(local_rank)}
            child_env["LOCAL_RANK"] = str(local_rank)
            self.children.append(subprocess.Popen(command, env=child_env))
        # from now on this process is rank 0 of a started job: a later Trainer in the
        # script joins it (as the children's do) instead of starting processes again
        os.environ.update(shared, RANK="0", LOCAL_RANK="0")
        threading.Thread(target=self._watch, name="ember-ddp-watch", daemon=True).start()
        atexit.register(self._wait_children)

    def _failed_child(self, wait_s: float = 0.0) -> tuple[int, int] | None:
        """``(rank, status)`` of a child that failed, waiting up to ``wait_s`` for one."""
        deadline = time.monotonic() + wait_s
        while True:
            for rank, child in enumerate(self.children, 1):
                code = child.poll()
                if code not in (None, 0, EXIT_PREEMPTED):
                    return rank, code
            if time.monotonic() >= deadline or all(c.poll() is not None for c in self.children):
                return None
            time.sleep(0.1)

    def _stop_all(self, rank: int, code: int) -> None:
        print(
            f"ember: the process of rank {rank} exited with status {code} (its error is "
            "above); stopping every rank",
            file=sys.stderr,
            flush=True,
        )
        self.kill_children()
        os._exit(code if code > 0 else 128 - code)

    def _watch(self) -> None:
        while any(child.poll() is None for child in self.children):
            failed = self._failed_child()
            if failed is not None:
                self._stop_all(*failed)
            time.sleep(0.2)

    def kill_children(self) -> None:
        """Stop every child at once (they may be blocked in a collective)."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
        for child in self.children:
            child.wait()

    def _wait_children(self) -> None:
        deadline = time.monotonic() + _EXIT_WAIT_S
        for child in self.children:
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
