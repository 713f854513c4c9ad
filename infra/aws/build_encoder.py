"""Build the EfficientNet-Lite0 ONNX graph into ``$TAGSMITH_ENCODER_CACHE`` at image build time.

Run by ``infra/aws/Dockerfile`` so that a cold start finds a verified graph (and its sha256 record)
and never builds it: the Lambda file system outside ``/tmp`` is read-only anyway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tagsmith.encoder import default_encoder, ensure_lite0_onnx


def main() -> int:
    cache = os.environ.get("TAGSMITH_ENCODER_CACHE")
    if not cache:
        print(
            "set TAGSMITH_ENCODER_CACHE to the folder the functions will read the encoder from",
            file=sys.stderr,
        )
        return 2
    path = ensure_lite0_onnx(Path(cache))
    encoder = default_encoder(Path(cache), threads=1)  # proves the graph loads before the image ships
    print(f"encoder {encoder.encoder_id} ({encoder.dim}-d) built at {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
