"""Offline means offline: a real fit with the W&B logger in offline mode makes no network
connection other than to loopback, from Python (an audit hook) or from wandb-core (strace)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wandb_helpers import run_training

#: an address reserved for documentation (RFC 5737): the control probe's target
PROBE = "192.0.2.1"
_INET = re.compile(r'sin_addr=inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def _offline_logger(tmp_path: Path) -> dict:
    return {
        "name": "wandb",
        "mode": "offline",
        "dir": str(tmp_path / "wb"),
        "log_checkpoints": "all",
    }


@pytest.mark.slow
def test_offline_fit_opens_no_connection_from_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every socket.connect/sendto/getaddrinfo to a non-loopback place is recorded; only
    the control probe (tried by the script after the fit) may appear."""
    audit = tmp_path / "net.jsonl"
    monkeypatch.setenv("EMBER_NET_AUDIT", str(audit))
    run_training(tmp_path / "root", _offline_logger(tmp_path), "fit", "--probe", PROBE)
    attempts = audit.read_text().splitlines()
    assert any(PROBE in a for a in attempts), "the audit hook missed the control probe"
    assert [a for a in attempts if PROBE not in a] == []


def _strace_works() -> bool:
    strace = shutil.which("strace")
    if strace is None:
        return False
    probe = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=connect", "-o", "/dev/null", sys.executable, "-c", ""],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _strace_works(), reason="needs a working strace (ptrace allowed)")
def test_offline_fit_opens_no_connection_from_any_process(tmp_path: Path) -> None:
    """strace -f sees the training process and wandb-core: only AF_UNIX sockets and the
    control probe."""
    trace = tmp_path / "strace.txt"
    prefix = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace)]
    run_training(
        tmp_path / "root", _offline_logger(tmp_path), "fit", "--probe", PROBE, prefix=prefix
    )
    addresses = {a or b for a, b in _INET.findall(trace.read_text())}
    assert PROBE in addresses, "strace missed the control probe"
    remote = {a for a in addresses if a != PROBE and not a.startswith("127.") and a != "::1"}
    assert remote == set()
