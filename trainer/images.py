"""Turning a torch tensor into :class:`~ember.hub.tracking.images.Pixels`, so that the
hub (which never imports torch) can store it as a PNG."""

from __future__ import annotations

from typing import Any

import torch
from ember.hub.tracking.images import ACCEPTED, Pixels


def tensor_pixels(tensor: torch.Tensor) -> Pixels:
    """An image tensor as 8-bit pixels: HW, HWC or CHW (1 to 4 channels), float in
    [0, 1] (clipped) or integers in [0, 255]; copied to the host once."""
    t = tensor.detach()
    if t.ndim == 3 and t.shape[0] in (1, 2, 3, 4) and t.shape[-1] not in (1, 2, 3, 4):
        t = t.permute(1, 2, 0)  # CHW -> HWC
    if t.ndim == 2:
        t = t.unsqueeze(-1)
    if t.ndim != 3 or t.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(
            f"an image tensor must be HW, HWC or CHW with 1 to 4 channels; got shape "
            f"{tuple(tensor.shape)}"
        )
    if t.dtype == torch.bool:
        t = t.to(torch.uint8) * 255
    elif t.is_floating_point():
        t = (torch.nan_to_num(t.float()).clamp(0.0, 1.0) * 255.0).round()
    elif t.dtype != torch.uint8:
        t = t.clamp(0, 255)
    t = t.to(device="cpu", dtype=torch.uint8).clone(memory_format=torch.contiguous_format)
    height, width, channels = t.shape
    return Pixels(int(height), int(width), int(channels), bytes(t.untyped_storage()))


def as_image(image: Any) -> Any:
    """``image`` as something :func:`ember.hub.tracking.images.save_png` takes."""
    if isinstance(image, torch.Tensor):
        return tensor_pixels(image)
    if image is None:
        raise TypeError(f"cannot log None as an image; give {ACCEPTED}")
    return image
