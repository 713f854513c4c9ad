"""A local-folder object store: ``<root>/<bucket>/<key>``.

It is how the CLI works on the local data directory when no stack is running, and how the local
stack persists what moto holds in memory across restarts. ETags are MD5 of the content, as S3's are
for single-part uploads, so a snapshot compares equal to the live object.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from tagsmith.errors import InvalidKeyError, NotFoundError
from tagsmith.storage.base import ObjectInfo, PreconditionFailedError, StoredObject

_SIDE = ".tagsmith-meta"  # reserved suffix: never a key's last segment


class FileObjectStore:
    def __init__(self, *, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()  # conditional writes are check-then-act within this process

    def _path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or key.endswith(_SIDE):
            raise InvalidKeyError(f"key {key!r} cannot be stored in a folder (empty, '.' or '..' segment)")
        return self.root / bucket / Path(*parts)

    def path_of(self, bucket: str, key: str) -> Path:
        """The file that holds ``key``; :class:`InvalidKeyError` for a key no folder can hold."""
        return self._path(bucket, key)

    @staticmethod
    def _info(key: str, path: Path, body: bytes | None = None) -> ObjectInfo:
        data = path.read_bytes() if body is None else body
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat()
        return ObjectInfo(
            key, hashlib.md5(data, usedforsecurity=False).hexdigest(), len(data), None, modified
        )

    def get(self, bucket: str, key: str) -> StoredObject:
        path = self._path(bucket, key)
        try:
            body = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"{path} does not exist") from None
        return StoredObject(body, self._info(key, path, body))

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self._path(bucket, key)
        return self._info(key, path) if path.is_file() else None

    def get_small(self, bucket: str, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes | None] | None:
        path = self._path(bucket, key)
        try:
            if path.stat().st_size > max_bytes:
                return self._info(key, path), None
            body = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        return self._info(key, path, body), body

    def open(self, bucket: str, key: str) -> BinaryIO:
        path = self._path(bucket, key)
        try:
            # put() replaces files by rename, so an open handle keeps reading the version it opened
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"{path} does not exist") from None

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
        path = self._path(bucket, key)
        with self._lock:
            if if_none_match and path.is_file():
                raise PreconditionFailedError(f"{path} already exists")
            if if_match is not None:
                current = self.head(bucket, key)
                if current is None or current.etag != if_match:
                    raise PreconditionFailedError(f"{path} changed since it was read")
            path.parent.mkdir(parents=True, exist_ok=True)
            # write-then-rename: a reader never sees half a file
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, path)
        return hashlib.md5(body, usedforsecurity=False).hexdigest()

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str) -> str:
        return self.put(bucket, key, self.get(source_bucket, source_key).body)

    def delete(self, bucket: str, key: str) -> None:
        self._path(bucket, key).unlink(missing_ok=True)

    def list(self, bucket: str, prefix: str = "", *, start_after: str = "") -> Iterator[ObjectInfo]:
        base = self.root / bucket
        if not base.is_dir():
            return
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = Path(dirpath, name).relative_to(base).as_posix()
                if key.startswith(prefix) and key > start_after:
                    keys.append(key)
        for key in sorted(keys):
            path = base / key
            if path.is_file():
                yield self._info(key, path)
