"""The deployable search handler: token auth, tenant isolation, parameters, against moto + osmem."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from opensearchpy import OpenSearch
from osmem_server import OsmemServer
from tagsmith.auth import TokenStore
from tagsmith.config import Settings
from tagsmith.errors import TransientError
from tagsmith.local.runtime import LambdaContext
from tagsmith.local.stack import REPO_ROOT, load_function
from tagsmith.records import AssetRecord, AssetStatus, Source, SourceObject, TagAssignment, TagState
from tagsmith.search import OpenSearchIndex
from tagsmith.storage import S3ObjectStore
from tagsmith.taxonomy import TagDefinition, Taxonomy
from tagsmith.wiring import build

DATA = "tagsmith-data"
SAMPLE = REPO_ROOT / "functions" / "search" / "events" / "search_request.json"


def request(token: str | None, **params: str) -> dict[str, Any]:
    """The sample API Gateway v2 event with this token and these query parameters."""
    event = copy.deepcopy(json.loads(SAMPLE.read_text("utf-8")))
    event["queryStringParameters"] = params or None
    if token is None:
        del event["headers"]["authorization"]
    else:
        event["headers"]["authorization"] = f"Bearer {token}"
    return event


@pytest.fixture(scope="module")
def wired(osmem_server: OsmemServer) -> Iterator[tuple[Any, OpenSearchIndex, dict[str, str]]]:
    """(handler module, index, tokens), once per module: the handler wired to moto S3 (tokens) and
    an osmem clone; acme and globex both have a scarf photo, acme also a hat. Tests only read."""
    garments = Taxonomy((TagDefinition("scarf", {"en": "scarf", "fr": "écharpe"}), TagDefinition("hat")))
    clone = osmem_server.clone()
    client = OpenSearch(hosts=[clone.url], timeout=30)
    opensearch_index = OpenSearchIndex(client=client)
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        for k, v in {
            "AWS_ACCESS_KEY_ID": "t",
            "AWS_SECRET_ACCESS_KEY": "t",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(k, v)
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=DATA)
        store = S3ObjectStore(client=s3)
        tokens = TokenStore(store=store, bucket=DATA)
        issued = {tenant: tokens.issue(tenant, name="ana", role="reader") for tenant in ("acme", "globex")}
        for tenant, path, name in (
            ("acme", "scarf.jpg", "scarf"),
            ("acme", "hat.jpg", "hat"),
            ("globex", "scarf.jpg", "scarf"),
        ):
            opensearch_index.upsert(_record(tenant, path, name), {"garments": garments})
        module = load_function(REPO_ROOT / "functions", "search")
        module.components.set(build(Settings(data_bucket=DATA), store=store, index=opensearch_index))
        yield module, opensearch_index, issued
    client.close()
    clone.close()


def _record(tenant: str, path: str, tag: str) -> AssetRecord:
    return AssetRecord(
        tenant=tenant,
        path=path,
        source=SourceObject("assets", f"{tenant}/{path}", "etag", 1000),
        status=AssetStatus.TAGGED,
        media_type="image/jpeg",
        models={"garments": "1"},
        tags=(TagAssignment("garments", tag, TagState.APPLIED, Source.AI, 0.9, "1"),),
    )


@pytest.fixture
def search(
    wired: tuple[Any, OpenSearchIndex, dict[str, str]],
) -> tuple[Callable[[dict[str, Any]], tuple[int, dict[str, Any]]], dict[str, str]]:
    """(call, tokens): call the handler with an event, get (status, JSON body)."""
    module, _, tokens = wired

    def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = module.handler(event, LambdaContext("tagsmith-search"))
        assert response["headers"]["content-type"] == "application/json"
        return response["statusCode"], json.loads(response["body"])

    return call, tokens


def asset_keys(body: dict[str, Any]) -> list[str]:
    return sorted(h["asset_key"] for h in body["hits"])


def test_search_handler_returns_the_documented_page(search: Any) -> None:
    call, tokens = search

    status, body = call(request(tokens["acme"], q="écharpe", lang="fr"))

    assert status == 200
    assert set(body) == {"total", "hits", "next_search_after", "next_cursor", "facets"}
    assert asset_keys(body) == ["acme/scarf.jpg"]
    assert set(body["hits"][0]) == {"asset_key", "score", "tags", "highlights"}
    assert body["facets"]["tag_ids"] == [{"value": "garments/scarf", "count": 1}]


def test_search_handler_pages_with_the_cursor(search: Any) -> None:
    call, tokens = search

    _, first = call(request(tokens["acme"], size="1"))
    _, second = call(request(tokens["acme"], size="1", cursor=first["next_cursor"]))

    assert first["next_cursor"] and first["total"] == 2
    assert asset_keys(first) != asset_keys(second)
    assert second["facets"] == {}


@pytest.mark.parametrize("token", [None, "", "tsk.acme.not-a-real-secret", "garbage", "tsk.ACME!.x"])
def test_search_handler_refuses_a_missing_or_unknown_token_with_401(search: Any, token: str | None) -> None:
    call, _ = search

    status, body = call(request(token, q="scarf"))

    assert status == 401
    assert body["error"] and "hits" not in body


def test_search_handler_never_returns_another_tenants_assets(search: Any) -> None:
    call, tokens = search

    # GIVEN acme's token, WHEN the request names globex in every way a request could
    for params in ({"q": "scarf globex"}, {"q": "globex/scarf.jpg"}, {"tag": "garments/scarf"}):
        status, body = call(request(tokens["acme"], **params))
        assert status == 200
        assert all(k.startswith("acme/") for k in asset_keys(body)), params

    status, body = call(request(tokens["acme"], tenant="globex"))
    assert status == 400  # no tenant parameter exists: it cannot be smuggled in
    _, theirs = call(request(tokens["globex"], q="scarf"))
    assert asset_keys(theirs) == ["globex/scarf.jpg"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": "0"}, "page size"),
        ({"size": "many"}, "size must be a number"),
        ({"min_confidence": "2"}, "min_confidence"),
        ({"source": "robot"}, "source"),
        ({"lang": "xx"}, "language"),
        ({"tag": "scarf"}, "<model>/<tag>"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"uploaded_from": "last week"}, "not a date"),
    ],
)
def test_search_handler_refuses_bad_parameters_with_400_and_says_why(
    search: Any, params: dict[str, str], message: str
) -> None:
    call, tokens = search

    status, body = call(request(tokens["acme"], **params))

    assert status == 400
    assert message in body["error"]


def test_search_handler_answers_503_when_the_cluster_is_unreachable(
    search: Any, wired: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    call, tokens = search
    _, opensearch_index, _ = wired

    def down(*args: Any, **kw: Any) -> Any:
        raise TransientError("search cluster unreachable")

    monkeypatch.setattr(opensearch_index, "search", down)

    status, body = call(request(tokens["acme"], q="scarf"))

    assert status == 503
    assert "retry" in body["error"]
