"""The built ONNX graph against an independent NumPy forward pass of EfficientNet-Lite0.

The reference below shares nothing with ``tagsmith.encoder.lite0`` but the weights: its own
architecture table, TensorFlow "SAME" padding, explicit (unfolded) BatchNorm, float64 maths.
When torch happens to be importable the same comparison is also made against torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from tagsmith.encoder import decode_image, to_model_input
from tagsmith.encoder.torch_legacy import lite0_weights_path

# Stage strings as in the TF EfficientNet-Lite builder: repeats, kernel, stride, expand, in, out.
STAGES = [
    "r1_k3_s1_e1_i32_o16",
    "r2_k3_s2_e6_i16_o24",
    "r2_k5_s2_e6_i24_o40",
    "r3_k3_s2_e6_i40_o80",
    "r3_k5_s1_e6_i80_o112",
    "r4_k5_s2_e6_i112_o192",
    "r1_k3_s1_e6_i192_o320",
]
BN_EPS = 1e-3


def parse_stage(text: str) -> dict[str, int]:
    return {part[0]: int(part[1:]) for part in text.split("_")}


def pad_same(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    size = x.shape[-1]
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before, after = total // 2, total - total // 2
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))


def windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H', W', k, k) patches after SAME padding."""
    out = -(-x.shape[-1] // stride)
    patches = sliding_window_view(pad_same(x, kernel, stride), (kernel, kernel), axis=(2, 3))
    return patches[:, :, ::stride, ::stride][:, :, :out, :out]


def conv(x: np.ndarray, weight: np.ndarray, stride: int = 1) -> np.ndarray:
    if weight.shape[-1] == 1 and stride == 1:
        return np.einsum("nchw,oc->nohw", x, weight[:, :, 0, 0], optimize=True)
    return np.einsum("nchwij,ocij->nohw", windows(x, weight.shape[-1], stride), weight, optimize=True)


def depthwise(x: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    return np.einsum("nchwij,cij->nchw", windows(x, weight.shape[-1], stride), weight[:, 0], optimize=True)


def batch_norm(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    def p(name: str) -> np.ndarray:
        return w[f"{prefix}.{name}"].astype(np.float64)[None, :, None, None]

    return (x - p("running_mean")) / np.sqrt(p("running_var") + BN_EPS) * p("weight") + p("bias")


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def reference_forward(images: np.ndarray, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(embedding, logits) of EfficientNet-Lite0 in float64."""
    f = {k: v.astype(np.float64) for k, v in w.items() if v.dtype == np.float32}
    x = relu6(batch_norm(conv(images.astype(np.float64), f["_conv_stem.weight"], 2), w, "_bn0"))
    block = 0
    for stage in map(parse_stage, STAGES):
        for repeat in range(stage["r"]):
            stride = stage["s"] if repeat == 0 else 1
            channels_in = stage["i"] if repeat == 0 else stage["o"]
            p = f"_blocks.{block}"
            h = x
            if stage["e"] != 1:
                h = relu6(batch_norm(conv(h, f[f"{p}._expand_conv.weight"]), w, f"{p}._bn0"))
            h = relu6(batch_norm(depthwise(h, f[f"{p}._depthwise_conv.weight"], stride), w, f"{p}._bn1"))
            h = batch_norm(conv(h, f[f"{p}._project_conv.weight"]), w, f"{p}._bn2")
            x = h + x if stride == 1 and channels_in == stage["o"] else h
            block += 1
    x = relu6(batch_norm(conv(x, f["_conv_head.weight"]), w, "_bn1"))
    embedding = x.mean(axis=(2, 3))
    logits = embedding @ f["_fc.weight"].T + f["_fc.bias"]
    return embedding, logits


def deterministic_images() -> np.ndarray:
    """Two model inputs: smooth colour gradients plus noise, already normalised."""
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:224, 0:224] / 223.0
    first = np.stack([xx, yy, 1 - xx]) * 2 - 1
    second = np.stack([np.sin(6 * xx), np.cos(5 * yy), xx * yy]) + rng.normal(0, 0.2, (3, 224, 224))
    return np.stack([first, second]).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_outputs(lite0_onnx_path: Path) -> tuple[np.ndarray, np.ndarray]:
    session = onnxruntime.InferenceSession(str(lite0_onnx_path), providers=["CPUExecutionProvider"])
    embedding, logits = session.run(["embedding", "logits"], {"image": deterministic_images()})
    return np.asarray(embedding), np.asarray(logits)


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = float(np.abs(expected).max())
    assert scale > 0.1  # the comparison means something only if the network produced signal
    assert float(np.abs(actual - expected).max()) < 1e-3 * scale


def test_onnx_graph_matches_the_numpy_reference(
    onnx_outputs: tuple[np.ndarray, np.ndarray], lite0_weights: dict[str, np.ndarray]
) -> None:
    expected_embedding, expected_logits = reference_forward(deterministic_images(), lite0_weights)

    embedding, logits = onnx_outputs
    assert embedding.shape == (2, 1280) and logits.shape == (2, 1000)
    assert_close(embedding, expected_embedding)
    assert_close(logits, expected_logits)


def test_onnx_graph_matches_torch_when_available(onnx_outputs: tuple[np.ndarray, np.ndarray]) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (it is never a dependency); the NumPy reference still ran")
    import torch
    import torch.nn.functional as F

    state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)

    def same_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int = 1) -> torch.Tensor:
        k, size = weight.shape[-1], x.shape[-1]
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        x = F.pad(x, [total // 2, total - total // 2] * 2)
        return F.conv2d(x, weight, stride=stride, groups=groups)

    def bn(x: torch.Tensor, prefix: str) -> torch.Tensor:
        return F.batch_norm(
            x,
            state[f"{prefix}.running_mean"],
            state[f"{prefix}.running_var"],
            state[f"{prefix}.weight"],
            state[f"{prefix}.bias"],
            eps=BN_EPS,
        )

    with torch.no_grad():
        x = F.relu6(
            bn(same_conv(torch.from_numpy(deterministic_images()), state["_conv_stem.weight"], 2), "_bn0")
        )
        block = 0
        for stage in map(parse_stage, STAGES):
            for repeat in range(stage["r"]):
                stride = stage["s"] if repeat == 0 else 1
                p = f"_blocks.{block}"
                h = x
                if stage["e"] != 1:
                    h = F.relu6(bn(same_conv(h, state[f"{p}._expand_conv.weight"], 1), f"{p}._bn0"))
                dw = state[f"{p}._depthwise_conv.weight"]
                h = F.relu6(bn(same_conv(h, dw, stride, groups=dw.shape[0]), f"{p}._bn1"))
                h = bn(same_conv(h, state[f"{p}._project_conv.weight"], 1), f"{p}._bn2")
                x = h + x if h.shape == x.shape else h
                block += 1
        x = F.relu6(bn(same_conv(x, state["_conv_head.weight"], 1), "_bn1"))
        embedding = x.mean(dim=(2, 3))
        logits = F.linear(embedding, state["_fc.weight"], state["_fc.bias"])

    assert_close(onnx_outputs[0], embedding.numpy())
    assert_close(onnx_outputs[1], logits.numpy())


# ImageNet class indices of produce that the grocery photos show.
IMAGENET_CLASSES = {
    "Fruit/Banana": 954,
    "Fruit/Lemon": 951,
    "Fruit/Orange": 950,
    "Fruit/Pomegranate": 957,
    "Fruit/Apple/Granny-Smith": 948,
}


@pytest.mark.grocery
def test_imagenet_head_recognises_grocery_photos(lite0_onnx_path: Path, grocery_dir: Path) -> None:
    session = onnxruntime.InferenceSession(str(lite0_onnx_path), providers=["CPUExecutionProvider"])
    hits, total = 0, 0
    for folder, imagenet_class in IMAGENET_CLASSES.items():
        photos = sorted((grocery_dir / "val" / folder).glob("*.jpg"))[:4]
        assert photos, f"no photos in {folder}"
        batch = to_model_input([decode_image(p.read_bytes()).image for p in photos])
        (logits,) = session.run(["logits"], {"image": batch})
        hits += int((np.asarray(logits).argmax(axis=1) == imagenet_class).sum())
        total += len(photos)

    # Measured 100% top-1 on these classes; wrong preprocessing or padding drops it sharply.
    assert hits / total >= 0.8, f"only {hits}/{total} grocery photos got their ImageNet class"
