"""``training_epoch_end``/``validation_epoch_end``/``test_epoch_end``: outputs are gathered
(detached) only when the method is overridden."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import torch
from ember.trainer import EmberModule
from trainer_helpers import TinyModel, make_loader


def test_outputs_are_gathered_detached_when_overridden(make_trainer: Any) -> None:
    seen: dict[str, Any] = {}

    class Model(TinyModel):
        def training_epoch_end(self, outputs: list[Any]) -> None:
            seen["train"] = outputs

        def validation_epoch_end(self, outputs: list[torch.Tensor]) -> None:
            seen["val"] = outputs
            self.log("avg_val_loss", torch.stack(outputs).mean())

        def test_epoch_end(self, outputs: list[torch.Tensor]) -> None:
            seen["test"] = outputs

    model = Model()
    trainer = make_trainer(max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(model, make_loader(48, 16), make_loader(32, 16))
    assert len(seen["train"]) == 3
    assert all(set(o) == {"loss"} and not o["loss"].requires_grad for o in seen["train"])
    assert len(seen["val"]) == 2
    assert trainer.logged_metrics["avg_val_loss"] == torch.stack(seen["val"]).mean().item()
    trainer.test(model, make_loader(16, 8), verbose=False)
    assert len(seen["test"]) == 2


def test_outputs_are_not_kept_when_not_overridden(make_trainer: Any) -> None:
    outputs: list[weakref.ref[torch.Tensor]] = []

    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            loss = super().training_step(batch, batch_idx)
            extra = torch.zeros(1000)
            outputs.append(weakref.ref(extra))
            return {"loss": loss, "extra": extra}

    assert Model.training_epoch_end is EmberModule.training_epoch_end
    trainer = make_trainer(max_epochs=1)
    trainer.fit(Model(), make_loader(48, 16))
    gc.collect()
    assert len(outputs) == 3
    assert all(ref() is None for ref in outputs)


def test_step_returning_none_skips_the_optimizer_step(make_trainer: Any) -> None:
    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            return None if batch_idx % 2 else loss

    trainer = make_trainer(max_epochs=1)
    trainer.fit(Model(), make_loader(64, 16))
    assert trainer.global_step == 2


def test_dict_outputs_reach_on_train_batch_end(make_trainer: Any) -> None:
    seen: list[Any] = []

    class Model(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            return {"loss": super().training_step(batch, batch_idx), "n": batch_idx}

        def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
            seen.append(outputs)

    make_trainer(max_epochs=1).fit(Model(), make_loader(32, 16))
    assert [o["n"] for o in seen] == [0, 1]
    assert not seen[0]["loss"].requires_grad
