"""A short real fit with one logger chosen by name, for the process and network tests.

    python train_with.py ROOT LOGGER_JSON MODE [--probe HOST] [--no-checkpoints]
                         [--wait-child NAME] [--at-exit]

The model logs ``train_loss`` every step and a 3x4 image ``samples/grad`` at the second
batch of each epoch. MODE ``fit`` trains, finishes the run (``trainer.run.finish()``;
with ``--at-exit`` the run is left to finish when the process exits) and prints a JSON
report: the outcome, the child processes and the threads left. ``crash`` raises in
``training_step`` at step 3 (which finalizes the loggers as failed) and reports.
``hang`` waits at step 3 until the process has a child named by ``--wait-child`` (a
tracker's helper process), prints ``READY <children JSON>`` and sleeps (to be killed).
With ``EMBER_NET_AUDIT=FILE``, every Python-level network attempt to a non-loopback place
is appended to FILE as a JSON line (an audit hook: ``socket.connect``, ``socket.sendto``,
``socket.getaddrinfo``); ``--probe HOST`` tries one connection to HOST after the fit, to
show that the recording works. ``--no-checkpoints`` turns checkpointing off.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path


def _loopback(host: object) -> bool:
    if host in (None, "", "localhost", "localhost.localdomain", socket.gethostname()):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _install_audit(path: str) -> None:
    def hook(event: str, args: tuple) -> None:
        host = None
        if event in ("socket.connect", "socket.sendto"):
            sock, address = args[0], args[-1]
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                host = address[0]
        elif event == "socket.getaddrinfo":
            host = args[0]
        else:
            return
        if not _loopback(host):
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"event": event, "host": str(host)}) + "\n")

    sys.addaudithook(hook)


def children() -> list[dict]:
    """This process's live child processes: pid and command name, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[1]) == os.getpid():
            found.append({"pid": int(entry.name), "comm": comm})
    return found


def main() -> None:
    root, logger, mode = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    if os.environ.get("EMBER_NET_AUDIT"):
        _install_audit(os.environ["EMBER_NET_AUDIT"])
    import torch
    from ember.trainer import Callback, EmberModule, Trainer
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(EmberModule):
        def __init__(self) -> None:
            super().__init__()
            self.save_hyperparameters({"lr": 0.1, "model": {"hidden": 4}})
            self.net = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            if mode == "crash" and self.global_step == 3:
                raise RuntimeError("deliberate crash at step 3")
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            if batch_idx == 1:  # a 3x4 gradient, once per epoch
                self.log_image("samples/grad", torch.linspace(0, 1, 12).reshape(3, 4))
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class HangAt3(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == 3:
                wanted = sys.argv[sys.argv.index("--wait-child") + 1]
                deadline = time.monotonic() + 120  # the logger's worker opens the tracker run
                while time.monotonic() < deadline:
                    if any(c["comm"] == wanted for c in children()):
                        break
                    time.sleep(0.1)
                print("READY " + json.dumps(children()), flush=True)
                time.sleep(600)

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 4, generator=g), torch.randint(0, 2, (64,), generator=g))
    trainer = Trainer(
        max_epochs=2,
        logger=[logger],
        log_every_n_steps=1,
        default_root_dir=str(root),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[HangAt3()] if mode == "hang" else None,
        enable_checkpointing="--no-checkpoints" not in sys.argv,
    )
    outcome = "success"
    try:
        trainer.fit(Tiny(), DataLoader(data, batch_size=8))
    except RuntimeError as exc:
        outcome = f"failed: {exc}"
    else:
        if "--at-exit" not in sys.argv:
            trainer.run.finish()
    if "--probe" in sys.argv:
        probe = socket.socket()
        probe.settimeout(0.2)
        try:
            probe.connect((sys.argv[sys.argv.index("--probe") + 1], 9))
        except OSError:
            pass
        finally:
            probe.close()
    threads = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    print(json.dumps({"outcome": outcome, "children": children(), "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
