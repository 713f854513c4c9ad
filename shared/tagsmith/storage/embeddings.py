"""Embedding cache keyed by tenant, encoder id and content hash: nothing is embedded twice.

Stored as ``.npy`` and read with ``allow_pickle=False``. Per tenant on purpose: a shared cache would
let one tenant learn, from timing, whether another holds the same image.
"""

from __future__ import annotations

import io

import numpy as np

from tagsmith.errors import NotFoundError
from tagsmith.keys import embedding_key
from tagsmith.storage.base import ObjectStore


class EmbeddingCache:
    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def get(self, tenant: str, encoder_id: str, sha256: str) -> np.ndarray | None:
        try:
            body = self.store.get(self.bucket, embedding_key(tenant, encoder_id, sha256)).body
        except NotFoundError:
            return None
        try:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
        except ValueError:
            return None  # a corrupt entry is a miss, not a failure
        return np.asarray(arr, dtype=np.float32)

    def put(self, tenant: str, encoder_id: str, sha256: str, vector: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(vector, dtype=np.float32), allow_pickle=False)
        self.store.put(self.bucket, embedding_key(tenant, encoder_id, sha256), buf.getvalue())
