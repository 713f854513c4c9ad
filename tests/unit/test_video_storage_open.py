"""``ObjectStore.open``: a seekable stream read on demand, on every adapter (S3 on in-process moto)."""

from __future__ import annotations

import io
import os

import boto3
import pytest
from moto import mock_aws
from tagsmith.errors import NotFoundError
from tagsmith.storage import S3ObjectStore
from tagsmith.storage.base import ObjectStore
from tagsmith.storage.s3 import S3RangeReader
from tagsmith.video import SamplingPolicy, VideoReader

from tests.videoclips import colour_clip


def test_open_reads_and_seeks_like_a_file(store: ObjectStore) -> None:
    data = os.urandom(200_000)
    store.put("assets", "acme/blob.bin", data)
    with store.open("assets", "acme/blob.bin") as f:
        assert f.read(10) == data[:10]
        f.seek(-50, io.SEEK_END)
        assert f.read() == data[-50:]
        f.seek(1000)
        assert f.read(5) == data[1000:1005]
        assert f.tell() == 1005
        f.seek(0)
        assert f.read() == data


def test_open_a_missing_object_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        store.open("assets", "acme/missing.mp4")


def test_pyav_decodes_straight_from_the_stream(store: ObjectStore) -> None:
    store.put("assets", "acme/clip.mp4", colour_clip())
    with store.open("assets", "acme/clip.mp4") as f, VideoReader(f, SamplingPolicy(every=None)) as video:
        assert [round(fr.time, 1) for fr in video.frames()] == [0.0, 3.0, 5.0]


def test_s3_stream_reads_in_growing_ranged_blocks_not_the_whole_object() -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="assets")
        data = os.urandom(3_000_000)
        S3ObjectStore(client=client).put("assets", "acme/big.bin", data)
        reader = S3RangeReader(client=client, bucket="assets", key="acme/big.bin", etag=_etag(client), size=len(data),
                               min_block=64 * 1024, max_block=1024 * 1024)  # fmt: skip
        assert reader.read(16) == data[:16]
        assert (reader.requests, len(reader._block)) == (1, 64 * 1024)  # a sniff costs one small GET
        reader.seek(0)
        assert reader.read() == data
        assert reader.requests < 10  # blocks doubled up to 1 MiB while reading on


def test_s3_stream_refuses_to_mix_two_versions_of_an_object() -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="assets")
        store = S3ObjectStore(client=client)
        store.put("assets", "acme/clip.mp4", os.urandom(300_000))
        f = store.open("assets", "acme/clip.mp4")
        f.read(10)
        store.put("assets", "acme/clip.mp4", b"a new upload")
        f.seek(200_000)
        with pytest.raises(NotFoundError, match="replaced"):
            f.read(10)


def _etag(client: object) -> str:
    return client.head_object(Bucket="assets", Key="acme/big.bin")["ETag"].strip('"')  # type: ignore[attr-defined]
