"""tagsmith.encoder: embeddings, the ONNX cache, the encoder spec and the public API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tagsmith.encoder
from PIL import Image
from tagsmith.encoder import (
    LITE0_ENCODER_ID,
    Encoder,
    EncoderSpec,
    OnnxEncoder,
    build_lite0_onnx,
    ensure_lite0_onnx,
    lite0_spec,
)
from tagsmith.encoder import lite0 as lite0_module


def sample_images(count: int, *, seed: int = 0) -> list[Image.Image]:
    """Deterministic, visibly different images of assorted sizes."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        height, width = 180 + 37 * i, 240 - 11 * i
        base = rng.integers(0, 256, (1, 1, 3))
        ramp = np.linspace(0, 255, width)[None, :, None] * (i % 3 == np.arange(3))
        noise = rng.integers(0, 60, (height, width, 3))
        pixels = np.clip(base * 0.5 + ramp * 0.5 + noise, 0, 255).astype(np.uint8)
        images.append(Image.fromarray(pixels))
    return images


# ---------------------------------------------------------------- embeddings


def test_embed_returns_l2_normalised_float32_rows(lite0_encoder: OnnxEncoder) -> None:
    vectors = lite0_encoder.embed(sample_images(3))

    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embed_is_deterministic(lite0_encoder: OnnxEncoder) -> None:
    images = sample_images(2)

    np.testing.assert_array_equal(lite0_encoder.embed(images), lite0_encoder.embed(images))


def test_embed_does_not_depend_on_batching(lite0_encoder: OnnxEncoder) -> None:
    images = sample_images(5)

    together = lite0_encoder.embed(images)
    one_by_one = np.concatenate([lite0_encoder.embed([image]) for image in images])
    in_pairs = OnnxEncoder(lite0_encoder.spec, batch_size=2, threads=1).embed(images)

    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(together, in_pairs, atol=1e-5)


def test_embed_separates_different_images(lite0_encoder: OnnxEncoder) -> None:
    vectors = lite0_encoder.embed(sample_images(4))

    similarity = vectors @ vectors.T
    off_diagonal = similarity[~np.eye(4, dtype=bool)]
    assert off_diagonal.max() < 0.99


def test_embed_of_no_images_is_an_empty_matrix(lite0_encoder: OnnxEncoder) -> None:
    assert lite0_encoder.embed([]).shape == (0, 1280)


def test_onnx_encoder_satisfies_the_encoder_protocol(lite0_encoder: OnnxEncoder) -> None:
    assert isinstance(lite0_encoder, Encoder)
    assert lite0_encoder.encoder_id == LITE0_ENCODER_ID == "effnet-lite0-v1"
    assert lite0_encoder.dim == 1280


def test_onnx_encoder_worker_threads_sleep_between_runs_and_embed_the_same(
    lite0_encoder: OnnxEncoder,
) -> None:
    # spinning workers took a core from the rest of an ingest batch (docs/benchmarks.md); the
    # setting changes when threads wait, never what they compute
    quiet = OnnxEncoder(lite0_encoder.spec)
    spinning = OnnxEncoder(lite0_encoder.spec, spin=True)
    option = "session.intra_op.allow_spinning"
    assert quiet._get_session().get_session_options().get_session_config_entry(option) == "0"
    assert spinning._get_session().get_session_options().get_session_config_entry(option) == "1"
    images = sample_images(3)
    assert np.array_equal(quiet.embed(images), spinning.embed(images))


def test_onnx_encoder_opens_its_session_lazily(tmp_path: Path) -> None:
    # GIVEN a spec pointing at a file that does not exist, construction still succeeds
    encoder = OnnxEncoder(lite0_spec(tmp_path / "missing.onnx"))

    # THEN the problem surfaces on first use, naming the file
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        encoder.embed(sample_images(1))


def test_onnx_encoder_rejects_a_spec_with_wrong_tensor_names(lite0_onnx_path: Path) -> None:
    spec = EncoderSpec(**{**lite0_spec(lite0_onnx_path).__dict__, "output_name": "features"})

    with pytest.raises(ValueError, match="'features'"):
        OnnxEncoder(spec).embed(sample_images(1))


def test_onnx_encoder_rejects_a_spec_with_the_wrong_dim(lite0_onnx_path: Path) -> None:
    spec = EncoderSpec(**{**lite0_spec(lite0_onnx_path).__dict__, "dim": 512})

    with pytest.raises(ValueError, match="1280 values per image, spec says dim=512"):
        OnnxEncoder(spec).embed(sample_images(1))


def test_onnx_encoder_can_serve_another_output_of_the_graph(lite0_onnx_path: Path) -> None:
    # The spec, not the code, decides what is read: here the ImageNet logits of the same graph.
    spec = EncoderSpec(**{**lite0_spec(lite0_onnx_path).__dict__, "output_name": "logits", "dim": 1000})

    vectors = OnnxEncoder(spec).embed(sample_images(2))

    assert vectors.shape == (2, 1000)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- the ONNX cache


