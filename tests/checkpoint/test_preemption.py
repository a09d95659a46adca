"""Preemption: real signals to a real process, a checkpoint at a step boundary, exit 75."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ember.trainer.checkpoint import (
    EXIT_PREEMPTED,
    Preempted,
    PreemptionHandler,
    load_checkpoint_safe,
)

SCRIPT = Path(__file__).parent / "scripts" / "preemptible.py"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_handler_only_sets_a_flag_and_restores_previous_handlers(signum: int) -> None:
    seen = []
    previous = signal.signal(signum, lambda s, f: seen.append(s))
    try:
        handler = PreemptionHandler().install()
        assert handler.installed
        os.kill(os.getpid(), signum)
        time.sleep(0.01)
        assert handler.requested and handler.signum == signum
        assert seen == []
        handler.uninstall()
        assert not handler.installed
        os.kill(os.getpid(), signum)
        time.sleep(0.01)
        assert seen == [signum]  # the previous handler is back
        handler.reset()
        assert not handler.requested and handler.signum is None
    finally:
        signal.signal(signum, previous)


def test_preempted_is_a_system_exit_with_its_own_status() -> None:
    with pytest.raises(SystemExit) as info:
        try:
            raise Preempted(signal.SIGTERM, "/ckpt/preempted.ckpt")
        except Exception:  # must not swallow it
            pytest.fail("Preempted was caught by `except Exception`")
    assert info.value.code == EXIT_PREEMPTED == 75
    assert str(info.value) == (
        "preempted by SIGTERM; checkpoint saved to /ckpt/preempted.ckpt; exiting with status 75"
    )


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / "preempted.ckpt"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_saves_at_the_next_step_and_exits_75(tmp_path: Path, signum: int) -> None:
    proc, path = _start(tmp_path)
    time.sleep(0.2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED, err
    checkpoint = load_checkpoint_safe(path)
    step = checkpoint["global_step"]
    assert step >= 1
    assert torch.equal(checkpoint["w"], torch.full((4,), float(step)))  # a whole step


def test_second_signal_while_a_step_hangs_stops_the_process(tmp_path: Path) -> None:
    proc, path = _start(tmp_path, "--hang")
    time.sleep(0.3)  # now stuck inside step 5
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert proc.poll() is None  # the first one only asked
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert not path.exists()
