"""The object-store boundary every adapter satisfies (S3, a local folder, memory)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from tagsmith.errors import TagsmithError


class PreconditionFailedError(TagsmithError):
    """A conditional write lost a race: the object changed (or appeared) since it was read."""

    code = "precondition_failed"
    retryable = True  # read again, merge again


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

    def get_small(self, bucket: str, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes | None] | None:
        """One read: the object's info, and its bytes if it holds at most ``max_bytes`` (None: it is
        larger, and nothing past the headers was read); None if it does not exist. What a HEAD and
        a GET gave, in one request, without reading a 5 GB object whole."""
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

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str) -> str:
        """Copy an object inside the store (S3's ``CopyObject``: the bytes never leave it) and
        return the new ETag. Raises :class:`~tagsmith.errors.NotFoundError` if the source is
        absent. On S3 the copy raises an ``ObjectCreated:Copy`` event as an upload would."""
        ...

    def delete(self, bucket: str, key: str) -> None: ...

    def list(self, bucket: str, prefix: str = "", *, start_after: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order; only keys after ``start_after`` if given
        (S3's ``StartAfter``: how a long listing resumes from a cursor without re-reading)."""
        ...


def strip_etag(etag: str) -> str:
    return etag.strip('"')


def create_once(
    store: ObjectStore, bucket: str, key: str, body: bytes, *, content_type: str | None = None
) -> None:
    """Create ``key`` if it does not exist (``If-None-Match: *``). An existing object with exactly
    these bytes counts as created: it is this very write, whose acknowledgement was lost and whose
    retry then found it (an S3 500 after the write, retried by the SDK, answers 412). Any other
    existing object raises :class:`PreconditionFailedError`."""
    try:
        store.put(bucket, key, body, content_type=content_type, if_none_match=True)
    except PreconditionFailedError:
        from tagsmith.errors import NotFoundError

        try:
            existing = store.get(bucket, key).body
        except NotFoundError:
            raise
        if existing != body:
            raise
