"""A real ``mlflow server`` on 127.0.0.1 for tests and benchmarks (needs the full
``mlflow`` distribution: ``pip install 'ember-mlflow[test]'``).

    from ember_mlflow.testing import MlflowServer

    server = MlflowServer(tmp_path).start()  # waits for GET /health
    trainer = Trainer(logger={"name": "mlflow", "tracking_uri": server.uri})
    ...
    server.stop()  # by its PID; nothing of it is left running
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: a loaded two-core machine can take a while to import MLflow's server stack
SERVER_START_TIMEOUT = 180.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), deepest last."""
    found: list[int] = []
    queue = [pid]
    while queue:
        parent = queue.pop()
        try:
            text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
        except OSError:
            continue
        kids = [int(k) for k in text.split()]
        found += kids
        queue += kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class MlflowServer:
    """``mlflow server`` with a SQLite backend and proxied artifacts, all under ``root``.

    :meth:`start` waits for ``GET /health``; :meth:`stop` sends SIGTERM to the server's
    PID (SIGKILL to it and its children if they outlive a deadline). Job execution is
    off: it would leave huey stores in /dev/shm behind.
    """

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.tmp = root / "tmp"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []
        self.log = root / "server.log"

    @property
    def uri(self) -> str:
        """The tracking URI clients use."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        """Start the server and wait until ``/health`` answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "TMPDIR": str(self.tmp),
        }
        mlflow = Path(sys.executable).with_name("mlflow")
        cmd = [
            str(mlflow) if mlflow.exists() else "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=5) as resp:
                    if resp.status == 200:
                        self.pids = [self.proc.pid, *_children(self.proc.pid)]
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy in time: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop the server by its PID and make sure none of its processes is left."""
        if self.proc is None:
            return
        pids = [self.proc.pid, *_children(self.proc.pid)]
        self.pids = sorted(set(self.pids + pids))
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the server's processes used so far, children that
        exited included (from /proc: Linux only): what the server costs the machine."""
        if self.proc is None:
            raise RuntimeError("the server is not running")
        total = 0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it exited: its parent's reaped-children fields count it
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return total / os.sysconf("SC_CLK_TCK")

    def leftovers(self) -> list[str]:
        """Processes of the server still alive, and files left in its private TMPDIR."""
        alive = [f"pid {p}" for p in self.pids if _alive(p)]
        files = [str(p) for p in self.tmp.iterdir()] if self.tmp.exists() else []
        return alive + files
