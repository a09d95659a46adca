"""Images for the run: whatever a user logs becomes one PNG file in the run directory.

Loggers receive the PNG's path, never an image object, so a tracker plugin needs
neither torch nor numpy nor PIL. This module accepts what users have at hand without
importing any of those itself: raw :class:`Pixels` (what the trainer makes of a torch
tensor), numpy arrays, PIL images, matplotlib figures and image files. PNGs are encoded
with ``zlib`` alone.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, ...)
ACCEPTED = (
    "a torch tensor or numpy array (HW, HWC or CHW; float in [0, 1] or uint8), a PIL "
    "image, a matplotlib figure, or the path of an image file"
)


@dataclass(frozen=True)
class Pixels:
    """An 8-bit image: ``height`` rows of ``width`` pixels of ``channels`` bytes (1 grey,
    2 grey+alpha, 3 RGB, 4 RGBA), row-major in ``data``."""

    height: int
    width: int
    channels: int
    data: bytes

    def __post_init__(self) -> None:
        if self.channels not in _COLOR_TYPE:
            raise ValueError(f"an image has 1, 2, 3 or 4 channels, not {self.channels}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"an image needs at least one pixel, got {self.height}x{self.width}")
        if len(self.data) != self.height * self.width * self.channels:
            raise ValueError(
                f"{self.height}x{self.width}x{self.channels} pixels need "
                f"{self.height * self.width * self.channels} bytes, got {len(self.data)}"
            )


def encode_png(pixels: Pixels) -> bytes:
    """The PNG file of ``pixels`` (no filtering, default compression)."""
    stride = pixels.width * pixels.channels
    raw = b"".join(
        b"\x00" + pixels.data[row * stride : (row + 1) * stride] for row in range(pixels.height)
    )
    header = struct.pack(
        ">IIBBBBB", pixels.width, pixels.height, 8, _COLOR_TYPE[pixels.channels], 0, 0, 0
    )
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_size(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """``(width, height, channels)`` from a PNG file's header; ValueError if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    width, height, _, color = struct.unpack(">IIBB", head[16:26])
    channels = {0: 1, 4: 2, 2: 3, 6: 4, 3: 3}.get(color, 3)
    return width, height, channels


def array_pixels(array: Any) -> Pixels:
    """:class:`Pixels` from a numpy array: HW, HWC or CHW (C in 1..4), float in [0, 1]
    (clipped) or integers in [0, 255]."""
    import numpy as np

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (1, 2, 3, 4) and a.shape[-1] not in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # CHW -> HWC
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[-1] not in _COLOR_TYPE:
        raise ValueError(
            f"an image array must be HW, HWC or CHW with 1 to 4 channels; got shape {a.shape}"
        )
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a = np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    h, w, c = a.shape
    return Pixels(int(h), int(w), int(c), np.ascontiguousarray(a).tobytes())


def save_png(image: Any, path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """Write ``image`` as a PNG file at ``path``; return ``(width, height, channels)``.

    Raises TypeError for an object of another kind and ValueError for a malformed one,
    saying what is accepted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, Pixels):
        path.write_bytes(encode_png(image))
    elif isinstance(image, (str, os.PathLike)):
        _copy_image_file(Path(image), path)
    elif hasattr(image, "savefig"):  # a matplotlib figure
        image.savefig(path, format="png")
    elif hasattr(image, "save") and hasattr(image, "mode"):  # a PIL image
        image.save(path, format="PNG")
    elif hasattr(image, "__array_interface__") or hasattr(image, "__array__"):
        path.write_bytes(encode_png(array_pixels(image)))
    else:
        raise TypeError(f"cannot log a {type(image).__name__} as an image; give {ACCEPTED}")
    return png_size(path)


def _copy_image_file(source: Path, target: Path) -> None:
    if not source.is_file():
        raise ValueError(f"no image file at {source}")
    with source.open("rb") as f:
        is_png = f.read(8) == PNG_SIGNATURE
    if is_png:
        shutil.copyfile(source, target)
        return
    try:
        from PIL import Image
    except ImportError:
        raise ValueError(
            f"{source} is not a PNG file, and converting it needs Pillow (pip install pillow)"
        ) from None
    with Image.open(source) as img:
        img.save(target, format="PNG")
