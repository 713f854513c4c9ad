"""An in-memory object store for unit tests; it honours the same conditional-write contract."""

from __future__ import annotations

import bisect
import hashlib
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from tagsmith.errors import NotFoundError
from tagsmith.storage.base import ObjectInfo, PreconditionFailedError, StoredObject


class MemoryObjectStore:
    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], StoredObject] = {}
        self._keys: dict[str, list[str]] = {}  # per bucket, sorted: listings bisect instead of sorting
        self._lock = threading.Lock()

    def get(self, bucket: str, key: str) -> StoredObject:
        try:
            return self._objects[(bucket, key)]
        except KeyError:
            raise NotFoundError(f"s3://{bucket}/{key} does not exist") from None

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        obj = self._objects.get((bucket, key))
        return obj.info if obj else None

    def get_small(self, bucket: str, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes | None] | None:
        obj = self._objects.get((bucket, key))
        if obj is None:
            return None
        return obj.info, obj.body if obj.info.size <= max_bytes else None

    def open(self, bucket: str, key: str) -> BinaryIO:
        obj = self._objects.get((bucket, key))
        if obj is None:
            raise NotFoundError(f"s3://{bucket}/{key} does not exist")
        return io.BytesIO(obj.body)  # bytes are immutable: a later put cannot tear the stream

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        with self._lock:
            current = self._objects.get((bucket, key))
            if if_none_match and current is not None:
                raise PreconditionFailedError(f"s3://{bucket}/{key} already exists")
            if if_match is not None and (current is None or current.info.etag != if_match):
                raise PreconditionFailedError(f"s3://{bucket}/{key} changed since it was read")
            etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
            now = datetime.now(UTC).isoformat()
            if current is None:
                bisect.insort(self._keys.setdefault(bucket, []), key)
            self._objects[(bucket, key)] = StoredObject(
                body, ObjectInfo(key, etag, len(body), content_type, now)
            )
            return etag

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str) -> str:
        source = self.get(source_bucket, source_key)
        return self.put(bucket, key, source.body, content_type=source.info.content_type)

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            if self._objects.pop((bucket, key), None) is not None:
                keys = self._keys[bucket]
                del keys[bisect.bisect_left(keys, key)]

    def list(self, bucket: str, prefix: str = "", *, start_after: str = "") -> Iterator[ObjectInfo]:
        # Read in pages of 1,000 keys from the sorted index, as S3 lists: a listing that stops
        # early costs what it read, and writes between pages are seen or not, never torn.
        after = max(start_after, prefix) if start_after >= prefix else ""
        while True:
            with self._lock:
                keys = self._keys.get(bucket, [])
                i = bisect.bisect_right(keys, after) if after else bisect.bisect_left(keys, prefix)
                page = []
                for key in keys[i : i + 1000]:
                    if not key.startswith(prefix):
                        break
                    obj = self._objects.get((bucket, key))
                    if obj is not None:
                        page.append(obj.info)
                more = len(page) == 1000
            yield from page
            if not more:
                return
            after = page[-1].key
