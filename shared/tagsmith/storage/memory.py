"""An in-memory object store for unit tests; it honours the same conditional-write contract."""

from __future__ import annotations

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
        self._lock = threading.Lock()

    def get(self, bucket: str, key: str) -> StoredObject:
        try:
            return self._objects[(bucket, key)]
        except KeyError:
            raise NotFoundError(f"s3://{bucket}/{key} does not exist") from None

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        obj = self._objects.get((bucket, key))
        return obj.info if obj else None

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
            self._objects[(bucket, key)] = StoredObject(
                body, ObjectInfo(key, etag, len(body), content_type, now)
            )
            return etag

    def delete(self, bucket: str, key: str) -> None:
        self._objects.pop((bucket, key), None)

    def list(self, bucket: str, prefix: str = "", *, start_after: str = "") -> Iterator[ObjectInfo]:
        items = sorted(
            (k, o)
            for (b, k), o in list(self._objects.items())
            if b == bucket and k.startswith(prefix) and k > start_after
        )
        for _, obj in items:
            yield obj.info
