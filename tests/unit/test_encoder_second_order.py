"""Stage 5's second-order pooling, computed inside the ONNX graph (``stage5_gram``), against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from tagsmith.encoder.lite0 import GRAM_CHANNELS, build_efficientnet_lite_model, gram_projection
from tagsmith.encoder.torch_legacy import load_lite_state_dict


def numpy_gram(stage_map: np.ndarray) -> np.ndarray:
    """The definition: project the channels, average the outer products over the positions, keep
    the upper triangle, signed square root."""
    n, c = stage_map.shape[:2]
    f = np.einsum("nchw,ck->nkhw", stage_map.astype(np.float64), gram_projection(c)).reshape(
        n, GRAM_CHANNELS, -1
    )
    g = np.einsum("nki,nli->nkl", f, f) / f.shape[2]
    rows, cols = np.triu_indices(GRAM_CHANNELS)
    v = g[:, rows, cols]
    return np.sign(v) * np.sqrt(np.abs(v))


@pytest.mark.parametrize(("variant", "size"), [("lite0", 96), ("lite2", 130)])
def test_the_graphs_second_order_pool_is_the_numpy_definition(variant: str, size: int) -> None:
    import onnxruntime
    from onnx import TensorProto, helper

    model = build_efficientnet_lite_model(
        load_lite_state_dict(variant), input_size=size, name=variant, taps=True
    )
    # expose stage 5's map (the input of its average pool) to compute the reference from
    (raw,) = [node.input[0] for node in model.graph.node if node.name == "stage5.pool"]
    model.graph.output.append(helper.make_tensor_value_info(raw, TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)

    gram, stage_map = session.run(["stage5_gram", raw], {"image": images})

    assert gram.shape == (2, GRAM_CHANNELS * (GRAM_CHANNELS + 1) // 2)
    np.testing.assert_allclose(gram, numpy_gram(stage_map), rtol=1e-4, atol=1e-4)


def test_the_projection_is_orthonormal_and_fixed() -> None:
    p = gram_projection(112)
    np.testing.assert_allclose(p.T @ p, np.eye(GRAM_CHANNELS), atol=1e-10)
    np.testing.assert_array_equal(p, gram_projection(112))
    with pytest.raises(ValueError, match="cannot project 40 channels onto 48"):
        gram_projection(40)
