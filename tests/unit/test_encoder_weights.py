"""tagsmith.encoder.torch_legacy: reading the pinned .pth safely, without torch."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from tagsmith.encoder.torch_legacy import (
    LITE0_WEIGHTS_SHA256,
    WeightsFileError,
    lite0_weights_path,
    load_lite0_state_dict,
    read_legacy_state_dict,
)

_HEADER = (
    pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    + pickle.dumps(1001, protocol=2)
    + pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
)


class _RunsACommand:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /dev/null",))


def test_lite0_weights_have_the_expected_tensors(lite0_weights: dict[str, np.ndarray]) -> None:
    floats = [w for w in lite0_weights.values() if w.dtype == np.float32]

    assert len(lite0_weights) == 296
    assert 4_680_000 < sum(w.size for w in floats) < 4_700_000
    assert lite0_weights["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert lite0_weights["_fc.weight"].shape == (1000, 1280)
    assert lite0_weights["_bn0.num_batches_tracked"].shape == ()  # 0-d stays 0-d
    assert all(w.flags.c_contiguous and w.flags.writeable for w in lite0_weights.values())


def test_lite0_weights_look_trained(lite0_weights: dict[str, np.ndarray]) -> None:
    variances = lite0_weights["_bn1.running_var"]
    assert np.all(variances > 0) and np.isfinite(lite0_weights["_fc.weight"]).all()
    assert 0.001 < float(np.abs(lite0_weights["_fc.weight"]).mean()) < 1.0


def test_reader_refuses_a_file_with_another_checksum() -> None:
    data = bytearray(lite0_weights_path().read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last weight

    with pytest.raises(WeightsFileError, match=f"expected {LITE0_WEIGHTS_SHA256}"):
        read_legacy_state_dict(bytes(data), expected_sha256=LITE0_WEIGHTS_SHA256)


def test_reader_refuses_globals_outside_the_allow_list() -> None:
    # GIVEN a legacy file whose state-dict pickle would call os.system
    data = _HEADER + pickle.dumps(_RunsACommand(), protocol=2)

    # THEN it is refused while resolving the name, before anything could be called
    with pytest.raises(WeightsFileError, match=r"(posix|os)\.system, which is not allowed"):
        read_legacy_state_dict(data, expected_sha256=None)


def test_reader_refuses_globals_in_the_header_pickles() -> None:
    data = pickle.dumps(_RunsACommand(), protocol=2) + _HEADER

    with pytest.raises(WeightsFileError, match="not allowed"):
        read_legacy_state_dict(data, expected_sha256=None)


def test_reader_refuses_a_file_that_is_not_legacy_torch() -> None:
    with pytest.raises(WeightsFileError, match="magic number"):
        read_legacy_state_dict(pickle.dumps(42, protocol=2), expected_sha256=None)
    with pytest.raises(WeightsFileError, match="malformed"):
        read_legacy_state_dict(b"PK\x03\x04 a zip file", expected_sha256=None)


def test_reader_refuses_a_truncated_file() -> None:
    data = lite0_weights_path().read_bytes()

    with pytest.raises(WeightsFileError, match=r"ends inside storage|malformed"):
        read_legacy_state_dict(data[:-100], expected_sha256=None)


def test_load_lite0_state_dict_is_stable(lite0_weights: dict[str, np.ndarray]) -> None:
    again = load_lite0_state_dict()

    assert list(again) == list(lite0_weights)
    assert all(np.array_equal(again[k], lite0_weights[k]) for k in again)


def test_reader_matches_torch_load_when_torch_is_available(lite0_weights: dict[str, np.ndarray]) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed (it is never a dependency)")

    expected = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)

    assert list(lite0_weights) == list(expected)
    for name, tensor in expected.items():
        np.testing.assert_array_equal(lite0_weights[name], tensor.numpy(), err_msg=name)
        assert lite0_weights[name].dtype == tensor.numpy().dtype
