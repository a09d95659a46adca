"""The progress bar: no device reads between redraws, whole lines outside a terminal,
live redraws in one, and a bar of its own for validate, test and predict."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import sys
import termios
import threading
from typing import Any

import pytest
from ember.trainer import Callback
from ember.trainer.callbacks import ProgressBar


@pytest.mark.parametrize("refresh_rate", [1, 10])
def test_the_bar_adds_no_host_transfer(
    make_trainer: Any, model_cls: Any, make_loader: Any, transfers: Any, refresh_rate: int
) -> None:
    def extra_transfers(bar: ProgressBar | None) -> int:
        counts = []
        for callbacks in ([], [bar]):
            before = transfers.count
            trainer = make_trainer(max_epochs=2, log_every_n_steps=10, callbacks=callbacks)
            trainer.fit(model_cls(), make_loader(n=400, batch_size=4), make_loader(n=8, seed=1))
            counts.append(transfers.count - before)
        return counts[1] - counts[0]

    # 2 epochs of 100 training and 2 validation batches; non_tty_interval=0 makes every
    # refresh point print a line with the metrics of the last flush
    assert extra_transfers(ProgressBar(refresh_rate=refresh_rate, non_tty_interval=0)) == 0


def test_prints_one_line_per_epoch_outside_a_terminal(
    make_trainer: Any, model_cls: Any, make_loader: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = make_trainer(max_epochs=3, callbacks=[ProgressBar()])
    trainer.fit(model_cls(), make_loader(n=32), make_loader(n=16, seed=1))
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines):
        # 4 training and 2 validation batches per epoch on one bar
        assert line.startswith(f"Epoch {epoch}: 100%")
        assert " 6/6 " in line
        assert re.search(r"train_loss=[\d.]+, val_loss=[\d.]+", line)


def test_long_epochs_print_a_line_per_interval(
    make_trainer: Any, model_cls: Any, make_loader: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = make_trainer(
        max_epochs=1, callbacks=[ProgressBar(refresh_rate=2, non_tty_interval=0)]
    )
    trainer.fit(model_cls(), make_loader(n=32))
    lines = capsys.readouterr().err.splitlines()
    # a line at batches 2 and 4, and the epoch's final line
    assert [line.split("|")[2].split()[0] for line in lines] == ["2/4", "4/4", "4/4"]


def test_validate_test_and_predict_get_their_own_bars(
    make_trainer: Any, model_cls: Any, make_loader: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = make_trainer(callbacks=[ProgressBar()])
    model = model_cls()
    trainer.validate(model, make_loader(n=24), verbose=False)
    trainer.test(model, make_loader(n=16), verbose=False)
    trainer.predict(model, make_loader(n=8))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Validation", "Testing", "Predicting"]
    assert " 3/3 " in lines[0] and " 2/2 " in lines[1] and " 1/1 " in lines[2]


def test_refresh_rate_zero_disables_the_bar(
    make_trainer: Any, model_cls: Any, make_loader: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bar = ProgressBar(refresh_rate=0)
    trainer = make_trainer(max_epochs=1, callbacks=[bar])
    trainer.fit(model_cls(), make_loader())
    assert capsys.readouterr().err == ""
    assert not bar.is_enabled
    with pytest.raises(ValueError, match="integer >= 0"):
        ProgressBar(refresh_rate=-1)


@pytest.mark.parametrize("columns", [120, 0], ids=["sized", "reports-no-size"])
def test_redraws_in_place_in_a_terminal(
    make_trainer: Any,
    model_cls: Any,
    make_loader: Any,
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    master, replica = os.openpty()
    # a fresh pty reports 0 columns, as some containers do; the bar must still draw
    rows = 24 if columns else 0
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    received = bytearray()

    def drain() -> None:  # keep the pty buffer from filling up and blocking the writer
        while chunk := _read(master):
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with os.fdopen(replica, "w", buffering=1) as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        trainer = make_trainer(max_epochs=2, callbacks=[ProgressBar(leave=True)])
        trainer.fit(model_cls(), make_loader(n=32), make_loader(n=16, seed=1))
    reader.join(timeout=5)
    os.close(master)
    text = received.decode(errors="replace")
    assert "\r" in text
    assert "Epoch 0: 100%" in text and "Epoch 1: 100%" in text
    assert "6/6" in text


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal side was closed
        return b""


def test_a_stream_kept_past_the_bar_writes_plainly(
    make_trainer: Any, model_cls: Any, make_loader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code that keeps ``sys.stdout`` while the bar is up (a ``redirect_stdout`` that ends
    later, a handler made in a hook) must not draw the bar again once it is closed."""
    master, replica = os.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    received = bytearray()

    def drain() -> None:
        while chunk := _read(master):
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    kept: list[Any] = []

    class Keep(Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            kept.append(sys.stdout)
            print("during the epoch")

    with os.fdopen(replica, "w", buffering=1) as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        monkeypatch.setattr(sys, "stdout", terminal)
        trainer = make_trainer(max_epochs=1, callbacks=[ProgressBar(), Keep()])
        trainer.fit(model_cls(), make_loader(n=32))
        assert sys.stdout is terminal and sys.stderr is terminal  # given back
        kept[0].write("after the bar\n")
        kept[0].flush()
    reader.join(timeout=5)
    os.close(master)
    text = received.decode(errors="replace")
    assert kept[0] is not terminal  # it was the bar's stand-in
    before, _, after = text.partition("during the epoch")
    assert "Epoch 0" in before and "Epoch 0: 100%" in after
    assert text.endswith("after the bar\r\n") and "Epoch" not in text.rpartition("100%")[2]
