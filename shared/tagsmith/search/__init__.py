"""Asset search: a per-tenant OpenSearch projection of asset records.

The asset record in S3 is the source of truth; the index holds one document per asset, made by the
pure :func:`document_from_record`, and can always be rebuilt from records.

Tenant isolation: one index per tenant behind an alias
---------------------------------------------------------
Each tenant has its own concrete index ``tagsmith-assets-<tenant>-v<mapping>-<timestamp>`` and
reaches it only through the alias ``tagsmith-assets-<tenant>``. Every read and write takes the
tenant, validates it with :func:`tagsmith.keys.validate_tenant` and addresses that alias alone;
searches also filter on the ``tenant`` field as a second wall. A rebuild is "create a new index,
bulk load, swap the alias in one ``update_aliases`` call, drop the old index", so readers never see
a missing or half-filled index and a mapping change needs no downtime.

Why not one shared index with a filtered alias per tenant? Per-tenant indices make isolation
structural (a forgotten filter cannot leak another tenant's assets), let one tenant be rebuilt,
re-mapped or deleted without touching the others, and keep term statistics per tenant. The price
is shard count: every index costs at least one primary shard (plus replicas) of cluster memory
and file handles, so a cluster with many thousands of small tenants would hit shard limits. If
tenant counts grow that way, move small tenants to a shared index with filtered aliases
(``tagsmith-assets-<tenant>`` would then be a filtered alias with ``routing`` on the tenant) and
keep dedicated indices for large ones; the alias naming keeps callers unaware of the difference.

Public API::

    SearchIndex            the protocol (ensure_tenant, upsert, delete, bulk_upsert, rebuild,
                           search, count, mapping_version)
    OpenSearchIndex        adapter over opensearch-py: OpenSearchIndex(client=OpenSearch(...))
    InMemorySearchIndex    fake with the same contract, for tests and offline tools
    SearchQuery / SearchPage / SearchHit          request and result (``to_dict()`` = JSON API)
    BulkItemError / RebuildReport                 write outcomes
    reindex_tenant / reindex_tenants / ReindexReport / RecordSource
                           rebuild from records with a catch-up pass; mapping migrations
    search_with_waiting / WaitingForReview / tags_named_by
                           how many more assets the tags a text names hold while they wait
                           for review (not searchable by default), and including them
    document_from_record / doc_id                 pure document shaping
    load_mapping / analysed_fields / alias_name   the versioned mapping and names
    SearchIndexError       the cluster refused a request (TransientError for retryable failures)

Example::

    >>> index = InMemorySearchIndex()
    >>> index.search("acme", SearchQuery(text="scarf")).to_dict()
    {'total': 0, 'hits': [], 'next_search_after': None, 'next_cursor': None, 'facets': {}}
"""

from tagsmith.search.documents import doc_id, doc_id_for_key, document_from_record, label_fields
from tagsmith.search.index import (
    BulkItemError,
    OpenSearchIndex,
    RebuildReport,
    SearchIndex,
    SearchIndexError,
)
from tagsmith.search.mapping import (
    LANGUAGES,
    MAPPING_VERSION,
    AnalysedField,
    alias_name,
    analysed_fields,
    load_mapping,
)
from tagsmith.search.memory import InMemorySearchIndex
from tagsmith.search.query import SearchHit, SearchPage, SearchQuery, build_search_body
from tagsmith.search.reindex import RecordSource, ReindexReport, reindex_tenant, reindex_tenants
from tagsmith.search.waiting import WaitingForReview, search_with_waiting, tags_named_by

__all__ = [
    "LANGUAGES",
    "MAPPING_VERSION",
    "AnalysedField",
    "BulkItemError",
    "InMemorySearchIndex",
    "OpenSearchIndex",
    "RebuildReport",
    "RecordSource",
    "ReindexReport",
    "SearchHit",
    "SearchIndex",
    "SearchIndexError",
    "SearchPage",
    "SearchQuery",
    "WaitingForReview",
    "alias_name",
    "analysed_fields",
    "build_search_body",
    "doc_id",
    "doc_id_for_key",
    "document_from_record",
    "label_fields",
    "load_mapping",
    "reindex_tenant",
    "reindex_tenants",
    "search_with_waiting",
    "tags_named_by",
]
