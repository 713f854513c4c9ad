"""The S3 adapter (boto3). The client is injected; SDK errors are translated at this edge."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from tagsmith.errors import NotFoundError, TransientError
from tagsmith.storage.base import ObjectInfo, PreconditionFailedError, StoredObject, strip_etag

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def _missing(error: Exception) -> bool:
    return isinstance(error, ClientError) and error.response["Error"]["Code"] in _NOT_FOUND


def _info(key: str, response: dict[str, Any], size: int) -> ObjectInfo:
    """An object's info from a GetObject or HeadObject response."""
    return ObjectInfo(
        key,
        strip_etag(response["ETag"]),
        size,
        response.get("ContentType"),
        str(response.get("LastModified")),
    )


class S3ObjectStore:
    def __init__(self, *, client: Any) -> None:
        self.client = client

    def get(self, bucket: str, key: str) -> StoredObject:
        try:
            r = self.client.get_object(Bucket=bucket, Key=key)
            body = r["Body"].read()
        except ClientError as e:
            if e.response["Error"]["Code"] in _NOT_FOUND:
                raise NotFoundError(f"s3://{bucket}/{key} does not exist") from e
            raise TransientError(f"reading s3://{bucket}/{key} failed: {e}") from e
        except BotoCoreError as e:
            raise TransientError(f"reading s3://{bucket}/{key} failed: {e}") from e
        return StoredObject(body, _info(key, r, len(body)), dict(r.get("Metadata") or {}))

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            r = self.client.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            if _missing(e):
                return None
            raise TransientError(f"head s3://{bucket}/{key} failed: {e}") from e
        return _info(key, r, int(r["ContentLength"]))

    def get_small(self, bucket: str, key: str, max_bytes: int) -> tuple[ObjectInfo, bytes | None] | None:
        try:
            r = self.client.get_object(Bucket=bucket, Key=key)
            size = int(r["ContentLength"])
            stream = r["Body"]
            try:
                body = stream.read() if size <= max_bytes else None
            finally:
                stream.close()  # a larger object's body is never read: the connection is dropped
        except (ClientError, BotoCoreError) as e:
            if _missing(e):
                return None
            raise TransientError(f"reading s3://{bucket}/{key} failed: {e}") from e
        return _info(key, r, size), body

    def open(self, bucket: str, key: str) -> BinaryIO:
        info = self.head(bucket, key)
        if info is None:
            raise NotFoundError(f"s3://{bucket}/{key} does not exist")
        return cast(
            BinaryIO,
            S3RangeReader(client=self.client, bucket=bucket, key=key, etag=info.etag, size=info.size),
        )

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
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body}
        if content_type:
            kwargs["ContentType"] = content_type
        if if_match is not None:
            kwargs["IfMatch"] = f'"{if_match}"'
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        try:
            r = self.client.put_object(**kwargs)
        except ClientError as e:
            if e.response["Error"]["Code"] in _RACE:
                raise PreconditionFailedError(f"s3://{bucket}/{key} changed since it was read") from e
            raise TransientError(f"writing s3://{bucket}/{key} failed: {e}") from e
        except BotoCoreError as e:
            raise TransientError(f"writing s3://{bucket}/{key} failed: {e}") from e
        return strip_etag(r["ETag"])

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str) -> str:
        where = f"s3://{source_bucket}/{source_key} to s3://{bucket}/{key}"
        try:
            r = self.client.copy_object(
                Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key}
            )
        except ClientError as e:
            if e.response["Error"]["Code"] in _NOT_FOUND | {"NoSuchBucket"}:
                raise NotFoundError(f"copying {where}: the source does not exist") from e
            raise TransientError(f"copying {where} failed: {e}") from e
        except BotoCoreError as e:
            raise TransientError(f"copying {where} failed: {e}") from e
        return strip_etag(r["CopyObjectResult"]["ETag"])

    def delete(self, bucket: str, key: str) -> None:
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            raise TransientError(f"deleting s3://{bucket}/{key} failed: {e}") from e

    def list(self, bucket: str, prefix: str = "", *, start_after: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **extra):
                for o in page.get("Contents", ()):
                    yield ObjectInfo(
                        o["Key"], strip_etag(o["ETag"]), int(o["Size"]), None, str(o["LastModified"])
                    )
        except ClientError as e:
            if e.response["Error"]["Code"] == "NoSuchBucket":
                raise NotFoundError(f"bucket {bucket!r} does not exist") from e
            raise TransientError(f"listing s3://{bucket}/{prefix} failed: {e}") from e
        except BotoCoreError as e:
            raise TransientError(f"listing s3://{bucket}/{prefix} failed: {e}") from e


class S3RangeReader(io.RawIOBase):
    """A seekable stream over one S3 object version, read with ranged GETs.

    Only one block is held in memory. Blocks start small (a sniff of the first bytes costs a small
    GET) and double while reads are sequential, up to ``max_block``; a seek elsewhere (a video
    index at the end of an MP4) starts small again. Every GET carries ``If-Match`` with the ETag
    seen at open, so a replaced object fails loudly instead of mixing two versions.
    """

    def __init__(
        self,
        *,
        client: Any,
        bucket: str,
        key: str,
        etag: str,
        size: int,
        min_block: int = 64 * 1024,
        max_block: int = 8 * 1024 * 1024,
    ) -> None:
        super().__init__()
        self.client, self.bucket, self.key, self.etag, self.size = client, bucket, key, etag, size
        self.min_block, self.max_block = min_block, max_block
        self._pos = 0
        self._block_start = 0
        self._block = b""
        self._next_block = min_block
        self.requests = 0  # ranged GETs made, for tests and logs

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self.size or len(view) == 0:
            return 0
        offset = self._pos - self._block_start
        if not 0 <= offset < len(self._block):
            self._fetch(max(len(view), self._block_size()))
            offset = 0
        n = min(len(view), len(self._block) - offset)
        view[:n] = self._block[offset : offset + n]
        self._pos += n
        return n

    def _block_size(self) -> int:
        sequential = self._pos == self._block_start + len(self._block) and self._block
        self._next_block = min(self._next_block * 2, self.max_block) if sequential else self.min_block
        return self._next_block

    def _fetch(self, length: int) -> None:
        end = min(self._pos + length, self.size) - 1
        where = f"s3://{self.bucket}/{self.key}"
        try:
            r = self.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={self._pos}-{end}", IfMatch=f'"{self.etag}"'
            )
            self._block = r["Body"].read()
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code in _NOT_FOUND or code in _RACE:
                raise NotFoundError(f"{where} was deleted or replaced while being read") from e
            raise TransientError(f"reading {where} bytes {self._pos}-{end} failed: {e}") from e
        except BotoCoreError as e:
            raise TransientError(f"reading {where} bytes {self._pos}-{end} failed: {e}") from e
        self.requests += 1
        self._block_start = self._pos
