"""OpenSearch Dashboards saved objects for the asset index (``dashboards.ndjson`` beside this module;
``infra/dashboards/tagsmith.ndjson`` links to it), re-targeted per tenant, and their import.

The file holds an index pattern over ``tagsmith-assets-*``, three saved searches (needs review,
human-confirmed, failed), four visualisations (tag distribution, review backlog, confidence
histogram, uploads over time) and a dashboard assembling them. :func:`for_tenant` rewrites them for
one tenant: the index pattern becomes that tenant's alias exactly (not a wildcard, which would also
match ``acme-shoes``) and every id gets a ``-<tenant>`` suffix so tenants' copies can coexist.

>>> objects = for_tenant(load_saved_objects(), "acme")
>>> objects[0]["attributes"]["title"], objects[0]["id"]
('tagsmith-assets-acme', 'tagsmith-assets-acme')
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from tagsmith.search.mapping import alias_name

INDEX_PATTERN_ID = "tagsmith-assets"


@cache
def _text() -> str:
    return resources.files("tagsmith.search").joinpath("dashboards.ndjson").read_text("utf-8")


def load_saved_objects() -> list[dict[str, Any]]:
    """The saved objects of ``dashboards.ndjson``, one dict per line, as fresh copies."""
    return [json.loads(line) for line in _text().splitlines() if line.strip()]


def for_tenant(objects: list[dict[str, Any]], tenant: str) -> list[dict[str, Any]]:
    """``objects`` re-targeted at one tenant's alias, with ids and titles naming the tenant."""
    alias = alias_name(tenant)
    out = []
    for obj in copy.deepcopy(objects):
        obj["id"] = alias if obj["id"] == INDEX_PATTERN_ID else f"{obj['id']}-{tenant}"
        for ref in obj.get("references", []):
            ref["id"] = alias if ref["id"] == INDEX_PATTERN_ID else f"{ref['id']}-{tenant}"
        attributes = obj["attributes"]
        if obj["type"] == "index-pattern":
            attributes["title"] = alias
        else:
            attributes["title"] = f"{attributes['title']} ({tenant})"
        out.append(obj)
    return out


def to_ndjson(objects: list[dict[str, Any]]) -> bytes:
    """The import format: one JSON object per line."""
    return "".join(json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n" for o in objects).encode()


def referenced_fields(obj: dict[str, Any]) -> Iterator[str]:
    """Index fields a saved object uses: search columns, sort, query fields, aggregation fields."""
    attributes = obj["attributes"]
    yield from attributes.get("columns", [])
    yield from (field for field, _ in attributes.get("sort", []))
    if "timeFieldName" in attributes:
        yield attributes["timeFieldName"]
    source = json.loads(attributes.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}"))
    query = (source.get("query") or {}).get("query", "")
    yield from (term.split(":")[0].split(" ")[0] for term in _query_terms(query))
    if "visState" in attributes:
        for agg in json.loads(attributes["visState"]).get("aggs", []):
            if "field" in agg.get("params", {}):
                yield agg["params"]["field"]


def _query_terms(query: str) -> list[str]:
    # our saved queries are single "field:value" or "field > n" clauses
    return [query] if query.strip() else []


def multipart_body(ndjson: bytes, *, boundary: str | None = None) -> tuple[bytes, str]:
    """``(body, content_type)`` of the ``multipart/form-data`` upload ``_import`` expects."""
    boundary = boundary or uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="tagsmith.ndjson"\r\n'
            "Content-Type: application/ndjson\r\n\r\n"
        ).encode()
        + ndjson
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"
