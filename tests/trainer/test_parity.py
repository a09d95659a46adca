"""ember does exactly the arithmetic of a hand-written PyTorch loop: same seed, same
batches, same final loss and bit-identical weights."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from trainer_helpers import TinyModel, make_dataset, make_net


def raw_fit(
    epochs: int,
    train: DataLoader,
    val: DataLoader | None = None,
    lr: float = 0.1,
    accumulate: int = 1,
    clip: float | None = None,
    clip_algorithm: str = "norm",
) -> tuple[torch.nn.Module, float]:
    """The loop a PyTorch user writes by hand."""
    net = make_net()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    last = float("nan")
    for _ in range(epochs):
        net.train()
        n = len(train)
        for i, (x, y) in enumerate(train):
            loss = F.cross_entropy(net(x), y)
            (loss / accumulate if accumulate > 1 else loss).backward()
            if (i + 1) % accumulate == 0 or i + 1 == n:
                if clip is not None and clip_algorithm == "norm":
                    torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
                elif clip is not None:
                    torch.nn.utils.clip_grad_value_(net.parameters(), clip)
                optimizer.step()
                optimizer.zero_grad()
            last = loss.item()
        if val is not None:
            net.eval()
            with torch.no_grad():
                for x, y in val:
                    F.cross_entropy(net(x), y)
    return net, last


def loaders(seed: int) -> tuple[DataLoader, DataLoader]:
    """A shuffling training loader and a validation loader, both freshly seeded."""
    torch.manual_seed(seed)
    train = DataLoader(make_dataset(80), batch_size=16, shuffle=True)
    val = DataLoader(make_dataset(32, seed=1), batch_size=16)
    return train, val


@pytest.mark.parametrize(
    ("validate", "flags"),
    [
        (False, {}),
        (True, {}),
        (False, {"accumulate_grad_batches": 2}),
        (True, {"accumulate_grad_batches": 3}),
        (False, {"gradient_clip_val": 0.05}),
        (True, {"gradient_clip_val": 0.01, "gradient_clip_algorithm": "value"}),
    ],
)
def test_same_loss_and_weights_as_a_raw_loop(
    make_trainer: Any, validate: bool, flags: dict[str, Any]
) -> None:
    epochs = 3
    train, val = loaders(seed=7)
    raw_net, raw_loss = raw_fit(
        epochs,
        train,
        val if validate else None,
        accumulate=flags.get("accumulate_grad_batches", 1),
        clip=flags.get("gradient_clip_val"),
        clip_algorithm=flags.get("gradient_clip_algorithm", "norm"),
    )

    train, val = loaders(seed=7)
    model = TinyModel()
    trainer = make_trainer(max_epochs=epochs, **flags)
    trainer.fit(model, train, val if validate else None)

    ember_loss = trainer.callback_metrics["train_loss"].item()
    assert round(ember_loss, 5) == round(raw_loss, 5)
    for (name, theirs), ours in zip(
        raw_net.state_dict().items(), model.net.state_dict().values(), strict=True
    ):
        assert torch.equal(theirs, ours), f"{name} differs"
    per_epoch = -(-5 // flags.get("accumulate_grad_batches", 1))
    assert trainer.global_step == epochs * per_epoch
