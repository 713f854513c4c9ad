"""The embedding cache reads entries as ``np.load(..., allow_pickle=False)`` would: exact values,
and a corrupt or object-holding entry is a miss, never an unpickle."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tagsmith.keys import embedding_key
from tagsmith.storage import MemoryObjectStore
from tagsmith.storage.embeddings import EmbeddingCache

SHA = "ab" * 32


@pytest.fixture
def cache() -> EmbeddingCache:
    return EmbeddingCache(store=MemoryObjectStore(), bucket="data")


def put_raw(cache: EmbeddingCache, body: bytes) -> None:
    cache.store.put(cache.bucket, embedding_key("acme", "enc", SHA), body)


def npy(arr: np.ndarray, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def test_embedding_cache_round_trips_vectors_exactly(cache: EmbeddingCache) -> None:
    rng = np.random.default_rng(0)
    for dim in (48, 1632, 1280):  # several encoders' layouts in one process
        vec = rng.standard_normal(dim).astype(np.float32)
        cache.put("acme", f"enc{dim}", SHA, vec)
        got = cache.get("acme", f"enc{dim}", SHA)
        assert got is not None and got.dtype == np.float32 and got.flags.writeable
        np.testing.assert_array_equal(got, vec)
    assert cache.get("acme", "enc48", "cd" * 32) is None
    assert cache.get("other", "enc48", SHA) is None


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(6, dtype=np.float64).reshape(2, 3),
        np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)),
    ],
)
def test_embedding_cache_reads_what_np_load_reads(cache: EmbeddingCache, arr: np.ndarray) -> None:
    put_raw(cache, npy(arr))
    got = cache.get("acme", "enc", SHA)
    assert got is not None
    np.testing.assert_array_equal(got, np.load(io.BytesIO(npy(arr)), allow_pickle=False).astype(np.float32))


def test_embedding_cache_reads_version_2_headers(cache: EmbeddingCache) -> None:
    vec = np.arange(5, dtype=np.float32)
    put_raw(cache, npy(vec, version=(2, 0)))
    got = cache.get("acme", "enc", SHA)
    assert got is not None
    np.testing.assert_array_equal(got, vec)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not an npy file at all",
        npy(np.arange(8, dtype=np.float32))[:-4],  # truncated
        npy(np.arange(8, dtype=np.float32)) + b"\0\0\0\0",  # trailing bytes
        npy(np.array([{"x": 1}], dtype=object), allow_pickle=True),  # would need unpickling
        b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n",  # a header that does not parse
    ],
)
def test_embedding_cache_treats_a_corrupt_entry_as_a_miss(cache: EmbeddingCache, body: bytes) -> None:
    put_raw(cache, body)
    assert cache.get("acme", "enc", SHA) is None
