"""The OpenSearch Dashboards saved objects (infra/dashboards/tagsmith.ndjson) and their import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tagsmith.search import load_mapping
from tagsmith.search.dashboards import (
    for_tenant,
    load_saved_objects,
    multipart_body,
    referenced_fields,
    to_ndjson,
)

REPO = Path(__file__).resolve().parents[2]
NDJSON = REPO / "infra" / "dashboards" / "tagsmith.ndjson"
REQUIRED = {
    "index-pattern": 1,
    "search": 3,  # needs review, human-confirmed, failed
    "visualization": 4,  # tag distribution, review backlog, confidence histogram, uploads over time
    "dashboard": 1,
}


def mapping_fields() -> set[str]:
    """Every field path of the mapping that Dashboards can use (nested ones cannot be aggregated)."""
    out: set[str] = set()

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            if spec.get("type") == "nested":
                continue
            out.add(prefix + name)
            out.update(f"{prefix}{name}.{sub}" for sub in spec.get("fields", {}))
            walk(spec.get("properties", {}), f"{prefix}{name}.")

    walk(load_mapping()["mappings"]["properties"], "")
    return out


def test_ndjson_each_line_is_a_saved_object() -> None:
    lines = NDJSON.read_text("utf-8").splitlines()

    objects = [json.loads(line) for line in lines]

    assert all(line.strip() for line in lines)
    for obj in objects:
        assert {"type", "id", "attributes"} <= set(obj), obj
        assert obj["attributes"]["title"]
    assert len({o["id"] for o in objects}) == len(objects)
    counts = {t: sum(o["type"] == t for o in objects) for t in REQUIRED}
    assert counts == REQUIRED


def test_ndjson_is_the_packaged_file() -> None:
    assert NDJSON.resolve() == (REPO / "shared" / "tagsmith" / "search" / "dashboards.ndjson").resolve()
    assert [json.loads(line) for line in NDJSON.read_text("utf-8").splitlines()] == load_saved_objects()


@pytest.mark.parametrize("objects", [load_saved_objects(), for_tenant(load_saved_objects(), "acme")])
def test_ndjson_references_resolve_to_objects_in_the_file(objects: list[dict[str, Any]]) -> None:
    by_id = {(o["type"], o["id"]) for o in objects}

    for obj in objects:
        for ref in obj.get("references", []):
            assert (ref["type"], ref["id"]) in by_id, (obj["id"], ref)
        attributes = obj["attributes"]
        names = {ref["name"] for ref in obj.get("references", [])}
        source = json.loads(attributes.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", "{}"))
        if "indexRefName" in source:
            assert source["indexRefName"] in names
        if "savedSearchRefName" in attributes:
            assert attributes["savedSearchRefName"] in names
        for panel in json.loads(attributes.get("panelsJSON", "[]")):
            assert panel["panelRefName"] in names


def test_ndjson_dashboard_shows_every_search_and_visualisation() -> None:
    objects = load_saved_objects()
    [dashboard] = [o for o in objects if o["type"] == "dashboard"]

    shown = {ref["id"] for ref in dashboard["references"]}

    assert shown == {o["id"] for o in objects if o["type"] in ("search", "visualization")}


def test_ndjson_every_referenced_field_exists_in_the_mapping() -> None:
    fields = mapping_fields()

    used = {(o["id"], f) for o in load_saved_objects() for f in referenced_fields(o)}

    assert {f for _, f in used} >= {"tag_ids", "review_state", "max_confidence", "uploaded_at", "status"}
    assert sorted((oid, f) for oid, f in used if f not in fields) == []


def test_referenced_fields_sees_a_field_missing_from_the_mapping() -> None:
    # the check above must be able to fail: a visualisation on a field the mapping lacks
    vis = {
        "attributes": {
            "visState": json.dumps({"aggs": [{"params": {"field": "tag_labels"}}]}),
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "colour:red"}})},
        }
    }

    assert set(referenced_fields(vis)) - mapping_fields() == {"tag_labels", "colour"}


def test_for_tenant_targets_the_tenants_alias_exactly_and_renames_every_id() -> None:
    objects = for_tenant(load_saved_objects(), "acme")

    [pattern] = [o for o in objects if o["type"] == "index-pattern"]
    assert pattern["attributes"]["title"] == "tagsmith-assets-acme"  # not acme*: acme-shoes stays out
    assert all(o["id"].endswith("acme") for o in objects)
    assert len({o["id"] for o in objects}) == len(objects)


def test_to_ndjson_round_trips() -> None:
    objects = load_saved_objects()

    assert [json.loads(line) for line in to_ndjson(objects).decode().splitlines()] == objects


def test_multipart_body_wraps_the_file_between_boundaries() -> None:
    body, content_type = multipart_body(b'{"a":1}\n', boundary="XYZ")

    assert content_type == "multipart/form-data; boundary=XYZ"
    assert body.startswith(b"--XYZ\r\n") and body.endswith(b"\r\n--XYZ--\r\n")
