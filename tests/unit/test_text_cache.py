"""The per-tenant OCR cache: keyed by tenant, engine and content hash; a bad entry is a miss."""

from __future__ import annotations

import pytest
from tagsmith.errors import InvalidInputError, InvalidKeyError
from tagsmith.records import TextLine
from tagsmith.storage import MemoryObjectStore
from tagsmith.storage.texts import TextCache, text_cache_key

SHA = "0f" * 32


def test_lines_round_trip_with_boxes_and_scores() -> None:
    cache = TextCache(store=MemoryObjectStore(), bucket="data")
    lines = [TextLine("LAKTOSFRI", 0.98, ((1, 2), (30, 2), (30, 9), (1, 9))), TextLine("1,5%", 0.9)]
    cache.put("acme", "rapidocr-3.10-ppocrv6-small", SHA, lines)
    assert cache.get("acme", "rapidocr-3.10-ppocrv6-small", SHA) == lines
    assert cache.get("acme", "another-engine", SHA) is None  # another engine reads differently
    assert cache.get("globex", "rapidocr-3.10-ppocrv6-small", SHA) is None  # tenants never share


def test_an_image_with_no_text_is_cached_as_empty_not_missing() -> None:
    cache = TextCache(store=MemoryObjectStore(), bucket="data")
    cache.put("acme", "ocr", SHA, [])
    assert cache.get("acme", "ocr", SHA) == []


def test_a_corrupt_or_foreign_entry_is_a_miss() -> None:
    store = MemoryObjectStore()
    cache = TextCache(store=store, bucket="data")
    store.put("data", text_cache_key("acme", "ocr", SHA), b"{not json")
    assert cache.get("acme", "ocr", SHA) is None
    store.put("data", text_cache_key("acme", "ocr", SHA), b'{"engine": "other", "lines": []}')
    assert cache.get("acme", "ocr", SHA) is None


def test_keys_refuse_what_could_escape_the_tenant_prefix() -> None:
    assert text_cache_key("acme", "ocr-v1", SHA) == f"tenants/acme/ocr/ocr-v1/{SHA}.json"
    with pytest.raises(InvalidInputError, match="OCR engine id"):
        text_cache_key("acme", "../models", SHA)
    with pytest.raises(InvalidInputError, match="SHA-256"):
        text_cache_key("acme", "ocr", "../../x")
    with pytest.raises(InvalidKeyError):
        text_cache_key("../other", "ocr", SHA)
