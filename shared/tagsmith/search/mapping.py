"""The versioned index mapping and the index/alias names derived from it.

``asset-index.v<N>.json`` beside this module is the one source of truth for the asset index's
settings and mappings (``infra/opensearch/`` links to it). Changing analysis or field types means a
new file with a higher :data:`MAPPING_VERSION` and a :meth:`~tagsmith.search.OpenSearchIndex.rebuild`
of every tenant; adding an optional field to the same version is possible but still needs a rebuild to
fill it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from tagsmith.keys import validate_tenant
from tagsmith.search.analysis import COMPOUNDING, PYTHON_LANGUAGES

MAPPING_VERSION = 3
# The label languages that get their own analysed field; any other language still reaches
# ``labels.folded``. Order matters only for readability of documents.
LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "es", "it", "nl", "sv", "ja", "zh")
# Languages that write compounds as one word ("Regenjacke"): their words are split against the
# tenant's vocabulary in Python (tagsmith.search.analysis), so "Jacke" and "Regen" find it.
COMPOUND_LANGUAGES: tuple[str, ...] = tuple(sorted(COMPOUNDING))
# Languages analysed in Python into ``terms.<lang>.<level>`` (whitespace-indexed tokens); the
# others are searched on ``labels.<lang>`` with OpenSearch's own analyzers.
TERM_LANGUAGES: tuple[str, ...] = PYTHON_LANGUAGES
ALIAS_PREFIX = "tagsmith-assets-"
_TIMESTAMP = re.compile(r"^\d{8}t\d{12}z$")


@cache
def _mapping_text(version: int) -> str:
    return resources.files("tagsmith.search").joinpath(f"asset-index.v{version}.json").read_text("utf-8")


def load_mapping(version: int = MAPPING_VERSION) -> dict[str, Any]:
    """The index body (``settings`` + ``mappings``) of a mapping version, as a fresh dict.

    >>> load_mapping()["mappings"]["properties"]["tag_ids"]
    {'type': 'keyword'}
    """
    return copy.deepcopy(json.loads(_mapping_text(version)))


@dataclass(frozen=True, slots=True)
class AnalysedField:
    """A ``text`` field of the mapping: its dotted path and the nested path that holds it, if any."""

    path: str
    analyzer: str
    nested_path: str | None = None


def analysed_fields(mapping: Mapping[str, Any] | None = None) -> list[AnalysedField]:
    """Every ``text`` field (including multi-fields such as ``path.text``) of a mapping.

    Tests walk this list so that a field added to the mapping is covered without editing them.

    >>> [f.path for f in analysed_fields()][:2]
    ['path.text', 'labels.en']
    """
    mapping = mapping if mapping is not None else load_mapping()
    return list(_walk(mapping["mappings"]["properties"], prefix="", nested=None))


def _walk(properties: Mapping[str, Any], *, prefix: str, nested: str | None) -> Iterator[AnalysedField]:
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if spec.get("type") == "text":
            yield AnalysedField(path, spec.get("analyzer", "standard"), nested)
        for sub, sub_spec in (spec.get("fields") or {}).items():
            if sub_spec.get("type") == "text":
                yield AnalysedField(f"{path}.{sub}", sub_spec.get("analyzer", "standard"), nested)
        if "properties" in spec:
            inner_nested = path if spec.get("type") == "nested" else nested
            yield from _walk(spec["properties"], prefix=f"{path}.", nested=inner_nested)


def alias_name(tenant: str) -> str:
    """The alias every read and write of ``tenant`` goes through.

    >>> alias_name("acme")
    'tagsmith-assets-acme'
    """
    return ALIAS_PREFIX + validate_tenant(tenant)


def new_index_name(tenant: str, *, version: int = MAPPING_VERSION, now: datetime | None = None) -> str:
    """A fresh concrete index name for ``tenant`` (microsecond timestamp, lower case as required).

    >>> new_index_name("acme", version=2, now=datetime(2026, 11, 22, 6, 10, tzinfo=UTC))
    'tagsmith-assets-acme-v2-20261122t061000000000z'
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dt%H%M%S%fz")
    return f"{alias_name(tenant)}-v{version}-{stamp}"


def is_tenant_index(tenant: str, index: str) -> bool:
    """Whether ``index`` is one of ``tenant``'s concrete indices.

    Exact parsing, not a wildcard: tenant ``acme`` must never claim ``acme-shoes``'s indices.

    >>> is_tenant_index("acme", "tagsmith-assets-acme-v1-20261122t061000000000z")
    True
    >>> is_tenant_index("acme", "tagsmith-assets-acme-shoes-v1-20261122t061000000000z")
    False
    """
    head = alias_name(tenant) + "-v"
    if not index.startswith(head):
        return False
    version, sep, stamp = index[len(head) :].partition("-")
    return bool(sep) and version.isdigit() and bool(_TIMESTAMP.match(stamp))
