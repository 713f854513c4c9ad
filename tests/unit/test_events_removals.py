"""Removal events and key decoding, on realistic samples of each event shape (tests/events/)."""

from __future__ import annotations

import pytest
from tagsmith.errors import InvalidInputError
from tagsmith.events import ObjectRef, parse_storage_changes, parse_storage_event

from tests.conftest import load_event

DECODED = "acme/summer shoot/café+1.jpg"  # encoded in every sample as acme/summer+shoot/caf%C3%A9%2B1.jpg


def test_s3_object_removed_is_a_removal_with_the_key_decoded() -> None:
    [ref] = parse_storage_changes(load_event("s3_removed_sqs_body.json"))
    assert ref == ObjectRef("tagsmith-assets", DECODED, sequencer="0055AED6DCD90281E6", removed=True)


def test_a_delete_marker_is_a_removal_carrying_its_version() -> None:
    [ref] = parse_storage_changes(load_event("s3_delete_marker_sqs_body.json"))
    assert (ref.key, ref.removed, ref.version_id) == (DECODED, True, "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd")


def test_eventbridge_object_deleted_is_a_removal_with_the_key_decoded() -> None:
    [ref] = parse_storage_changes(load_event("eventbridge_object_deleted.json"))
    assert (ref.bucket, ref.key, ref.removed, ref.etag) == ("tagsmith-assets", DECODED, True, None)


def test_eventbridge_object_created_keys_are_url_decoded_like_s3_notifications() -> None:
    [ref] = parse_storage_event(load_event("eventbridge_object_created_encoded.json"))
    [s3_ref] = parse_storage_event(load_event("s3_put_sqs_body.json"))
    assert ref.key == s3_ref.key == DECODED
    assert not ref.removed


@pytest.mark.parametrize(
    "sample",
    ["s3_removed_sqs_body.json", "s3_delete_marker_sqs_body.json", "eventbridge_object_deleted.json"],
)
def test_removals_are_never_handed_to_consumers_of_creations(sample: str) -> None:
    assert parse_storage_event(load_event(sample)) == []


def test_other_eventbridge_types_are_ignored() -> None:
    body = load_event("eventbridge_object_deleted.json")
    body["detail-type"] = "Object Tags Added"
    assert parse_storage_changes(body) == []


def test_a_removal_without_a_key_is_invalid_input_naming_the_event() -> None:
    body = load_event("s3_removed_sqs_body.json")
    del body["Records"][0]["s3"]["object"]["key"]
    with pytest.raises(InvalidInputError, match="ObjectRemoved:Delete"):
        parse_storage_changes(body)


def test_creations_and_removals_keep_message_order() -> None:
    created = load_event("s3_put_sqs_body.json")["Records"][0]
    removed = load_event("s3_removed_sqs_body.json")["Records"][0]
    refs = parse_storage_changes({"Records": [removed, created]})
    assert [r.removed for r in refs] == [True, False]
