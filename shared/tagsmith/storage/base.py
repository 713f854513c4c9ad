"""The object-store boundary every adapter satisfies (S3, a local folder, memory)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from tagsmith.errors import TagsmithError


class PreconditionFailedError(TagsmithError):
    """A conditional write lost a race: the object changed (or appeared) since it was read."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    etag: str  # without quotes
    size: int
    content_type: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class StoredObject:
    body: bytes
    info: ObjectInfo
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    def get(self, bucket: str, key: str) -> StoredObject:
        """The object's bytes; raises :class:`~tagsmith.errors.NotFoundError` if absent."""
        ...

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's info, or None if it does not exist."""
        ...

    def open(self, bucket: str, key: str) -> BinaryIO:
        """A seekable, read-only stream of the object, read on demand (for objects too large to
        hold in memory, such as videos); close it when done. Raises
        :class:`~tagsmith.errors.NotFoundError` if absent. The stream keeps reading the version it
        opened: if the object is replaced meanwhile, a read raises ``NotFoundError``."""
        ...

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
        """Write and return the new ETag. ``if_match``: only if the current ETag is this one;
        ``if_none_match``: only if the key does not exist. A lost race raises
        :class:`PreconditionFailedError`."""
        ...

    def delete(self, bucket: str, key: str) -> None: ...

    def list(self, bucket: str, prefix: str = "", *, start_after: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order; only keys after ``start_after`` if given
        (S3's ``StartAfter``: how a long listing resumes from a cursor without re-reading)."""
        ...


def strip_etag(etag: str) -> str:
    return etag.strip('"')
