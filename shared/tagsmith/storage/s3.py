"""The S3 adapter (boto3). The client is injected; SDK errors are translated at this edge."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tagsmith.errors import NotFoundError, TransientError
from tagsmith.storage.base import ObjectInfo, PreconditionFailedError, StoredObject, strip_etag

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


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
        info = ObjectInfo(
            key, strip_etag(r["ETag"]), len(body), r.get("ContentType"), str(r.get("LastModified"))
        )
        return StoredObject(body, info, dict(r.get("Metadata") or {}))

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            r = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as e:
            if e.response["Error"]["Code"] in _NOT_FOUND:
                return None
            raise TransientError(f"head s3://{bucket}/{key} failed: {e}") from e
        except BotoCoreError as e:
            raise TransientError(f"head s3://{bucket}/{key} failed: {e}") from e
        return ObjectInfo(
            key,
            strip_etag(r["ETag"]),
            int(r["ContentLength"]),
            r.get("ContentType"),
            str(r.get("LastModified")),
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
        except (ClientError, BotoCoreError) as e:
            raise TransientError(f"listing s3://{bucket}/{prefix} failed: {e}") from e
