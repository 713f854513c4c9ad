"""The generalised EfficientNet-Lite builder (sizes, taps) and the FeatureEncoder recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
from PIL import Image
from tagsmith.encoder import FeatureEncoder, FeatureRecipe, OnnxEncoder, ensure_lite_taps_onnx, to_model_input
from tagsmith.encoder.lite0 import LITE0_STAGES, build_efficientnet_lite_model, infer_stages


def test_infer_stages_reads_the_lite0_table_from_its_weights(lite0_weights: dict[str, np.ndarray]) -> None:
    assert infer_stages(lite0_weights) == LITE0_STAGES


def test_infer_stages_refuses_a_truncated_network(lite0_weights: dict[str, np.ndarray]) -> None:
    cut = {k: v for k, v in lite0_weights.items() if not k.startswith("_blocks.15.")}
    with pytest.raises(ValueError, match="stages"):
        infer_stages(cut)


def photos(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)) for _ in range(n)]


def test_taps_graph_keeps_the_embedding_of_the_plain_graph(
    lite0_weights: dict[str, np.ndarray], lite0_encoder: OnnxEncoder
) -> None:
    taps = build_efficientnet_lite_model(lite0_weights, input_size=224, name="t", taps=True)
    session = onnxruntime.InferenceSession(taps.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert {"embedding", "stage4", "stage5", "stage6", "stage7", "head_map"} <= set(names)
    images = photos(2)
    embedding, stage7, head_map = session.run(
        ["embedding", "stage7", "head_map"], {"image": to_model_input(images)}
    )
    plain = lite0_encoder.embed(images)
    np.testing.assert_allclose(embedding / np.linalg.norm(embedding, axis=1, keepdims=True), plain, atol=1e-5)
    assert stage7.shape == (2, 320) and head_map.shape == (2, 1280, 7, 7)
    np.testing.assert_allclose(head_map.mean(axis=(2, 3)), embedding, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def lite0_320(encoder_cache_dir: Path) -> Any:
    return ensure_lite_taps_onnx(encoder_cache_dir, variant="lite0", input_size=320)


def test_feature_encoder_joins_outputs_into_unit_rows(lite0_320: Path) -> None:
    recipe = FeatureRecipe("test-lite0-320-s7", "lite0", 320, ("embedding", "stage7"), (1280, 320))
    vectors = FeatureEncoder(lite0_320, recipe, threads=2).embed(photos(3))
    assert vectors.shape == (3, 1600) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # each part carries half of the squared length
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :1280], axis=1) ** 2, 0.5, atol=1e-5)


def test_flip_recipe_is_the_mean_of_the_photo_and_its_mirror(lite0_320: Path) -> None:
    plain = FeatureRecipe("p", "lite0", 320, ("embedding",), (1280,))
    flip = FeatureRecipe("f", "lite0", 320, ("embedding",), (1280,), flip=True)
    image = photos(1)
    mirrored = [image[0].transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    a, b = FeatureEncoder(lite0_320, plain).embed(image), FeatureEncoder(lite0_320, plain).embed(mirrored)
    expected = (a + b) / np.linalg.norm(a + b)
    np.testing.assert_allclose(FeatureEncoder(lite0_320, flip).embed(image), expected, atol=1e-5)


def test_feature_encoder_refuses_a_graph_without_the_outputs(lite0_onnx_path: Path) -> None:
    recipe = FeatureRecipe("x", "lite0", 224, ("embedding", "stage7"), (1280, 320))
    with pytest.raises(ValueError, match="lacks outputs"):
        FeatureEncoder(lite0_onnx_path, recipe).embed(photos(1))
