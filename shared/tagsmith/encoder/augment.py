"""Support-set augmentation: extra, randomly altered views of an example photo for training only.

A tag model learns from five or ten photos per tag; showing the head a few altered copies of each
(a random crop at 50-100% of the area, a small turn, a little more or less light, contrast and
colour, maybe mirrored) teaches it what does *not* matter about a product. Ingest is unchanged:
uploads are embedded once, with no altered views.

Every view is a pure function of the image and an integer seed, so a retrain embeds the same views
and an embedding cache keyed by (image, seed, settings) stays valid.
:func:`seed_for_bytes` derives the seed from the photo's bytes.

Example::

    >>> image = decode_image(Path("photo.jpg").read_bytes()).image  # doctest: +SKIP
    >>> views = augmented_views(image, count=4, seed=seed_for_bytes(data))  # doctest: +SKIP
    >>> len(views), views[0].mode  # doctest: +SKIP
    (4, 'RGB')
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["DEFAULT_AUGMENT", "AugmentSettings", "augment_view", "augmented_views", "seed_for_bytes"]


@dataclass(frozen=True)
class AugmentSettings:
    """The ranges each random view is drawn from.

    ``min_scale``: smallest share of the (turned) photo's area a crop keeps; ``max_aspect``: the
    crop's width/height is the photo's times a factor in ``[1 / max_aspect, max_aspect]``; ``max_rotation``: degrees either
    way; ``brightness`` / ``contrast`` / ``saturation``: each factor is drawn from ``1 +- value``;
    ``flip_probability``: chance of a mirrored view.
    """

    min_scale: float = 0.5
    max_aspect: float = 4 / 3
    max_rotation: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    flip_probability: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.min_scale <= 1.0:
            problems.append(f"min_scale must be in (0, 1], got {self.min_scale}")
        if self.max_aspect < 1.0:
            problems.append(f"max_aspect must be >= 1, got {self.max_aspect}")
        if not 0.0 <= self.max_rotation <= 30.0:
            problems.append(f"max_rotation must be in 0..30 degrees, got {self.max_rotation}")
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                problems.append(f"{name} must be in [0, 1), got {value}")
        if not 0.0 <= self.flip_probability <= 1.0:
            problems.append(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        if problems:
            raise ValueError(f"invalid augmentation settings: {'; '.join(problems)}")


DEFAULT_AUGMENT = AugmentSettings()


def seed_for_bytes(data: bytes) -> int:
    """A stable 63-bit seed from a photo's bytes (the same photo always gets the same views)."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little") >> 1


def augmented_views(
    image: Image.Image, *, count: int, seed: int, settings: AugmentSettings = DEFAULT_AUGMENT
) -> list[Image.Image]:
    """``count`` random views of ``image`` (RGB), the same ones for the same ``seed``.

    View ``i`` depends only on ``(image, seed, i, settings)``: asking for more views keeps the
    first ones.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return [augment_view(rgb, np.random.default_rng([seed, i]), settings) for i in range(count)]


def augment_view(
    image: Image.Image, rng: np.random.Generator, settings: AugmentSettings = DEFAULT_AUGMENT
) -> Image.Image:
    """One random view: turn, crop, mirror, then light/contrast/colour jitter (RGB in, RGB out)."""
    width, height = image.size
    if width < 2 or height < 2:
        raise ValueError(f"image is too small to augment: {width}x{height}")
    angle = math.radians(float(rng.uniform(-settings.max_rotation, settings.max_rotation)))
    # The largest upright rectangle of the photo's proportions inside the turned photo: crops stay
    # inside it, so no blank corner ever reaches the encoder.
    shrink = _inner_rectangle_shrink(width, height, abs(angle))
    box_w, box_h = width * shrink, height * shrink
    area = box_w * box_h * float(rng.uniform(settings.min_scale, 1.0))
    aspect = math.exp(float(rng.uniform(-math.log(settings.max_aspect), math.log(settings.max_aspect))))
    aspect *= box_w / box_h  # the crop keeps the photo's proportions up to the aspect factor
    crop_w = max(1, min(round(math.sqrt(area * aspect)), math.floor(box_w)))
    crop_h = max(1, min(round(math.sqrt(area / aspect)), math.floor(box_h)))
    left = (width - box_w) / 2 + float(rng.uniform(0.0, max(box_w - crop_w, 0.0)))
    top = (height - box_h) / 2 + float(rng.uniform(0.0, max(box_h - crop_h, 0.0)))
    if angle:
        # Turn and crop in one affine resampling of only the output's pixels (Pillow's rotate()
        # resamples the whole photo and costs ten times as much): output pixel (u, v) of the crop
        # comes from the photo turned by ``angle`` about its centre.
        cos, sin = math.cos(angle), math.sin(angle)
        cx, cy = width / 2, height / 2
        x0 = cos * (left - cx) + sin * (top - cy) + cx
        y0 = -sin * (left - cx) + cos * (top - cy) + cy
        view = image.transform(
            (crop_w, crop_h),
            Image.Transform.AFFINE,
            (cos, sin, x0, -sin, cos, y0),
            resample=Image.Resampling.BILINEAR,
        )
    else:
        view = image.crop((round(left), round(top), round(left) + crop_w, round(top) + crop_h))
    if rng.uniform() < settings.flip_probability:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # Draw all three factors whatever their ranges, so one setting never shifts another's draws.
    factors = 1.0 + rng.uniform(-1.0, 1.0, 3) * (settings.brightness, settings.contrast, settings.saturation)
    if np.any(factors != 1.0):
        view = _jitter(view, brightness=factors[0], contrast=factors[1], saturation=factors[2])
    return view


def _jitter(image: Image.Image, *, brightness: float, contrast: float, saturation: float) -> Image.Image:
    """Scale the light, pull towards / push from the mean grey, and towards / from each pixel's grey."""
    x = np.asarray(image, dtype=np.float32) * np.float32(brightness)
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = (x - grey.mean()) * np.float32(contrast) + grey.mean()
    grey = (grey - grey.mean()) * np.float32(contrast) + grey.mean()
    x = (x - grey[..., None]) * np.float32(saturation) + grey[..., None]
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


def _inner_rectangle_shrink(width: int, height: int, angle: float) -> float:
    """The factor by which a width x height rectangle must shrink to fit inside itself turned by
    ``angle`` radians (both centred)."""
    cos, sin = math.cos(angle), math.sin(angle)
    # A corner (w/2, h/2) of the scaled rectangle must satisfy both half-extent constraints of the
    # turned one, in its own axes: |x cos + y sin| <= W/2 and |-x sin + y cos| <= H/2.
    return min(width / (width * cos + height * sin), height / (width * sin + height * cos))
