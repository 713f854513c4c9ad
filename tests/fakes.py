"""Test doubles that satisfy the project's Protocols without inheritance.

``FakeEncoder`` embeds an image as a normalised colour histogram: deterministic, fast, and good
enough to tell the colourful test images apart, so service tests need no ONNX session.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image


class FakeEncoder:
    encoder_id = "fake-hist-v1"
    dim = 48

    def __init__(self) -> None:
        self.calls = 0
        self.images_embedded = 0

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.calls += 1
        self.images_embedded += len(images)
        rows = []
        for im in images:
            a = np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.float32)
            hist = np.concatenate(
                [np.histogram(a[..., c], bins=16, range=(0, 256))[0] for c in range(3)]
            ).astype(np.float32)
            rows.append(hist / max(float(np.linalg.norm(hist)), 1e-12))
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


def solid_jpeg(rgb: tuple[int, int, int], *, size: int = 64, noise: int = 0, seed: int = 0) -> bytes:
    """A JPEG of one colour, optionally with noise (so two images of a tag differ)."""
    rng = np.random.default_rng(seed)
    a = np.empty((size, size, 3), dtype=np.int16)
    a[...] = rgb
    if noise:
        a += rng.integers(-noise, noise + 1, size=a.shape, dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 210)}
