"""Build the default encoder's ONNX graph (see ``tagsmith.encoder.DEFAULT_RECIPE``) into ``$TAGSMITH_ENCODER_CACHE`` at image build time.

Run by ``infra/aws/Dockerfile`` so that a cold start finds a verified graph (and its sha256 record)
and never builds it: the Lambda file system outside ``/tmp`` is read-only anyway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image
from tagsmith.config import ENV_NAMES
from tagsmith.encoder import default_encoder


def main() -> int:
    name = ENV_NAMES["encoder_cache_dir"]  # the folder Settings.from_env gives the functions
    cache = os.environ.get(name)
    if not cache:
        print(f"set {name} to the folder the functions will read the encoder from", file=sys.stderr)
        return 2
    encoder = default_encoder(Path(cache), threads=1)  # builds the graph once, verified by sha256
    encoder.embed([Image.new("RGB", (64, 64))])  # proves it runs before the image ships
    print(f"encoder {encoder.encoder_id} ({encoder.dim}-d) built at {encoder.spec.onnx_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
