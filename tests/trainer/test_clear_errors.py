"""Clear messages instead of raw errors (issue 13, item 18): a loss backward cannot use,
data that yields no batches, a default_root_dir that cannot hold a run, and Lightning
callbacks whose hooks name their argument ``pl_module``."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from ember.hub import PluginLoadError, PluginManager, UnknownHookError, hookimpl
from ember.trainer import Callback, MisconfigurationError
from ember.trainer.callbacks import LambdaCallback
from torch.nn import functional as F
from trainer_helpers import TinyModel, make_dataset, make_loader


# ---------------------------------------------------------------------- the loss
class PerSampleLoss(TinyModel):
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y, reduction="none")


class DetachedLoss(TinyModel):
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return super().training_step(batch, batch_idx).detach()


class FrozenModel(TinyModel):
    def __init__(self) -> None:
        super().__init__()
        self.net.requires_grad_(False)
        self.extra = torch.nn.Linear(1, 1)  # trainable, but not in the loss's graph

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return super().training_step(batch, batch_idx)


class LossAsNumber(TinyModel):
    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return {"loss": super().training_step(batch, batch_idx).item()}


def test_a_non_scalar_loss_says_to_reduce_it(make_trainer: Any) -> None:
    """Regression: torch's 'grad can be implicitly created only for scalar outputs'."""
    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(PerSampleLoss(), make_loader(16, 16))
    assert str(info.value) == (
        "training_step's loss has shape (16,), but backward needs a single number: reduce it, "
        "e.g. loss.mean() or loss.sum() (F.cross_entropy and the other losses do so unless "
        "reduction='none')"
    )


def test_a_detached_loss_names_the_likely_causes(make_trainer: Any) -> None:
    """Regression: torch's 'element 0 of tensors does not require grad'."""
    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(DetachedLoss(), make_loader(16, 16))
    assert str(info.value) == (
        "training_step's loss does not require grad, so backward cannot train anything: it "
        "was detached from the graph: look for .detach(), .item() or .data, a torch.no_grad() "
        "or torch.inference_mode() block around the forward pass, or a new tensor built from "
        "values (torch.tensor(loss))"
    )


def test_a_loss_from_frozen_parameters_says_so(make_trainer: Any) -> None:
    class AllFrozen(TinyModel):
        def __init__(self) -> None:
            super().__init__()
            self.requires_grad_(False)

    with pytest.raises(MisconfigurationError, match="every parameter of AllFrozen has requires"):
        make_trainer(max_epochs=1).fit(AllFrozen(), make_loader(16, 16))


def test_manual_backward_of_a_detached_loss(make_trainer: Any) -> None:
    class Manual(TinyModel):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch: Any, batch_idx: int) -> None:
            self.manual_backward(super().training_step(batch, batch_idx).detach())

    with pytest.raises(MisconfigurationError, match=r"^the loss given to manual_backward does"):
        make_trainer(max_epochs=1).fit(Manual(), make_loader(16, 16))


def test_a_loss_returned_as_a_number_in_a_dict(make_trainer: Any) -> None:
    """Regression: AttributeError: 'float' object has no attribute 'detach'."""
    with pytest.raises(MisconfigurationError, match=r"returned \{'loss': float\}: the loss must"):
        make_trainer(max_epochs=1).fit(LossAsNumber(), make_loader(16, 16))


# ---------------------------------------------------------------------- the data
@pytest.mark.parametrize("data", [5, object()], ids=["int", "object"])
def test_training_data_that_is_not_iterable(make_trainer: Any, data: Any) -> None:
    """Regression: TypeError: 'int' object is not iterable, from inside the loop."""
    with pytest.raises(MisconfigurationError) as info:
        make_trainer(max_epochs=1).fit(TinyModel(), data)
    message = str(info.value)
    assert message.startswith("the training data passed in is ")
    assert message.endswith(
        "which is not iterable: pass a torch DataLoader (DataLoader(dataset, batch_size=...)) "
        "or any iterable of batches"
    )


def test_a_dataloader_method_returning_something_not_iterable(make_trainer: Any) -> None:
    class Returns(TinyModel):
        def train_dataloader(self) -> Any:
            return 3.5

    with pytest.raises(MisconfigurationError, match=r"^Returns.train_dataloader\(\) is 3.5"):
        make_trainer(max_epochs=1).fit(Returns())


def test_a_dataset_given_instead_of_a_loader_warns(make_trainer: Any) -> None:
    with pytest.warns(UserWarning, match="is a TensorDataset \\(a Dataset\\), not a DataLoader"):
        make_trainer(max_epochs=1, limit_train_batches=2).fit(TinyModel(), make_dataset(16))


