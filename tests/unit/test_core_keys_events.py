"""Key layout, tenant validation and storage-event parsing."""

from __future__ import annotations

import pytest
from tagsmith.errors import InvalidInputError, InvalidKeyError
from tagsmith.events import ObjectRef, parse_storage_event
from tagsmith.keys import AssetKey, asset_from_record_key, parse_asset_key, record_key

from tests.conftest import load_event


@pytest.mark.parametrize(
    "key",
    [
        "no-slash.jpg",
        "/leading.jpg",
        "UPPER/x.jpg",
        "tenants/x.jpg",
        "acme/",
        "acme/a//b.jpg",
        "acme/../b.jpg",
        "-x/a.jpg",
    ],
)
def test_parse_asset_key_refuses_keys_outside_a_valid_tenant(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        parse_asset_key(key)


def test_parse_asset_key_splits_tenant_and_path() -> None:
    assert parse_asset_key("acme-shoes/2026/IMG 1.jpg") == AssetKey("acme-shoes", "2026/IMG 1.jpg")


def test_record_key_round_trips() -> None:
    asset = AssetKey("acme", "a/b/c.jpg")
    assert record_key(asset) == "tenants/acme/records/a/b/c.jpg.json"
    assert asset_from_record_key(record_key(asset)) == asset


def test_s3_event_keys_are_url_decoded() -> None:
    refs = parse_storage_event(load_event("s3_put_sqs_body.json"))
    assert refs == [
        ObjectRef("tagsmith-assets", "acme/summer shoot/café+1.jpg", "d41d8cd98f00b204e9800998ecf8427e", 1024)
    ]


def test_s3_test_event_is_skipped() -> None:
    assert parse_storage_event({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}) == []


def test_eventbridge_object_created_is_understood() -> None:
    refs = parse_storage_event(load_event("eventbridge_object_created.json"))
    assert refs == [
        ObjectRef("tagsmith-assets", "acme/a.jpg", "abc", 5, version_id="v1", sequencer="00617F08299329D189")
    ]


def test_removal_events_produce_nothing_to_ingest() -> None:
    body = load_event("s3_put_sqs_body.json")
    body["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert parse_storage_event(body) == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"hello": 1}'])
def test_malformed_message_bodies_are_invalid_input(body: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_storage_event(body)
