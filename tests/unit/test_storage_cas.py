"""JsonDocument: read-modify-write that never loses a concurrent write."""

from __future__ import annotations

import pytest
from tagsmith.errors import TransientError
from tagsmith.storage import MemoryObjectStore
from tagsmith.storage.cas import JsonDocument


def counter(store: MemoryObjectStore) -> JsonDocument[int]:
    return JsonDocument(
        store, "data", "n.json", decode=int, encode=lambda n: str(n).encode(), what="the counter"
    )


def test_updates_create_then_change_and_skip_no_ops() -> None:
    doc = counter(MemoryObjectStore())
    assert doc.get() is None
    assert doc.update(lambda n: (n or 0) + 1) == (1, True)
    assert doc.update(lambda n: n) == (1, False)  # equal: nothing written
    assert doc.update(lambda n: (n or 0) + 1, stamp=lambda new, old: new * 10) == (20, True)


def test_a_stale_known_version_is_caught_and_the_change_reapplied_on_the_fresh_one() -> None:
    store = MemoryObjectStore()
    doc = counter(store)
    doc.update(lambda n: 1)
    stale = doc.get()
    doc.update(lambda n: (n or 0) + 10)  # another writer, after our read
    seen: list[int | None] = []

    def add_one(n: int | None) -> int:
        seen.append(n)
        return (n or 0) + 1

    assert doc.update(add_one, known=stale) == (12, True)
    assert seen == [1, 11]  # the first attempt trusted `known`; the compare-and-swap refused it


def test_a_document_that_never_settles_is_a_transient_error() -> None:
    store = MemoryObjectStore()
    doc = counter(store)
    doc.update(lambda n: 1)

    def racing(n: int | None) -> int:
        store.put("data", "n.json", str(100 + (n or 0)).encode())  # someone writes after each read
        return (n or 0) + 1

    with pytest.raises(TransientError, match="the counter kept changing"):
        doc.update(racing, attempts=3)
