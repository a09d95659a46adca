"""``Trainer(deterministic=...)`` (issue 13, item 21): torch's determinism switches are set
while an entry point runs and put back when it ends; an operation without a deterministic
implementation is named."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from ember.trainer import Callback
from trainer_helpers import TinyModel, make_loader


@pytest.fixture(autouse=True)
def torch_switches() -> Iterator[None]:
    """Each test starts from torch's defaults and leaves them so, whatever it does."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    torch.use_deterministic_algorithms(False)
    yield
    torch.use_deterministic_algorithms(False)
    cudnn.deterministic, cudnn.benchmark = saved[0], saved[1]
    if saved[2] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[2]


class Switches(Callback):
    """Records torch's switches as training runs."""

    def on_train_start(self, trainer: Any, module: Any) -> None:
        self.seen = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark,
        )


class PutModel(TinyModel):
    """Runs ``Tensor.put_``, which has no deterministic implementation on the CPU."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        torch.zeros(4).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize(
    ("deterministic", "expected"),
    [(True, (True, False, True, False)), ("warn", (True, True, True, False))],
)
def test_deterministic_sets_torch_switches_during_fit_and_restores_them(
    make_trainer: Any, deterministic: Any, expected: tuple[bool, ...]
) -> None:
    torch.backends.cudnn.benchmark = True  # a user's own setting, from before the trainer
    switches = Switches()
    trainer = make_trainer(max_epochs=1, deterministic=deterministic, callbacks=[switches])
    assert not torch.are_deterministic_algorithms_enabled()  # building it changes nothing
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    trainer.fit(TinyModel(), make_loader(16, 16))
    assert switches.seen == expected
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
    assert torch.backends.cudnn.benchmark


def test_two_trainers_keep_their_own_setting(make_trainer: Any) -> None:
    """Regression: the switch was set when a Trainer was built, so a second Trainer built
    later silently turned off the first one's determinism."""
    first, second = Switches(), Switches()
    deterministic = make_trainer(max_epochs=1, deterministic=True, callbacks=[first])
    loose = make_trainer(max_epochs=1, deterministic=False, callbacks=[second])
    deterministic.fit(TinyModel(), make_loader(16, 16))
    loose.fit(TinyModel(), make_loader(16, 16))
    assert first.seen[0] is True
    assert second.seen[0] is False


def test_the_switches_are_restored_after_a_failed_fit(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=1, deterministic=True)
    with pytest.raises(RuntimeError) as info:
        trainer.fit(PutModel(), make_loader(16, 16))
    assert not torch.are_deterministic_algorithms_enabled()
    assert "put_ does not have a deterministic implementation" in str(info.value)
    assert info.value.__notes__ == [
        "Trainer(deterministic=True) makes torch refuse put_, which has no deterministic "
        "implementation. Replace the operation, or pass deterministic='warn' to run it anyway "
        "(ember then lists such operations when the run ends)"
    ]


def test_warn_mode_runs_and_names_the_nondeterministic_operations(make_trainer: Any) -> None:
    trainer = make_trainer(max_epochs=2, deterministic="warn")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("default")
        shown_by = warnings.showwarning
        trainer.fit(PutModel(), make_loader(32, 16))
        assert warnings.showwarning is shown_by  # the recorder is gone
    assert trainer.global_step == 4
    seen = [str(w.message) for w in record]
    assert any(m.startswith("put_ does not have a deterministic implementation") for m in seen)
    assert (
        "Trainer(deterministic='warn'): these operations have no deterministic implementation "
        "and ran anyway, so results may differ between runs: put_. Replace them to make the "
        "run reproducible"
    ) in seen


def test_deterministic_with_benchmark_warns() -> None:
    from ember.trainer import Trainer

    with pytest.warns(UserWarning, match="cuDNN's benchmark mode picks convolution algorithms"):
        Trainer(deterministic=True, benchmark=True, enable_progress_bar=False, logger=False)


def test_no_flag_leaves_torch_as_it_is(make_trainer: Any) -> None:
    switches = Switches()
    torch.use_deterministic_algorithms(True, warn_only=True)
    make_trainer(max_epochs=1, callbacks=[switches]).fit(TinyModel(), make_loader(16, 16))
    assert switches.seen[:2] == (True, True)
    assert torch.is_deterministic_algorithms_warn_only_enabled()