# ---------------------------------------------------------------------- default_root_dir
def test_a_default_root_dir_under_a_file(make_trainer: Any, tmp_path: Path) -> None:
    """Regression: NotADirectoryError from deep inside the run journal."""
    (tmp_path / "notes.txt").write_text("")
    trainer = make_trainer(max_epochs=1, default_root_dir=str(tmp_path / "notes.txt" / "runs"))
    with pytest.raises(MisconfigurationError) as info:
        trainer.fit(TinyModel(), make_loader(16, 16))
    assert str(info.value) == (
        f"default_root_dir={str(tmp_path / 'notes.txt' / 'runs')!r} cannot be a folder: "
        f"{str(tmp_path / 'notes.txt')!r} is a file. Pass a folder path (runs and checkpoints "
        "are written under it)"
    )


def test_a_default_root_dir_without_a_logger_or_checkpoints_is_not_checked(
    make_trainer: Any, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("")
    trainer = make_trainer(
        max_epochs=1, logger=False, default_root_dir=str(tmp_path / "notes.txt" / "runs")
    )
    trainer.fit(TinyModel(), make_loader(16, 16))
    assert trainer.global_step == 1


_READ_ONLY_FIT = """
import sys
sys.path.insert(0, {helpers!r})
from ember.trainer import MisconfigurationError, Trainer
from trainer_helpers import TinyModel, make_loader
trainer = Trainer(default_root_dir={root!r}, enable_progress_bar=False, enable_model_summary=False)
try:
    trainer.fit(TinyModel(), make_loader(16, 16))
except MisconfigurationError as exc:
    print("ERROR:", exc)
"""


def _without_root_privileges() -> None:
    """In the child, before exec: drop the capabilities that let root write anywhere
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the bounding set, so the new program runs
    as root but obeys file permissions."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_read_only_default_root_dir(tmp_path: Path) -> None:
    """Regression: a raw PermissionError once the run folder was made. Runs in a
    subprocess that obeys file permissions even when the tests run as root."""
    root = tmp_path / "locked"
    root.mkdir()
    root.chmod(0o555)
    script = _READ_ONLY_FIT.format(helpers=str(Path(__file__).parent), root=str(root))
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_without_root_privileges if os.geteuid() == 0 else None,
        )
    finally:
        root.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert (
        f"ERROR: default_root_dir={str(root)!r} is not writable: runs and checkpoints are "
        "written under it. Pass a folder you can write to, or logger=False and "
        "enable_checkpointing=False to write nothing"
    ) in done.stdout


# ---------------------------------------------------------------------- pl_module
class LightningStyle(Callback):
    """Hooks as a Lightning user writes them, naming the module pl_module."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any) -> None:
        assert isinstance(pl_module, TinyModel) and "loss" in outputs
        self.calls.append("batch_end")

    def on_train_epoch_end(self, pl_module: Any) -> None:
        assert isinstance(pl_module, TinyModel)
        self.calls.append("epoch_end")

    def on_fit_start(self, trainer: Any, *, pl_module: Any) -> None:
        assert isinstance(pl_module, TinyModel)
        self.calls.append("fit_start")


def test_hooks_taking_pl_module_by_name_work(make_trainer: Any) -> None:
    """Regression: a subset of a hook's arguments with pl_module among them was refused
    ('does not fit the hook'), and a keyword-only pl_module failed when called."""
    callback = LightningStyle()
    make_trainer(max_epochs=1, callbacks=[callback]).fit(TinyModel(), make_loader(32, 16))
    assert callback.calls == ["fit_start", "batch_end", "batch_end", "epoch_end"]


def test_a_lambda_callback_with_pl_module(make_trainer: Any) -> None:
    seen: list[Any] = []
    callback = LambdaCallback(on_train_epoch_end=lambda pl_module: seen.append(pl_module))
    model = TinyModel()
    make_trainer(max_epochs=1, callbacks=[callback]).fit(model, make_loader(16, 16))
    assert seen == [model]


def test_a_hook_that_still_does_not_fit_mentions_pl_module(make_trainer: Any) -> None:
    class Wrong(Callback):
        def on_train_batch_end(self, trainer: Any, pl_module: Any, outs: Any) -> None: ...

    with pytest.raises(UnknownHookError, match=r"\(pl_module may stand for module\)$"):
        make_trainer(max_epochs=1, callbacks=[Wrong()])


def test_a_plugin_hookimpl_naming_pl_module_is_told_to_rename_it() -> None:
    class Plugin:
        @hookimpl
        def ember_on_fit_start(self, trainer: Any, pl_module: Any) -> None: ...

    manager = PluginManager(autoload=False)
    with pytest.raises(PluginLoadError) as info:
        manager.register(Plugin(), name="lightning-style")
    assert str(info.value).endswith(
        "ember's hooks call Lightning's pl_module 'module': rename the argument to module "
        "(a Callback subclass may keep the name pl_module)"
    )


def test_lightning_positional_hooks_still_work(make_trainer: Any) -> None:
    calls: list[int] = []

    class Positional(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
            calls.append(batch_idx)

    make_trainer(max_epochs=1, callbacks=[Positional()]).fit(TinyModel(), make_loader(32, 16))
    assert calls == [0, 1]
