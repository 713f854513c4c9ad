"""tagsmith.encoder.augment: random training views are deterministic, valid and never show blank corners."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from tagsmith.encoder.augment import (
    DEFAULT_AUGMENT,
    AugmentSettings,
    augment_view,
    augmented_views,
    seed_for_bytes,
)

NO_COLOUR_JITTER = AugmentSettings(brightness=0.0, contrast=0.0, saturation=0.0)


def photo(width: int = 240, height: int = 180, *, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width)[None, :, None] * np.array([1.0, 0.4, 0.0])
    noise = rng.integers(0, 50, (height, width, 3))
    return Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8))


def test_augmented_views_are_the_same_for_the_same_seed() -> None:
    image = photo()

    first = augmented_views(image, count=4, seed=7)
    again = augmented_views(image, count=4, seed=7)

    assert [np.asarray(v).tobytes() for v in first] == [np.asarray(v).tobytes() for v in again]


def test_augmented_views_differ_between_seeds_and_between_views() -> None:
    image = photo()

    a = augmented_views(image, count=3, seed=1)
    b = augmented_views(image, count=3, seed=2)

    assert np.asarray(a[0]).tobytes() != np.asarray(b[0]).tobytes()
    assert len({np.asarray(v).tobytes() for v in a}) == 3


def test_asking_for_more_views_keeps_the_first_ones() -> None:
    image = photo()

    two = augmented_views(image, count=2, seed=5)
    five = augmented_views(image, count=5, seed=5)

    assert [np.asarray(v).tobytes() for v in two] == [np.asarray(v).tobytes() for v in five[:2]]


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_views_are_rgb_and_no_larger_than_the_photo(mode: str) -> None:
    image = photo(300, 200).convert(mode)

    views = augmented_views(image, count=8, seed=3)

    for view in views:
        assert view.mode == "RGB"
        assert 1 <= view.width <= 300 and 1 <= view.height <= 200


def test_crops_keep_at_least_the_minimum_share_of_the_turned_photo() -> None:
    settings = AugmentSettings(min_scale=0.5, max_rotation=10.0)
    width, height = 300, 300
    # the turned photo's inner upright square at the largest angle, times the minimum share
    shrink = 1 / (math.cos(math.radians(10)) + math.sin(math.radians(10)))
    smallest = 0.5 * (width * shrink) * (height * shrink)

    areas = [
        v.width * v.height
        for v in augmented_views(photo(width, height), count=30, seed=11, settings=settings)
    ]

    assert min(areas) >= 0.97 * smallest  # rounding to whole pixels
    assert max(areas) <= width * height


def test_turned_views_never_show_blank_corners() -> None:
    # GIVEN a photo of one flat colour, turned as far as the settings allow
    flat = Image.new("RGB", (320, 240), (200, 40, 90))
    settings = AugmentSettings(min_scale=1.0, max_rotation=25.0, brightness=0.0, contrast=0.0, saturation=0.0)

    # WHEN views are drawn THEN every pixel is still that colour (a corner outside the turned photo
    # would be black)
    for view in augmented_views(flat, count=12, seed=4, settings=settings):
        pixels = np.asarray(view).reshape(-1, 3).astype(int)
        assert np.abs(pixels - [200, 40, 90]).max() <= 2


def still(*, flip_probability: float) -> AugmentSettings:
    """Settings that keep the whole photo as it is, but for mirroring."""
    return AugmentSettings(
        min_scale=1.0,
        max_aspect=1.0,
        max_rotation=0.0,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        flip_probability=flip_probability,
    )


def test_no_flip_no_turn_no_jitter_and_full_scale_returns_the_photo() -> None:
    image = photo()
    identity = still(flip_probability=0.0)

    (view,) = augmented_views(image, count=1, seed=9, settings=identity)

    assert np.array_equal(np.asarray(view), np.asarray(image))


def test_flip_probability_one_mirrors_every_view() -> None:
    image = photo()
    mirror_only = still(flip_probability=1.0)

    for view in augmented_views(image, count=3, seed=2, settings=mirror_only):
        assert np.array_equal(np.asarray(view), np.asarray(image)[:, ::-1])


def test_colour_jitter_changes_pixels_but_not_geometry() -> None:
    image = photo()
    jitter_only = AugmentSettings(min_scale=1.0, max_aspect=1.0, max_rotation=0.0, flip_probability=0.0)

    views = augmented_views(image, count=3, seed=8, settings=jitter_only)

    assert all(v.size == image.size for v in views)
    assert any(not np.array_equal(np.asarray(v), np.asarray(image)) for v in views)


def test_augment_view_uses_the_generator_it_is_given() -> None:
    image = photo()

    a = augment_view(image, np.random.default_rng(1), DEFAULT_AUGMENT)
    b = augment_view(image, np.random.default_rng(1), DEFAULT_AUGMENT)

    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_seed_for_bytes_is_stable_and_depends_on_the_bytes() -> None:
    assert seed_for_bytes(b"photo-1") == seed_for_bytes(b"photo-1")
    assert seed_for_bytes(b"photo-1") != seed_for_bytes(b"photo-2")
    assert 0 <= seed_for_bytes(b"") < 2**63


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_scale": 0.0}, "min_scale"),
        ({"min_scale": 1.5}, "min_scale"),
        ({"max_aspect": 0.5}, "max_aspect"),
        ({"max_rotation": 45.0}, "max_rotation"),
        ({"brightness": 1.0}, "brightness"),
        ({"saturation": -0.1}, "saturation"),
        ({"flip_probability": 2.0}, "flip_probability"),
    ],
)
def test_invalid_settings_say_what_is_wrong(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AugmentSettings(**kwargs)


def test_bad_count_seed_or_image_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        augmented_views(photo(), count=-1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        augmented_views(photo(), count=1, seed=-3)
    with pytest.raises(ValueError, match="too small"):
        augmented_views(Image.new("RGB", (1, 5)), count=1, seed=0)
    assert augmented_views(photo(), count=0, seed=0) == []
