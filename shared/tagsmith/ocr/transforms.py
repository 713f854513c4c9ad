"""Pure image transforms for OCR retries. Each returns the new image and the factor that maps its
pixels back to the input's (``original = new * factor``)."""

from __future__ import annotations

from PIL import Image, ImageOps


def limit_size(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """``image`` shrunk so its longer side is at most ``max_side`` (never enlarged)."""
    longest = max(image.size)
    if longest <= max_side:
        return image, 1.0
    factor = longest / max_side
    size = (max(1, round(image.width / factor)), max(1, round(image.height / factor)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), factor


def downscale(image: Image.Image, ratio: float) -> tuple[Image.Image, float]:
    """``image`` scaled by ``ratio`` (< 1): very large letters fit the detector's receptive field."""
    size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
    return image.resize(size, Image.Resampling.BILINEAR), image.width / size[0]


def inverted(image: Image.Image) -> Image.Image:
    """Light text on a dark or saturated ground becomes dark text on light ground."""
    return ImageOps.invert(image.convert("RGB"))
