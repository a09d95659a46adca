"""GradientNormMonitor reports the norms torch computes, on its own schedule only."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ember.trainer.callbacks import GradientNormMonitor, LambdaCallback


def _reference(module: Any, norm_type: float) -> dict[str, float]:
    """What the monitor should report, computed independently with torch's own helpers."""
    grads = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
    out = {
        f"grad_{norm_type}_norm/{n}": float(torch.linalg.vector_norm(g, norm_type))
        for n, g in grads.items()
    }
    out[f"grad_{norm_type}_norm_total"] = float(
        torch.nn.utils.get_total_norm(list(grads.values()), norm_type)
    )
    return out


@pytest.mark.parametrize("norm_type", [2.0, 1.0, "inf"])
def test_norms_match_torch(
    make_trainer: Any, model_cls: Any, make_loader: Any, norm_type: float | str
) -> None:
    monitor = GradientNormMonitor(norm_type=norm_type, every_n_steps=1)
    expected: list[dict[str, float]] = []
    reported: list[dict[str, float]] = []

    def check(trainer: Any, module: Any) -> None:  # runs right after the monitor
        expected.append(_reference(module, float(norm_type)))
        reported.append(dict(monitor.last_norms))

    trainer = make_trainer(
        max_epochs=1,
        callbacks=[monitor, LambdaCallback(on_before_optimizer_step=check)],
    )
    trainer.fit(model_cls(), make_loader(n=32))
    assert len(reported) == 4
    for got, want in zip(reported, expected, strict=True):
        assert got.keys() == want.keys()
        assert got == pytest.approx(want, rel=1e-5)
    assert trainer.logged_metrics[f"grad_{float(norm_type)}_norm_total"] == pytest.approx(
        reported[-1][f"grad_{float(norm_type)}_norm_total"]
    )


def test_logs_every_n_steps_with_one_transfer_each(
    make_trainer: Any, model_cls: Any, make_loader: Any, transfers: Any
) -> None:
    logged_at: list[int] = []

    def spy(trainer: Any) -> None:
        if trainer.global_step % 5 == 0:
            logged_at.append(trainer.global_step)

    def run(callbacks: list[Any]) -> int:
        before = transfers.count
        trainer = make_trainer(max_epochs=1, log_every_n_steps=1000, callbacks=callbacks)
        trainer.fit(model_cls(), make_loader(n=80, batch_size=4))  # 20 steps
        return transfers.count - before

    monitor = GradientNormMonitor(every_n_steps=5, per_layer=False)
    extra = run([monitor, LambdaCallback(on_before_optimizer_step=spy)]) - run([])
    assert logged_at == [0, 5, 10, 15]
    assert extra == 4  # one transfer per logging step, none in between
    assert set(monitor.last_norms) == {"grad_2.0_norm_total"}


def test_defaults_to_the_trainers_log_every_n_steps(
    make_trainer: Any, model_cls: Any, make_loader: Any
) -> None:
    monitor = GradientNormMonitor()
    seen: list[dict[str, float]] = []
    record = LambdaCallback(on_before_optimizer_step=lambda: seen.append(monitor.last_norms))
    trainer = make_trainer(max_epochs=1, log_every_n_steps=3, callbacks=[monitor, record])
    trainer.fit(model_cls(), make_loader(n=40, batch_size=8))  # steps 0 to 4
    # each logging step publishes a new dict of norms
    published_at = [i for i, norms in enumerate(seen) if i == 0 or norms is not seen[i - 1]]
    assert published_at == [0, 3]
    assert set(seen[-1]) == {
        "grad_2.0_norm/layer.weight",
        "grad_2.0_norm/layer.bias",
        "grad_2.0_norm_total",
    }


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(ValueError, match="positive number or 'inf'"):
        GradientNormMonitor(norm_type=0)
    with pytest.raises(ValueError, match="positive number or 'inf'"):
        GradientNormMonitor(norm_type="two")
    with pytest.raises(ValueError, match="positive integer"):
        GradientNormMonitor(every_n_steps=0)
