"""The listing a backfill resumes from: ``ObjectStore.list(start_after=)`` on every adapter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from tagsmith.storage import FileObjectStore, MemoryObjectStore, S3ObjectStore
from tagsmith.storage.base import ObjectStore


@pytest.fixture(params=["memory", "files", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "memory":
        yield MemoryObjectStore()
    elif request.param == "files":
        yield FileObjectStore(root=tmp_path)
    else:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket="assets")
            yield S3ObjectStore(client=client)


def test_list_resumes_after_the_cursor_within_the_prefix(store: ObjectStore):
    for key in ("acme/a.jpg", "acme/b/c.jpg", "acme/d.jpg", "acmeco/x.jpg", "other/y.jpg"):
        store.put("assets", key, b"x")
    assert [i.key for i in store.list("assets", "acme/", start_after="acme/b/c.jpg")] == ["acme/d.jpg"]
    assert [i.key for i in store.list("assets", "acme/")] == ["acme/a.jpg", "acme/b/c.jpg", "acme/d.jpg"]
    assert [i.key for i in store.list("assets", "acme/", start_after="acme/d.jpg")] == []
