"""The local stack's fixes to moto's SQS answer exactly as moto does, without walking the queue
once per attribute and message (:mod:`tagsmith.local.motofixes`)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import InvalidAttributeName
from moto.sqs.models import SQSBackend
from tagsmith.local import motofixes

REGION = "ap-south-2"  # moto's registry is global: a region no other test uses


@pytest.fixture
def backend() -> Iterator[SQSBackend]:
    assert motofixes.apply() and motofixes.apply()  # idempotent
    sqs: SQSBackend = sqs_models.sqs_backends[DEFAULT_ACCOUNT_ID][REGION]
    assert not sqs.queues, list(sqs.queues)
    sqs.create_queue("dlq")
    sqs.create_queue(
        "work",
        MessageRetentionPeriod="600",
        RedrivePolicy=json.dumps(
            {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT_ID}:dlq", "maxReceiveCount": 3}
        ),
    )
    sqs.create_queue("jobs.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for i in range(30):
        sqs.send_message("work", f"m{i}", delay_seconds=60 if i % 7 == 0 else None)
    sqs.receive_message("work", 5, 0, 30)  # a few in flight
    yield sqs
    for name in list(sqs.queues):
        sqs.delete_queue(name)


def original(name: str) -> Any:
    return motofixes.ORIGINAL[name]


@pytest.mark.parametrize(
    "names",
    [
        ["All"],
        ["MessageRetentionPeriod"],
        ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ["ApproximateNumberOfMessagesDelayed", "QueueArn", "RedrivePolicy"],
        ["FifoQueue", "ContentBasedDeduplication"],  # absent from a standard queue
        ["QueueArn", "QueueArn"],
        [],
    ],
)
def test_queue_attributes_are_moto_s_own(backend: SQSBackend, names: list[str]) -> None:
    for queue in ("work", "jobs.fifo", "dlq"):
        assert backend.get_queue_attributes(queue, names) == original("get_queue_attributes")(
            backend, queue, names
        )


@pytest.mark.parametrize("name", ["Nonsense", ""])
def test_an_unknown_attribute_name_is_refused_as_moto_refuses_it(backend: SQSBackend, name: str) -> None:
    with pytest.raises(InvalidAttributeName):
        original("get_queue_attributes")(backend, "work", ["QueueArn", name])
    with pytest.raises(InvalidAttributeName):
        backend.get_queue_attributes("work", ["QueueArn", name])


def test_retention_is_checked_as_moto_checks_it(backend: SQSBackend) -> None:
    queue = backend.get_queue("work")
    for message, age_seconds in zip(queue._messages, itertools.cycle([0, 598, 602, 5000]), strict=False):
        message.sent_timestamp = int(sqs_models.unix_time_millis() - age_seconds * 1000)  # type: ignore[assignment]
        fixed = backend.is_message_valid_based_on_retention_period("work", message)
        assert fixed == original("is_message_valid_based_on_retention_period")(backend, "work", message)
        assert fixed == (age_seconds < 600)


def test_a_receive_reads_the_queue_attributes_no_more(backend: SQSBackend, monkeypatch: Any) -> None:
    walks = 0
    plain = sqs_models.Queue.__dict__["attributes"].fget

    def counted(queue: Any) -> Any:
        nonlocal walks
        walks += 1
        return plain(queue)

    monkeypatch.setattr(sqs_models.Queue, "attributes", property(counted))
    got = backend.receive_message("work", 10, 0, 30)
    assert len(got) == 10 and walks == 0  # moto itself: 3 walks of the whole queue per message
    backend.get_queue_attributes("work", ["ApproximateNumberOfMessages", "QueueArn"])
    assert walks == 1  # moto itself: 3 per name


def test_sqs_s_clock_is_moto_s_clock_without_the_datetimes() -> None:
    assert motofixes.apply()
    for fast, slow in (("unix_time", 1.0), ("unix_time_millis", 1000.0)):
        mine, moto_s = getattr(sqs_models, fast), motofixes.ORIGINAL[fast]
        assert abs(mine() - moto_s()) < 0.05 * slow
        at = datetime(2026, 1, 2, 3, 4, 5, 600000)
        assert mine(at) == moto_s(at)


def test_an_event_s_input_paths_are_parsed_once_and_find_the_same() -> None:
    assert motofixes.apply()
    import jsonpath_ng.ext

    event = {"detail": {"key": "acme/p1.jpg", "tags": ["red"]}}
    first = jsonpath_ng.ext.parse("$.detail.key")
    assert jsonpath_ng.ext.parse("$.detail.key") is first
    assert [m.value for m in first.find(event)] == ["acme/p1.jpg"]
    assert [m.value for m in motofixes.ORIGINAL["jsonpath_parse"]("$.detail.key").find(event)] == [
        "acme/p1.jpg"
    ]


def test_a_prefixed_listing_gives_exactly_moto_s_own(monkeypatch: Any) -> None:
    from moto.s3.models import s3_backends

    assert motofixes.apply()
    s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    name = "tagsmith-motofixes-listing"
    s3.create_bucket(name, "us-east-1")
    try:
        keys = [
            f"tenants/{t}/{kind}/{i:03d}/x.json"
            for t in ("a", "ab")
            for kind in ("r", "s")
            for i in range(40)
        ]
        for key in keys:
            s3.put_object(name, key, b"{}")
        s3.put_object(name, "tenants/a/r/005/x.json", b"{1}")  # a second version
        s3.delete_object(name, "tenants/a/r/007/x.json")
        bucket = s3.get_bucket(name)
        for prefix in ("", "tenants/a/", "tenants/a", "tenants/a/r/00", "tenants/zz/", "tenants/ab/s/039/"):
            for delimiter in (None, "/"):
                for marker, max_keys in ((None, None), (None, 25), ("tenants/a/r/010/x.json", 7)):
                    args = (bucket, prefix, delimiter, marker, max_keys)
                    mine = s3.list_objects(*args)
                    theirs = motofixes.ORIGINAL["list_objects"](s3, *args)
                    assert [getattr(k, "name", k) for k in mine[0]] == [
                        getattr(k, "name", k) for k in theirs[0]
                    ]
                    assert list(mine[1:]) == list(theirs[1:])
        got, _, _ = s3.list_objects_v2(bucket, "tenants/a/r/", None, None, None, 1000)
        assert len(got) == 39 and bucket.keys["tenants/a/r/005/x.json"].value == b"{1}"

        reads = 0
        store_type = type(bucket.keys)
        plain = store_type.__getitem__

        def counted(store: Any, key: str) -> Any:
            nonlocal reads
            reads += 1
            return plain(store, key)

        monkeypatch.setattr(store_type, "__getitem__", counted)
        s3.list_objects_v2(bucket, "tenants/ab/s/039/", None, None, None, 1000)
        assert reads == 1  # moto itself: every key of the bucket
        monkeypatch.undo()
    finally:
        for key in list(s3.get_bucket(name).keys):
            s3.delete_object(name, key)
        s3.delete_bucket(name)
