"""What a person at a terminal sees: a real child process attached to a pseudo-terminal
trains with the default progress bar; its output is replayed on a screen model."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from terminal_helpers import run_in_terminal, screen

pytestmark = pytest.mark.slow  # each test runs a fresh Python process (a few seconds)


def test_prog_bar_on_a_terminal_costs_no_transfer_per_step(tmp_path: Path) -> None:
    # 100 steps with self.log(..., prog_bar=True) on a terminal, without then with the bar
    output = run_in_terminal(["--root", str(tmp_path), "--steps", "100", "--compare-bar"])
    without, with_bar = (int(n) for n in re.findall(r"TRANSFERS (\d+)", output))
    assert with_bar == without, output  # the bar shows flushed values: no read of its own
    assert with_bar <= 6


@pytest.fixture(scope="module")
def chatty_screen(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """2 epochs with validation, 7 prog_bar metrics on an 80-column terminal, a callback
    that prints, warns and logs at each epoch end; then validate and predict."""
    root = tmp_path_factory.mktemp("terminal")
    args = ["--root", str(root), "--steps", "10", "--epochs", "2", "--metrics", "6"]
    args += ["--chatty", "--validation", "--then-validate-and-predict"]
    return screen(run_in_terminal(args, columns=80), columns=80)


def _bar(lines: list[str], title: str) -> list[str]:
    """The lines of the bar whose first line starts with ``title``: it, then its metrics."""
    first = next(i for i, line in enumerate(lines) if line.startswith(title))
    rest = list(itertools.takewhile(lambda line: line.startswith("  "), lines[first + 1 :]))
    return lines[first : first + 1 + len(rest)]


def test_messages_are_printed_above_the_bar_not_into_it(chatty_screen: list[str]) -> None:
    for epoch in (0, 1):
        assert f"printed at epoch {epoch}" in chatty_screen
        assert f"WARNING:user:logged at epoch {epoch}" in chatty_screen
        warned = [line for line in chatty_screen if "UserWarning: warned at" in line]
        assert len(warned) == 2 and not any("it/s" in line for line in warned)
    # the bar is redrawn below the last message
    last_message = chatty_screen.index("WARNING:user:logged at epoch 1")
    assert chatty_screen[last_message + 1].startswith("Epoch 1: 100%")


def test_metrics_are_wrapped_at_the_terminal_width_not_cut(chatty_screen: list[str]) -> None:
    bar = _bar(chatty_screen, "Epoch 1: 100%")
    assert len(bar) > 1 and all(len(line) < 80 for line in bar), bar
    shown = " ".join(bar)
    for name in ["train_loss", "val_loss"] + [f"a_long_metric_name_number_{i}" for i in range(6)]:
        assert re.search(rf"\b{name}=[-\d.e]+", shown), (name, shown)


def test_the_last_epoch_bar_is_on_screen_once(chatty_screen: list[str]) -> None:
    epoch_lines = [line for line in chatty_screen if line.startswith("Epoch")]
    assert len(epoch_lines) == 1, chatty_screen
    assert epoch_lines[0].startswith("Epoch 1: 100%")


def test_evaluation_bars_show_only_their_own_metrics(chatty_screen: list[str]) -> None:
    validation = [line for line in chatty_screen if line.startswith("Validation")]
    predicting = [line for line in chatty_screen if line.startswith("Predicting")]
    assert len(validation) == 1 and len(predicting) == 1, chatty_screen
    assert validation[0].endswith("val_loss=" + validation[0].rsplit("val_loss=", 1)[-1])
    assert "train_loss" not in validation[0] and "a_long" not in validation[0]
    assert "=" not in predicting[0]
