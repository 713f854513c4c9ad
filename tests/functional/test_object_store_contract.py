"""One contract for every ObjectStore: the in-memory fake and the folder store behave like S3."""

from __future__ import annotations

from pathlib import Path

import pytest
from tagsmith.errors import InvalidKeyError, NotFoundError
from tagsmith.storage import (
    ObjectStore,
    PreconditionFailedError,
)
from tagsmith.storage.files import FileObjectStore as _Files

BUCKET = "contract-bucket"


def test_put_then_get_returns_the_bytes_and_a_stable_etag(store: ObjectStore) -> None:
    etag = store.put(BUCKET, "a/b.txt", b"hello")
    got = store.get(BUCKET, "a/b.txt")
    assert got.body == b"hello"
    assert got.info.etag == etag == "5d41402abc4b2a76b9719d911017c592"  # MD5, as S3 single-part uploads
    assert store.head(BUCKET, "a/b.txt").size == 5


def test_missing_objects(store: ObjectStore) -> None:
    assert store.head(BUCKET, "nope") is None
    with pytest.raises(NotFoundError):
        store.get(BUCKET, "nope")
    store.delete(BUCKET, "nope")  # deleting nothing is fine


def test_get_small_reads_a_small_object_in_one_request_and_never_a_large_one(store: ObjectStore) -> None:
    etag = store.put(BUCKET, "p.jpg", b"0123456789")
    got = store.get_small(BUCKET, "p.jpg", 10)
    assert got is not None
    info, body = got
    assert (info.etag, info.size, body) == (etag, 10, b"0123456789")
    big = store.get_small(BUCKET, "p.jpg", 9)
    assert big is not None and big[0].size == 10 and big[1] is None  # larger than asked: not read
    assert store.get_small(BUCKET, "nope", 10) is None


def test_if_none_match_refuses_to_overwrite(store: ObjectStore) -> None:
    store.put(BUCKET, "k", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailedError):
        store.put(BUCKET, "k", b"2", if_none_match=True)
    assert store.get(BUCKET, "k").body == b"1"


def test_create_once_takes_its_own_lost_acknowledgement_for_success(store: ObjectStore) -> None:
    from tagsmith.storage.base import create_once

    create_once(store, "contract-bucket", "v/model.json", b"{1}")
    create_once(store, "contract-bucket", "v/model.json", b"{1}")  # the retry of a write that happened
    with pytest.raises(PreconditionFailedError):
        create_once(store, "contract-bucket", "v/model.json", b"{2}")  # another writer's version
    assert store.get("contract-bucket", "v/model.json").body == b"{1}"


def test_if_match_is_a_compare_and_swap(store: ObjectStore) -> None:
    first = store.put(BUCKET, "k", b"1")
    second = store.put(BUCKET, "k", b"2", if_match=first)
    with pytest.raises(PreconditionFailedError):
        store.put(BUCKET, "k", b"3", if_match=first)
    assert store.get(BUCKET, "k").info.etag == second


def test_list_returns_keys_under_a_prefix_in_order(store: ObjectStore) -> None:
    for key in ("t/b/2.json", "t/a/1.json", "u/x.json", "t/a/0.json"):
        store.put(BUCKET, key, b"{}")
    assert [i.key for i in store.list(BUCKET, "t/")] == ["t/a/0.json", "t/a/1.json", "t/b/2.json"]
    store.delete(BUCKET, "t/a/1.json")
    assert [i.key for i in store.list(BUCKET, "t/a/")] == ["t/a/0.json"]


def test_keys_with_spaces_and_unicode(store: ObjectStore) -> None:
    store.put(BUCKET, "acme/Été 2026/ré+d (1).jpg", b"x")
    assert [i.key for i in store.list(BUCKET, "acme/")] == ["acme/Été 2026/ré+d (1).jpg"]


def test_list_resumes_after_the_cursor_within_the_prefix(store: ObjectStore) -> None:
    # what a backfill resumes from
    for key in ("acme/a.jpg", "acme/b/c.jpg", "acme/d.jpg", "acmeco/x.jpg", "other/y.jpg"):
        store.put("assets", key, b"x")
    assert [i.key for i in store.list("assets", "acme/", start_after="acme/b/c.jpg")] == ["acme/d.jpg"]
    assert [i.key for i in store.list("assets", "acme/")] == ["acme/a.jpg", "acme/b/c.jpg", "acme/d.jpg"]
    assert [i.key for i in store.list("assets", "acme/", start_after="acme/d.jpg")] == []


def test_the_folder_store_refuses_keys_that_escape_its_root(tmp_path: Path) -> None:
    files = _Files(root=tmp_path / "root")
    with pytest.raises(InvalidKeyError):
        files.put(BUCKET, "../../etc/passwd", b"x")


def test_copy_writes_the_same_bytes_under_another_key_with_the_same_etag(store: ObjectStore) -> None:
    # what `tagsmith import s3://other-bucket/...` does: a server-side copy, bytes never downloaded
    etag = store.put(BUCKET, "library/2019/a b.jpg", b"photo bytes")

    copied = store.copy(BUCKET, "library/2019/a b.jpg", "assets", "acme/uploads/2019/a b.jpg")

    assert copied == etag  # a single-part object's copy keeps its MD5 ETag
    assert store.get("assets", "acme/uploads/2019/a b.jpg").body == b"photo bytes"
    assert store.get(BUCKET, "library/2019/a b.jpg").body == b"photo bytes"  # the source stays
    with pytest.raises(NotFoundError):
        store.copy(BUCKET, "library/none.jpg", "assets", "acme/uploads/none.jpg")
    assert store.head("assets", "acme/uploads/none.jpg") is None