@pytest.fixture
def build_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the graph builder that ensure_lite0_onnx uses."""
    calls: list[int] = []
    real_build = lite0_module.build_lite0_model

    def counting_build(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lite0_module, "build_lite0_model", counting_build)
    return calls


def test_ensure_lite0_onnx_builds_once_then_reuses(tmp_path: Path, build_counter: list[int]) -> None:
    first = ensure_lite0_onnx(tmp_path)
    stamp = first.stat().st_mtime_ns

    second = ensure_lite0_onnx(tmp_path)

    assert first == second == tmp_path / "effnet-lite0-v1.onnx"
    assert len(build_counter) == 1
    assert second.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "effnet-lite0-v1.onnx",
        "effnet-lite0-v1.onnx.sha256.json",
    ]  # no temporary files left behind


def test_ensure_lite0_onnx_rebuilds_a_corrupted_file(tmp_path: Path, build_counter: list[int]) -> None:
    path = ensure_lite0_onnx(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a torn write

    rebuilt = ensure_lite0_onnx(tmp_path)

    assert len(build_counter) == 2
    assert rebuilt.read_bytes() == good


def test_ensure_lite0_onnx_rebuilds_when_the_record_is_stale(
    tmp_path: Path, build_counter: list[int]
) -> None:
    path = ensure_lite0_onnx(tmp_path)
    record_path = tmp_path / "effnet-lite0-v1.onnx.sha256.json"
    record = json.loads(record_path.read_text())
    record["weights_sha256"] = "0" * 64  # built from other weights
    record_path.write_text(json.dumps(record))

    ensure_lite0_onnx(tmp_path)

    assert len(build_counter) == 2
    assert json.loads(record_path.read_text())["onnx_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_ensure_lite0_onnx_rebuilds_when_the_record_is_missing(
    tmp_path: Path, build_counter: list[int]
) -> None:
    ensure_lite0_onnx(tmp_path)
    (tmp_path / "effnet-lite0-v1.onnx.sha256.json").unlink()

    ensure_lite0_onnx(tmp_path)

    assert len(build_counter) == 2


def test_build_lite0_onnx_is_reproducible_and_returns_the_file_digest(
    tmp_path: Path, lite0_onnx_path: Path
) -> None:
    digest = build_lite0_onnx(tmp_path / "lite0.onnx")

    written = (tmp_path / "lite0.onnx").read_bytes()
    assert digest == hashlib.sha256(written).hexdigest()
    assert written == lite0_onnx_path.read_bytes()


# ---------------------------------------------------------------- the spec


def test_encoder_spec_round_trips_through_json(tmp_path: Path) -> None:
    spec = EncoderSpec(
        id="dinov2-small-v1",
        onnx_path=tmp_path / "dinov2.onnx",
        input_size=224,
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        input_name="pixel_values",
        output_name="pooler_output",
        dim=384,
    )
    spec.to_json_file(tmp_path / "spec.json")

    assert EncoderSpec.from_json_file(tmp_path / "spec.json") == spec


def test_encoder_spec_resolves_a_relative_onnx_path_against_its_json_file(tmp_path: Path) -> None:
    data = lite0_spec(Path("models/lite0.onnx")).to_dict()
    (tmp_path / "spec.json").write_text(json.dumps(data))

    spec = EncoderSpec.from_json_file(tmp_path / "spec.json")

    assert spec.onnx_path == tmp_path / "models" / "lite0.onnx"
    assert (spec.mean, spec.std, spec.input_size) == ((127.0,) * 3, (128.0,) * 3, 224)


def test_encoder_spec_rejects_unknown_or_missing_keys(tmp_path: Path) -> None:
    data = lite0_spec(Path("x.onnx")).to_dict()
    data["colour_space"] = "BGR"
    del data["dim"]

    with pytest.raises(ValueError, match=r"unknown keys \['colour_space'\], missing keys \['dim'\]"):
        EncoderSpec.from_dict(data)


def test_encoder_spec_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="std must be positive"):
        EncoderSpec(
            id="x",
            onnx_path=Path("x.onnx"),
            input_size=224,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 0.0, 1.0),
            input_name="in",
            output_name="out",
            dim=8,
        )


# ---------------------------------------------------------------- public API


def test_public_api_is_complete_and_importable() -> None:
    exported = set(tagsmith.encoder.__all__)

    assert {
        "Encoder",
        "EncoderSpec",
        "OnnxEncoder",
        "DecodedImage",
        "decode_image",
        "to_model_input",
        "default_encoder",
        "ensure_lite0_onnx",
        "build_lite0_onnx",
    } <= exported
    for name in exported:
        assert getattr(tagsmith.encoder, name) is not None
    public = {name for name in vars(tagsmith.encoder) if not name.startswith("_")}
    modules = {
        "augment",
        "lite0",
        "registry",
        "session",
        "torch_legacy",
        "transforms",
    }  # submodules, once imported
    assert public - modules == exported
