"""Starts training processes quickly: imports torch, ember and ``train_resumable`` once,
then forks one child per request, so that a test can kill and resume a real training
process many times without paying the interpreter's start-up (about 4 s) each time.

Each child is an ordinary process running ``train_resumable.main(argv)``, with its stdout
and stderr in a file; a test signals it by pid. Protocol, one JSON object per line:

    {"argv": [...], "out": PATH}   ->  {"pid": PID}
    {"wait": PID}                  ->  {"status": CODE}   (exit code, or -N for signal N)

End of input ends the launcher.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch
import train_resumable

# Warm what every run would otherwise import on its first optimizer (torch._dynamo).
torch.optim.Adam([torch.zeros(1, requires_grad=True)])
torch.set_num_threads(1)


def child(argv: list[str], out: str) -> None:
    """Run the training in this (forked) process and exit with its status."""
    code = 0
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        train_resumable.main(argv)
    except SystemExit as exc:  # Preempted is one: exit with its status, as python would
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        if "argv" in request:
            pid = os.fork()
            if pid == 0:
                child(request["argv"], request["out"])
            reply = {"pid": pid}
        else:
            _, status = os.waitpid(request["wait"], 0)
            reply = {"status": os.waitstatus_to_exitcode(status)}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
