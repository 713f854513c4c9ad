"""The local stack's write-through durability, against moto in-process: what moto acknowledged is on
disk before the call returns (objects, queued messages, dead-letter queues), and comes back into a
fresh moto. The same path under ``kill -9``: tests/e2e/test_durable_stack.py and ``make faults``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends
from tagsmith.local.durable import DurableState

BUCKET, QUEUE, DLQ = "tagsmith-assets", "tagsmith-ingest", "tagsmith-ingest-dlq"


def provision() -> tuple[Any, Any, str, str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    dlq = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1})
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "0"})[
        "QueueUrl"
    ]
    return s3, sqs, url, dlq


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    yield


def test_acknowledged_objects_and_messages_are_on_disk_and_come_back(aws: None, tmp_path: Path) -> None:
    with mock_aws():
        s3, sqs, url, dlq = provision()
        state = DurableState(home=tmp_path, buckets=[BUCKET], queues=[QUEUE, DLQ])
        state.attach()
        try:
            for i in range(5):
                s3.put_object(Bucket=BUCKET, Key=f"acme/{i}.jpg", Body=b"x%d" % i)
                # on disk the moment moto answered, before any snapshot could run
                assert (tmp_path / "s3" / BUCKET / "acme" / f"{i}.jpg").read_bytes() == b"x%d" % i
            s3.delete_object(Bucket=BUCKET, Key="acme/4.jpg")
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "acme/3.jpg"}]})
            s3.copy_object(
                Bucket=BUCKET, Key="acme/copy.jpg", CopySource={"Bucket": BUCKET, "Key": "acme/0.jpg"}
            )
            for i in range(3):
                sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
            [first] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)  # received, never deleted ...
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)  # ... so a receive moves it to the DLQ
            journaled = state.journaled()
        finally:
            state.close()
    assert journaled == {QUEUE: 1, DLQ: 1}

    with mock_aws():  # a new process: moto starts empty
        s3, sqs, url, dlq = provision()
        state = DurableState(home=tmp_path, buckets=[BUCKET], queues=[QUEUE, DLQ])
        try:
            assert state.restore_objects(s3_backends[DEFAULT_ACCOUNT_ID]["aws"]) == 4
            restored = state.restore_messages(sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"])
        finally:
            state.close()
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
        assert keys == ["acme/0.jpg", "acme/1.jpg", "acme/2.jpg", "acme/copy.jpg"]
        assert s3.get_object(Bucket=BUCKET, Key="acme/copy.jpg")["Body"].read() == b"x0"
        assert restored == {QUEUE: 1, DLQ: 1}
        evidence = sqs.receive_message(QueueUrl=dlq)["Messages"]
        assert len(evidence) == 1 and evidence[0]["Body"] in ("m1", "m2")  # DLQ evidence survives


def test_a_key_the_folder_cannot_hold_is_refused_not_silently_kept_in_memory(
    aws: None, tmp_path: Path
) -> None:
    with mock_aws():
        s3, *_ = provision()
        state = DurableState(home=tmp_path, buckets=[BUCKET], queues=[QUEUE])
        state.attach()
        try:
            for key in ("acme/../x.jpg", "acme/folder/", "acme//x.jpg"):
                with pytest.raises(s3.exceptions.ClientError, match="InvalidArgument"):
                    s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
            assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
        finally:
            state.close()


def test_of_two_compare_and_swaps_of_one_key_at_once_only_one_succeeds(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto reads the current ETag, then stores: a pause between the two (what a busy process is)
    # lets every writer check the same ETag before any stores, unless check and store are one step
    from moto.s3.models import S3Backend

    read = S3Backend.get_object

    def slow_read(self: Any, *args: Any, **kw: Any) -> Any:
        got = read(self, *args, **kw)
        time.sleep(0.05)
        return got

    with mock_aws():
        s3, *_ = provision()
        state = DurableState(home=tmp_path, buckets=[BUCKET], queues=[QUEUE])
        state.attach()
        try:
            etag = s3.put_object(Bucket=BUCKET, Key="acme/r.json", Body=b"0")["ETag"]
            monkeypatch.setattr(S3Backend, "get_object", slow_read)

            def swap(n: int) -> bool:
                try:
                    s3.put_object(Bucket=BUCKET, Key="acme/r.json", Body=b"%d" % n, IfMatch=etag)
                    return True
                except s3.exceptions.ClientError as e:
                    assert e.response["Error"]["Code"] == "PreconditionFailed"
                    return False

            with ThreadPoolExecutor(max_workers=6) as pool:
                won = [n for n, ok in zip(range(1, 7), pool.map(swap, range(1, 7)), strict=True) if ok]
        finally:
            state.close()
    assert len(won) == 1
    assert (tmp_path / "s3" / BUCKET / "acme" / "r.json").read_bytes() == b"%d" % won[0]


def test_without_an_attached_state_moto_behaves_as_usual(aws: None, tmp_path: Path) -> None:
    state = DurableState(home=tmp_path, buckets=[BUCKET], queues=[QUEUE])
    state.attach()
    state.close()  # detached: other tests' moto is untouched
    with mock_aws():
        s3, *_ = provision()
        s3.put_object(Bucket=BUCKET, Key="acme/folder/", Body=b"")
    assert not (tmp_path / "s3").exists()
