"""OCR text cache keyed by tenant, OCR engine id and content hash: no image is read twice.

The twin of :class:`tagsmith.storage.embeddings.EmbeddingCache` for text: training reads every
example's text through it (so a retrain never runs OCR again on the same photo), and ingestion
writes what it reads (so a retrain from reviewers' corrections finds the uploads' text). Plain JSON,
one object per image::

    tenants/<t>/ocr/<engine id>/<sha256>.json   {"engine": "...", "lines": [{"text", "score", "box"}]}

Per tenant on purpose, like embeddings: a shared cache would let a tenant learn, from timing,
whether another holds the same image.

>>> from tagsmith.storage.memory import MemoryObjectStore
>>> from tagsmith.records import TextLine
>>> cache = TextCache(store=MemoryObjectStore(), bucket="data")
>>> cache.put("acme", "ocr-v1", "ab" * 32, [TextLine("LAKTOSFRI", 0.98)])
>>> [line.text for line in cache.get("acme", "ocr-v1", "ab" * 32)]
['LAKTOSFRI']
>>> cache.get("other", "ocr-v1", "ab" * 32) is None
True
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from tagsmith.errors import InvalidInputError, NotFoundError
from tagsmith.keys import tenant_prefix
from tagsmith.records import TextLine
from tagsmith.storage.base import ObjectStore

log = logging.getLogger(__name__)

_ENGINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def text_cache_key(tenant: str, engine_id: str, sha256: str) -> str:
    if not _ENGINE_ID.match(engine_id):
        raise InvalidInputError(f"OCR engine id {engine_id!r} must be letters, digits, '.', '_' or '-'")
    if not _SHA256.match(sha256):
        raise InvalidInputError(f"content hash {sha256!r} is not a lowercase hex SHA-256")
    return f"{tenant_prefix(tenant)}ocr/{engine_id}/{sha256}.json"


class TextCache:
    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def get(self, tenant: str, engine_id: str, sha256: str) -> list[TextLine] | None:
        """The lines ``engine_id`` read from the image with this content hash, or None (a miss)."""
        try:
            body = self.store.get(self.bucket, text_cache_key(tenant, engine_id, sha256)).body
        except NotFoundError:
            return None
        try:
            doc = json.loads(body)
            if doc.get("engine") != engine_id:
                return None
            return [TextLine.from_dict(d) for d in doc["lines"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning(
                "corrupt OCR cache entry treated as a miss", extra={"tenant": tenant, "sha256": sha256}
            )
            return None

    def put(self, tenant: str, engine_id: str, sha256: str, lines: Sequence[TextLine]) -> None:
        body = json.dumps(
            {"engine": engine_id, "lines": [line.to_dict() for line in lines]}, ensure_ascii=False
        ).encode()
        self.store.put(
            self.bucket, text_cache_key(tenant, engine_id, sha256), body, content_type="application/json"
        )
