"""The loop's position and the trainer's state survive a save and a restore: a run cut
mid-epoch and resumed ends with the weights of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ember.trainer import Callback
from ember.trainer.loops import LoopProgress
from trainer_helpers import TinyModel, make_loader


class SaveAt(Callback):
    """Saves a checkpoint after global batch ``at`` and then stops training."""

    def __init__(self, path: Path, at: int) -> None:
        self.path = path
        self.at = at
        self.seen = 0

    def on_train_batch_end(self, trainer: Any) -> None:
        self.seen += 1
        if self.seen == self.at:
            trainer.save_checkpoint(self.path)
            trainer.should_stop = True


class Scheduled(TinyModel):
    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)]


@pytest.mark.parametrize("cut_after", [3, 7, 10])  # mid-epoch, mid-epoch, end of an epoch
def test_resume_matches_an_uninterrupted_run(
    make_trainer: Any, tmp_path: Path, cut_after: int
) -> None:
    full = Scheduled()
    make_trainer(max_epochs=4).fit(full, make_loader(80, 16), make_loader(32, 16))

    path = tmp_path / "cut.ckpt"
    first = Scheduled()
    make_trainer(max_epochs=4, callbacks=[SaveAt(path, cut_after)]).fit(
        first, make_loader(80, 16), make_loader(32, 16)
    )
    resumed = Scheduled(seed=123)  # other initial weights: the checkpoint must set them
    trainer = make_trainer(max_epochs=4)
    trainer.fit(resumed, make_loader(80, 16), make_loader(32, 16), ckpt_path=path)

    assert trainer.global_step == 20 and trainer.current_epoch == 4
    for name, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.8**4)


def test_loop_progress_state_dict() -> None:
    progress = LoopProgress(current_epoch=2, global_step=17, batch_idx=3, total_batches=13)
    restored = LoopProgress()
    restored.load_state_dict(progress.state_dict())
    assert restored == progress
