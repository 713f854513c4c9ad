"""Shared unit-test fixtures.

The EfficientNet-Lite0 graph is built once per test session (about half a second) into a pytest
temporary folder, never into the repository or a user cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tagsmith.encoder import OnnxEncoder, default_encoder, ensure_lite0_onnx, load_lite0_state_dict

GROCERY_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "grocery"


@pytest.fixture(scope="session")
def encoder_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache_dir = tmp_path_factory.mktemp("encoder-cache")
    ensure_lite0_onnx(cache_dir)
    return cache_dir


@pytest.fixture(scope="session")
def lite0_onnx_path(encoder_cache_dir: Path) -> Path:
    return ensure_lite0_onnx(encoder_cache_dir)


@pytest.fixture(scope="session")
def lite0_encoder(encoder_cache_dir: Path) -> OnnxEncoder:
    # Two threads: the size of the machines CI runs on.
    return default_encoder(encoder_cache_dir, batch_size=16, threads=2)


@pytest.fixture(scope="session")
def lite0_weights() -> dict[str, np.ndarray]:
    return load_lite0_state_dict()


@pytest.fixture(scope="session")
def grocery_dir() -> Path:
    if not GROCERY_DIR.is_dir():
        pytest.skip(f"grocery dataset not found at {GROCERY_DIR}")
    return GROCERY_DIR
