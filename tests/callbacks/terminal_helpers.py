"""Run a program attached to a real pseudo-terminal and replay what it wrote on a small
screen model, to see what a person at that terminal would see."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

PROGRAM = Path(__file__).with_name("terminal_program.py")

#: the escape sequences a progress bar may write: cursor up, erase line, erase below
_SEQUENCE = re.compile(r"\x1b\[(\d*)([AKJ])")


def run_in_terminal(
    args: list[str], columns: int = 100, rows: int = 40, timeout: float = 120
) -> str:
    """Run ``terminal_program.py ARGS`` with stdin, stdout and stderr on a pty of that size;
    return everything it wrote (``\\r\\n`` as the terminal received it)."""
    master, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "COLUMNS": "", "PYTHONWARNINGS": "default"}
    env.pop("COLUMNS")
    child = subprocess.Popen(
        [sys.executable, str(PROGRAM), *args],
        stdin=replica,
        stdout=replica,
        stderr=replica,
        close_fds=True,
        env=env,
    )
    os.close(replica)
    received = bytearray()
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            received.extend(chunk)
        child.wait(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(master)
    text = received.decode(errors="replace")
    assert child.returncode == 0, text
    return text


def screen(output: str, columns: int = 100) -> list[str]:
    """The lines left on screen (scrollback included) once ``output`` was written to a
    terminal ``columns`` wide: ``\\r``, ``\\n``, cursor up, erase line and erase below are
    honoured, long lines wrap; any other escape sequence fails the test."""
    lines: list[str] = [""]
    row = col = 0

    def put(char: str) -> None:
        nonlocal row, col
        if col >= columns:  # the terminal wraps
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        line = lines[row].ljust(col)
        lines[row] = line[:col] + char + line[col + 1 :]
        col += 1

    position = 0
    while position < len(output):
        char = output[position]
        if char == "\x1b":
            match = _SEQUENCE.match(output, position)
            assert match, f"unexpected escape sequence {output[position : position + 8]!r}"
            count, kind = int(match.group(1) or 1), match.group(2)
            if kind == "A":
                row = max(0, row - count)
            elif kind == "K":
                lines[row] = lines[row][:col]
            else:
                lines[row] = lines[row][:col]
                del lines[row + 1 :]
            position = match.end()
            continue
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
        else:
            put(char)
        position += 1
    return [line.rstrip() for line in lines if line.strip()]
