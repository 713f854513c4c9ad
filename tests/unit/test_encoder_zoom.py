"""The zoomed encoder recipe: ``to_model_input(crop=)`` keeps the centre, ``FeatureRecipe.crop`` passes it on."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tagsmith.encoder import (
    CANDIDATE_RECIPES,
    DEFAULT_RECIPE,
    RECIPES,
    FeatureRecipe,
    ridge_alpha_for,
    to_model_input,
)


def framed(width: int, height: int, inner: float) -> Image.Image:
    """A red square of ``inner`` times the shorter side, centred, on a blue background."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 2] = 255
    side = round(inner * min(width, height))
    top, left = (height - side) // 2, (width - side) // 2
    pixels[top : top + side, left : left + side] = (255, 0, 0)
    return Image.fromarray(pixels)


@pytest.mark.parametrize(("width", "height"), [(200, 200), (300, 200), (200, 320)])
def test_crop_keeps_only_the_centre_of_the_shorter_side(width: int, height: int) -> None:
    image = framed(width, height, inner=0.6)

    zoomed = to_model_input([image], size=64, mean=(0, 0, 0), std=(1, 1, 1), crop=0.5)[0]
    whole = to_model_input([image], size=64, mean=(0, 0, 0), std=(1, 1, 1))[0]

    # Zoomed into half of the shorter side, only the red square is left; the whole view shows blue.
    assert zoomed[0].min() > 240 and zoomed[2].max() < 15
    assert whole[2].max() > 240


def test_crop_one_is_the_plain_centre_square() -> None:
    image = framed(300, 200, inner=0.3)

    np.testing.assert_array_equal(
        to_model_input([image], size=32, crop=1.0), to_model_input([image], size=32)
    )


@pytest.mark.parametrize("crop", [0.0, -0.2, 1.01])
def test_crop_out_of_range_is_refused(crop: float) -> None:
    with pytest.raises(ValueError, match="crop must be in"):
        to_model_input([framed(50, 50, 0.5)], size=16, crop=crop)
    with pytest.raises(ValueError, match="crop must be in"):
        FeatureRecipe("x", "lite2", 260, ("embedding",), (1280,), crop=crop)


def test_zoomed_recipe_is_the_unzoomed_graph_on_the_central_70_percent() -> None:
    zoomed, unzoomed = RECIPES["effnet-lite2-260-s7-c70-v1"], RECIPES["effnet-lite2-260-s7-v1"]

    assert zoomed.crop == 0.7 and unzoomed.crop == 1.0
    assert (zoomed.variant, zoomed.input_size, zoomed.outputs, zoomed.dims) == (
        unzoomed.variant,
        unzoomed.input_size,
        unzoomed.outputs,
        unzoomed.dims,
    )


def test_default_recipe_adds_stage_pools_to_the_zoomed_recipe() -> None:
    zoomed = RECIPES["effnet-lite2-260-s7-c70-v1"]

    assert DEFAULT_RECIPE.outputs[:2] == zoomed.outputs and DEFAULT_RECIPE.dims[:2] == zoomed.dims
    assert (DEFAULT_RECIPE.variant, DEFAULT_RECIPE.input_size, DEFAULT_RECIPE.crop) == ("lite2", 260, 0.7)
    assert DEFAULT_RECIPE.outputs[2:] == ("stage6", "stage5", "stage5_gram") and DEFAULT_RECIPE.dim == 3136


def test_recipes_carry_the_ridge_penalty_their_features_are_fitted_with() -> None:
    assert ridge_alpha_for(DEFAULT_RECIPE.id) == DEFAULT_RECIPE.ridge_alpha == 0.1
    assert ridge_alpha_for("effnet-lite2-260-s7-c70-v1") is None  # the head's default
    assert ridge_alpha_for("an-operators-clip") is None
    with pytest.raises(ValueError, match="ridge_alpha must be > 0"):
        FeatureRecipe("x", "lite2", 260, ("embedding",), (1280,), ridge_alpha=0.0)


def test_default_features_begin_with_the_zoomed_recipes_features(encoder_cache_dir: Path) -> None:
    from tagsmith.encoder import feature_encoder

    images = [framed(320, 240, 0.5), framed(200, 260, 0.8).rotate(20)]

    default = feature_encoder(encoder_cache_dir, DEFAULT_RECIPE, threads=1).embed(images)
    zoomed = feature_encoder(encoder_cache_dir, "effnet-lite2-260-s7-c70-v1", threads=1).embed(images)

    # Each part is unit length and a row is divided by sqrt(parts): 5 parts here, 2 there.
    parts = len(DEFAULT_RECIPE.outputs)
    np.testing.assert_allclose(default[:, :1632] * np.sqrt(parts), zoomed * np.sqrt(2.0), atol=1e-5)
    bounds = np.cumsum((0, *DEFAULT_RECIPE.dims))
    for start, end in itertools.pairwise(bounds):
        np.testing.assert_allclose(
            np.linalg.norm(default[:, start:end], axis=1) * np.sqrt(parts), 1.0, atol=1e-5
        )


def test_an_operator_can_choose_the_unzoomed_recipe_by_environment(encoder_cache_dir: Path) -> None:
    from tagsmith.config import Settings
    from tagsmith.wiring import load_encoders

    settings = Settings.from_env(
        {
            "TAGSMITH_DATA_BUCKET": "data",
            "TAGSMITH_ENCODER_RECIPE": "effnet-lite2-260-s7-v1",
            "TAGSMITH_ENCODER_CACHE": str(encoder_cache_dir),
        }
    )

    encoders = load_encoders(settings)

    encoder = encoders.default
    assert (encoder.encoder_id, encoder.dim, encoder.recipe.crop) == ("effnet-lite2-260-s7-v1", 1632, 1.0)
    # a pinned recipe is also the only one the trainer uses
    assert encoders.candidates == ("effnet-lite2-260-s7-v1",)
    unpinned = load_encoders(Settings(data_bucket="data", encoder_cache_dir=encoder_cache_dir))
    assert unpinned.default.encoder_id == DEFAULT_RECIPE.id
    assert unpinned.candidates == CANDIDATE_RECIPES


def test_an_unknown_recipe_is_a_configuration_error_naming_the_known_ones(tmp_path: Path) -> None:
    from tagsmith.config import ConfigurationError, Settings
    from tagsmith.wiring import load_encoders

    settings = Settings(data_bucket="data", encoder_cache_dir=tmp_path, encoder_recipe="effnet-nope")

    with pytest.raises(ConfigurationError, match=r"effnet-nope.*known: .*effnet-lite2-260-s7-c70-v1"):
        load_encoders(settings)
