"""Functional-test fixtures: an OpenSearch client on a per-test osmem clone, and asset builders.

The ``osmem_clone`` fixture (per test, copy-on-write, ~2 ms) comes from the osmem-server pytest
plugin, which pytest loads automatically from the installed wheel; ``osmem_server`` is overridden
in ``tests/conftest.py`` (see its docstring), once for the functional and e2e tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch
from tagsmith.records import AssetRecord, AssetStatus, Source, SourceObject, TagAssignment, TagState
from tagsmith.search import InMemorySearchIndex, OpenSearchIndex, SearchIndex
from tagsmith.taxonomy import TagDefinition, Taxonomy


@pytest.fixture
def opensearch_client(osmem_clone: Any) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[osmem_clone.url], timeout=30)
    yield client
    client.close()


@pytest.fixture
def opensearch_index(opensearch_client: OpenSearch) -> OpenSearchIndex:
    return OpenSearchIndex(client=opensearch_client)


@pytest.fixture(params=["memory", "opensearch"])
def search_index(request: pytest.FixtureRequest) -> SearchIndex:
    """Each contract test runs once against the fake and once against OpenSearch (osmem)."""
    if request.param == "memory":
        return InMemorySearchIndex()
    return request.getfixturevalue("opensearch_index")


@pytest.fixture
def make_record() -> Callable[..., AssetRecord]:
    """Build an :class:`AssetRecord` with sensible defaults: ``make_record("a.jpg", tag(...))``."""

    def build(
        path: str,
        *tags: TagAssignment,
        tenant: str = "acme",
        media_type: str = "image/jpeg",
        revision: int = 1,
        **kw: Any,
    ) -> AssetRecord:
        return AssetRecord(
            tenant=tenant,
            path=path,
            source=SourceObject("assets", f"{tenant}/{path}", "etag", 1000),
            status=AssetStatus.TAGGED,
            media_type=media_type,
            width=64,
            height=48,
            models={t.model: "1" for t in tags},
            tags=tags,
            created_at=kw.pop("created_at", "2026-11-22T06:10:00.000Z"),
            updated_at=kw.pop("updated_at", "2026-11-22T06:10:00.000Z"),
            revision=revision,
            **kw,
        )

    return build


@pytest.fixture
def tag() -> Callable[..., TagAssignment]:
    """``tag("scarf")`` -> an applied AI tag of model ``garments`` with confidence 0.6."""

    def build(
        name: str,
        state: TagState = TagState.APPLIED,
        *,
        model: str = "garments",
        confidence: float | None = 0.6,
    ) -> TagAssignment:
        source = Source.HUMAN if state in (TagState.CONFIRMED, TagState.REJECTED) else Source.AI
        return TagAssignment(model, name, state, source, confidence=confidence, model_version="1")

    return build


@pytest.fixture
def garments() -> dict[str, Taxonomy]:
    """A multilingual taxonomy for model ``garments``."""
    return {
        "garments": Taxonomy(
            (
                TagDefinition(
                    "scarf",
                    labels={
                        "en": "red scarf",
                        "fr": "écharpe",
                        "de": "Schal",
                        "ja": "マフラー",
                        "zh": "红色围巾",
                    },
                    synonyms={"fr": ("foulard",)},
                ),
                TagDefinition("hat", labels={"en": "hat", "fr": "chapeau", "de": "Hüte", "ja": "赤い帽子"}),
                TagDefinition("glove", labels={"en": "glove", "fr": "gant"}),
                TagDefinition("coat", labels={"en": "coat", "fr": "manteau"}),
                TagDefinition("dog", labels={"en": "dog", "ja": "走っている犬"}),
            )
        )
    }


#: The buckets the handler tests deploy against in moto.
HANDLER_ASSETS, HANDLER_DATA = "tagsmith-assets", "tagsmith-data"


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto's S3 and SQS in-process, with the assets and data buckets made: ``{"s3", "sqs"}``
    clients (each test makes the queues it needs, see :func:`queue_with_arn`)."""
    import boto3
    from moto import mock_aws

    for k, v in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in (HANDLER_ASSETS, HANDLER_DATA):
            s3.create_bucket(Bucket=bucket)
        yield {"s3": s3, "sqs": boto3.client("sqs", region_name="us-east-1")}


def queue_with_arn(sqs: Any, name: str) -> tuple[str, str]:
    """Create an SQS queue: (its URL, its ARN)."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
