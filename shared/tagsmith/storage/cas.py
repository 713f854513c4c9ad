"""Read-modify-write of one stored document with optimistic concurrency (compare-and-swap on its
ETag): what every small "source of truth" object (asset records, video jobs) is updated with.

>>> from tagsmith.storage.memory import MemoryObjectStore
>>> store = MemoryObjectStore()
>>> doc = JsonDocument(store, "data", "n.json", decode=int, encode=lambda n: str(n).encode())
>>> doc.update(lambda n: (n or 0) + 1), doc.update(lambda n: (n or 0) + 1)
((1, True), (2, True))
>>> doc.update(lambda n: None)  # no change: nothing is written
(2, False)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from tagsmith.errors import NotFoundError, TransientError
from tagsmith.storage.base import ObjectStore, PreconditionFailedError

T = TypeVar("T")

#: ``update(known=...)`` default: read the document first.
UNKNOWN = object()


class JsonDocument(Generic[T]):
    """One object, decoded to ``T``; writes only succeed against the version that was read."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        key: str,
        *,
        decode: Callable[[bytes], T],
        encode: Callable[[T], bytes],
        what: str = "",
    ) -> None:
        self.store, self.bucket, self.key = store, bucket, key
        self.decode, self.encode = decode, encode
        self.what = what or key
        self.last_etag: str | None = None  # the ETag this object's last successful update() wrote

    def get(self) -> tuple[T, str] | None:
        """(the document, its ETag), or None when there is none."""
        try:
            obj = self.store.get(self.bucket, self.key)
        except NotFoundError:
            return None
        return self.decode(obj.body), obj.info.etag

    def update(
        self,
        change: Callable[[T | None], T | None],
        *,
        stamp: Callable[[T, T | None], T] = lambda new, _old: new,
        attempts: int = 5,
        known: tuple[T, str] | object | None = UNKNOWN,
    ) -> tuple[T | None, bool]:
        """``change`` gets the current document (or None) and returns the new one (None, or an equal
        one, to leave it as it is); ``stamp(new, old)`` adds what every write sets (revision, time).
        Retried on a lost race, re-reading each time; returns (the document as it now is, whether
        this call wrote it). ``known`` is what the caller read a moment ago (``get``'s result, None
        included): the first attempt trusts it instead of reading again, and the compare-and-swap
        still catches any change since."""
        for attempt in range(attempts):
            current = known if attempt == 0 and known is not UNKNOWN else self.get()
            assert current is None or isinstance(current, tuple)
            old, etag = current if current else (None, None)
            new = change(old)
            if new is None or new == old:
                return old, False
            new = stamp(new, old)
            try:
                self.last_etag = self.store.put(
                    self.bucket,
                    self.key,
                    self.encode(new),
                    content_type="application/json",
                    if_match=etag,
                    if_none_match=etag is None,
                )
            except PreconditionFailedError:
                continue
            return new, True
        raise TransientError(f"{self.what} kept changing under us; retry later")
