"""Real training processes for the resume tests: ``scripts/train_resumable.py``, started
either as a fresh interpreter or forked from ``scripts/launcher.py`` (which has imported
torch once, so a test can kill and resume many processes in seconds), then signalled by
pid. Exact resume is checked with ``torch.equal`` on every tensor of the state dict."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ember.trainer import Trainer
from torch.utils.data import DataLoader, Dataset

SCRIPTS = Path(__file__).parent / "scripts"
TRAIN = SCRIPTS / "train_resumable.py"
sys.path.insert(0, str(SCRIPTS))

import train_resumable  # noqa: E402  (found through the path above)

#: batches per epoch of train_resumable.py (96 rows, batches of 8)
STEPS_PER_EPOCH = 12


class Proc:
    """One training process: its pid, its output file, and how to wait for it."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out

    def output(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def alive(self) -> bool:
        raise NotImplementedError

    def wait(self, timeout: float = 120) -> int:
        """The exit status: the exit code, or -N when signal N ended it."""
        raise NotImplementedError

    def wait_ready(self, timeout: float = 120) -> str:
        """Block until training has started; the ``ready ...`` line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith("ready "):
                    return line
            if not self.alive():
                raise AssertionError(f"the run ended before training started:\n{self.output()}")
            time.sleep(0.005)
        raise AssertionError(f"training did not start within {timeout} s:\n{self.output()}")

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone (and reaped)
            os.kill(self.pid, signum)


class FreshProc(Proc):
    """A new interpreter: ``python train_resumable.py ...``."""

    def __init__(self, root: Path, args: tuple[str, ...], out: Path) -> None:
        with open(out, "w") as sink:
            self.popen = subprocess.Popen(
                [sys.executable, str(TRAIN), str(root), *args],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        super().__init__(self.popen.pid, out)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float = 120) -> int:
        return self.popen.wait(timeout)


class ForkedProc(Proc):
    """A process forked by the launcher."""

    def __init__(self, launcher: Launcher, pid: int, out: Path) -> None:
        super().__init__(pid, out)
        self.launcher = launcher

    def alive(self) -> bool:
        try:  # a child that exited stays a zombie until the launcher reaps it
            return Path(f"/proc/{self.pid}/stat").read_text().split()[2] != "Z"
        except FileNotFoundError:
            return False

    def wait(self, timeout: float = 120) -> int:
        return int(self.launcher.ask({"wait": self.pid})["status"])


class Launcher:
    """``scripts/launcher.py``: forks training processes from a pre-imported interpreter."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "launcher.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.popen.stdin.write(json.dumps(request) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise AssertionError(f"the launcher died (status {self.popen.wait()})")
        return json.loads(line)

    def start(self, root: Path, args: tuple[str, ...], out: Path) -> ForkedProc:
        pid = self.ask({"argv": [str(root), *args], "out": str(out)})["pid"]
        return ForkedProc(self, pid, out)

    def close(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        self.popen.wait(60)


def start(launcher: Launcher | None, root: Path, *args: str) -> Proc:
    """Start ``train_resumable.py ROOT ARGS``: forked when a launcher is given, else fresh."""
    root.mkdir(parents=True, exist_ok=True)
    out = root / f"run-{time.monotonic_ns()}.log"
    if launcher is None:
        return FreshProc(root, args, out)
    return launcher.start(root, args, out)


@dataclass
class Reference:
    """An uninterrupted run: weights after every step, final weights, top-k scores, and
    how long training took (from ``ready`` to exit)."""

    trajectory: dict[int, dict[str, torch.Tensor]]
    final: dict[str, torch.Tensor]
    best_scores: list[float]
    seconds: float

    @property
    def steps(self) -> int:
        return max(self.trajectory)


def run_reference(launcher: Launcher | None, root: Path) -> Reference:
    proc = start(launcher, root, "--trajectory")
    proc.wait_ready()
    began = time.monotonic()
    status = proc.wait()
    seconds = time.monotonic() - began
    assert status == 0, proc.output()
    return Reference(
        trajectory=torch.load(root / "trajectory.pt", weights_only=True),
        final=torch.load(root / "final.pt", weights_only=True),
        best_scores=best_scores(root),
        seconds=seconds,
    )


def best_scores(root: Path) -> list[float]:
    """The scores of the top-k ModelCheckpoint's kept files, sorted."""
    saved = torch.load(root / "best.pt", weights_only=True)["best_k_models"]
    return sorted(saved.values())


def assert_same_weights(
    got: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], what: str
) -> None:
    """Bitwise equality of every tensor (``torch.equal``: same shape, same values)."""
    assert got.keys() == expected.keys(), what
    differ = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not differ, f"{what}: {differ} differ from the uninterrupted run"


def kill(proc: Proc) -> int:
    """SIGKILL ``proc``; its exit status (-9 when the kill ended it)."""
    proc.signal(signal.SIGKILL)
    return proc.wait()


# --------------------------------------------------------------------------- in-process


class Counting(Dataset):
    """``train_resumable``'s training data, counting the samples read."""

    def __init__(self) -> None:
        self.data = train_resumable.dataset(train_resumable.ROWS, 0)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        self.reads += 1
        return self.data[index]


def build_run(
    root: Path,
    epochs: int,
    callbacks: list[Any] | None = None,
    workers: int = 0,
    seed: int = 0,
    data: Dataset | None = None,
    **flags: Any,
) -> tuple[Trainer, Any, DataLoader, DataLoader]:
    """``train_resumable``'s trainer, model and loaders, built in this process.

    ``seed`` seeds torch, numpy and ``random`` first: a resumed run passes another one, so
    that only the checkpoint can make it continue exactly.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    module = train_resumable.Net()
    flags.setdefault("enable_checkpointing", False)
    trainer = Trainer(
        max_epochs=epochs,
        default_root_dir=root,
        callbacks=callbacks or [],
        val_check_interval=0.5,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **flags,
    )
    train = DataLoader(
        data if data is not None else train_resumable.dataset(train_resumable.ROWS, 0),
        batch_size=train_resumable.BATCH,
        shuffle=True,
        num_workers=workers,
    )
    val = DataLoader(train_resumable.dataset(train_resumable.VAL_ROWS, 1), batch_size=16)
    return trainer, module, train, val


def fit_in_process(
    root: Path,
    epochs: int,
    callbacks: list[Any] | None = None,
    ckpt_path: str | os.PathLike[str] | None = None,
    workers: int = 0,
    seed: int = 0,
    data: Dataset | None = None,
    **flags: Any,
) -> tuple[Trainer, Any]:
    """Train :func:`build_run`'s model in this process; (trainer, module)."""
    trainer, module, train, val = build_run(root, epochs, callbacks, workers, seed, data, **flags)
    trainer.fit(module, train, val, ckpt_path=ckpt_path)
    return trainer, module
