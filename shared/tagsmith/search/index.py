"""The search index boundary: the :class:`SearchIndex` protocol and its OpenSearch adapter.

Every method takes the tenant (or a record that carries it) and touches only that tenant's alias
``tagsmith-assets-<tenant>``; see :mod:`tagsmith.search` for why one index per tenant.

Errors (besides :class:`~tagsmith.errors.InvalidInputError` for bad arguments)::

    TransientError       the cluster was unreachable, timed out or overloaded (429/502/503/504)
    SearchIndexError     the cluster rejected a request: a bug or a mapping/cluster mismatch
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tagsmith.errors import InvalidKeyError, TagsmithError, TransientError
from tagsmith.keys import validate_tenant
from tagsmith.records import AssetRecord, AssetStatus
from tagsmith.search.documents import doc_id, doc_id_for_key, document_from_record
from tagsmith.search.mapping import MAPPING_VERSION, alias_name, is_tenant_index, load_mapping, new_index_name
from tagsmith.search.query import SearchPage, SearchQuery, build_search_body, page_from_response
from tagsmith.taxonomy import Taxonomy

# opensearch-py (and its aiohttp) is imported where it is used: 0.3 s that the in-memory index, the
# CLI's light commands and every handler that never reaches the cluster need not pay.
if TYPE_CHECKING:
    import opensearchpy

log = logging.getLogger(__name__)

RecordWithTaxonomies = tuple[AssetRecord, Mapping[str, Taxonomy]]
DEFAULT_CHUNK_SIZE = 500
_TRANSIENT_STATUS = frozenset({429, 502, 503, 504})


class SearchIndexError(TagsmithError):
    """The search cluster refused a request in a way a retry will not fix."""

    code = "search_index"


@dataclass(frozen=True, slots=True)
class BulkItemError:
    """One document a bulk load could not index; the rest of the batch went through."""

    asset_key: str
    status: int
    error_type: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset_key": self.asset_key,
            "status": self.status,
            "type": self.error_type,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a :meth:`SearchIndex.rebuild` did: the new index, how many documents, what was dropped."""

    tenant: str
    index: str
    indexed: int
    errors: list[BulkItemError] = field(default_factory=list)
    deleted_indices: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "index": self.index,
            "indexed": self.indexed,
            "errors": [e.to_dict() for e in self.errors],
            "deleted_indices": list(self.deleted_indices),
            "seconds": round(self.seconds, 3),
        }


@runtime_checkable
class SearchIndex(Protocol):
    """Where asset documents are indexed and searched, one tenant at a time.

    Writes are idempotent and ordered by record revision: re-sending a record, or a stale revision
    arriving after a newer one, leaves the newest document in place.
    """

    def ensure_tenant(self, tenant: str) -> None:
        """Create the tenant's index and alias if they do not exist yet."""
        ...

    def upsert(self, record: AssetRecord, taxonomies: Mapping[str, Taxonomy]) -> None:
        """Index (or replace) the document of ``record``; a tombstone (status ``deleted``) removes
        it instead, as :meth:`delete` with the tombstone's revision. Bulk loads skip tombstones."""
        ...

    def delete(self, tenant: str, asset_key: str, *, revision: int | None = None) -> None:
        """Remove an asset's document; deleting a missing one is not an error. With ``revision``
        (a tombstone's) a document of a later revision is kept and, as far as the backend keeps
        deleted versions (OpenSearch: ``index.gc_deletes``, 60 s), an older write is refused."""
        ...

    def bulk_upsert(
        self, records_with_taxonomies: Iterable[RecordWithTaxonomies], tenant: str
    ) -> list[BulkItemError]:
        """Index many records of ``tenant``; returns the ones that failed."""
        ...

    def rebuild(
        self, tenant: str, records: Iterable[AssetRecord], taxonomies: Mapping[str, Taxonomy]
    ) -> RebuildReport:
        """Load ``records`` into a fresh index and swap the alias to it atomically.

        Readers see the old index until the swap and the new one after it, never neither; the old
        indices are then deleted. If loading fails the new index is dropped and the alias left as
        it was. Writes that reach the alias *during* a rebuild land in the old index and are lost
        with it: rebuild when ingestion is paused, or re-upsert the records updated since the
        rebuild started (``updated_at``).

        >>> # report = index.rebuild("acme", store.iter_records("acme"), taxonomies)
        """
        ...

    def search(self, tenant: str, query: SearchQuery) -> SearchPage:
        """One page of ``tenant``'s assets matching ``query`` (empty for an unknown tenant)."""
        ...

    def count(self, tenant: str) -> int:
        """How many documents ``tenant`` has (0 for an unknown tenant)."""
        ...

    def mapping_version(self, tenant: str) -> int | None:
        """The mapping version of ``tenant``'s live index (None for an unknown tenant)."""
        ...

    def revisions(self, tenant: str) -> dict[str, int] | None:
        """asset key -> record revision of every document of ``tenant``; None when the tenant has
        no index at all (what :mod:`tagsmith.search.healing` compares with the records)."""
        ...


def bulk_document(
    record: AssetRecord, taxonomies: Mapping[str, Taxonomy], tenant: str
) -> dict[str, Any] | BulkItemError:
    """The search document of one record of a bulk load into ``tenant``'s index, or why it is
    refused (another tenant's record, a record that cannot be shaped). Shared by every backend."""
    if record.tenant != tenant:
        return BulkItemError(record.key, 400, "wrong_tenant", f"record belongs to tenant {record.tenant!r}")
    try:
        return document_from_record(record, taxonomies)
    except TagsmithError as e:
        return BulkItemError(record.key, 400, type(e).__name__, str(e))


def searchable(record: AssetRecord) -> bool:
    """False for a tombstone (the object was deleted): it has no search document."""
    return record.status is not AssetStatus.DELETED


def check_asset_key(tenant: str, asset_key: str) -> str:
    """``asset_key`` if it lies inside ``tenant``; a key of another tenant is refused."""
    if not asset_key.startswith(validate_tenant(tenant) + "/"):
        raise InvalidKeyError(f"asset key {asset_key!r} does not belong to tenant {tenant!r}")
    return asset_key


class OpenSearchIndex:
    """:class:`SearchIndex` on OpenSearch (or osmem), one index per tenant behind an alias.

    >>> from opensearchpy import OpenSearch
    >>> index = OpenSearchIndex(client=OpenSearch(hosts=["http://127.0.0.1:9200"], timeout=30))
    >>> # index.ensure_tenant("acme"); index.upsert(record, taxonomies)
    >>> # page = index.search("acme", SearchQuery(text="écharpe", languages=["fr"]))
    """

    def __init__(self, *, client: opensearchpy.OpenSearch, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self._client = client
        self._chunk_size = chunk_size

    # -- tenant lifecycle -------------------------------------------------------------------

    def ensure_tenant(self, tenant: str) -> None:
        alias = alias_name(tenant)
        with _translated(f"checking the search alias of tenant {tenant!r}"):
            if self._client.indices.exists_alias(name=alias):
                return
            index = new_index_name(tenant)
            self._client.indices.create(index=index, body=load_mapping(MAPPING_VERSION))
        try:
            with _translated(f"creating the search alias of tenant {tenant!r}"):
                self._client.indices.update_aliases(
                    body={"actions": [{"add": {"index": index, "alias": alias, "is_write_index": True}}]}
                )
        except SearchIndexError:
            # Another writer may have won the race: keep theirs, drop ours.
            self._delete_indices([index])
            with _translated(f"checking the search alias of tenant {tenant!r}"):
                if not self._client.indices.exists_alias(name=alias):
                    raise
            return
        log.info("created search index %s for tenant %s", index, tenant, extra={"tenant": tenant})

    # -- writes -----------------------------------------------------------------------------

    def upsert(self, record: AssetRecord, taxonomies: Mapping[str, Taxonomy]) -> None:
        if not searchable(record):
            self.delete(record.tenant, record.key, revision=record.revision)
            return
        doc = document_from_record(record, taxonomies)
        for attempt in range(2):
            try:
                with _translated(f"indexing {record.key}", missing_ok=attempt == 0):
                    self._client.index(
                        index=alias_name(record.tenant),
                        id=doc_id(record),
                        body=doc,
                        params=_write_params(record),
                    )
                return
            except _AliasMissing:
                # First write of a tenant: create its index rather than let OpenSearch auto-create
                # an unmapped index under the alias's name (require_alias forbids that).
                self.ensure_tenant(record.tenant)
            except _StaleRevision:
                log.info("kept newer document of %s (revision %s is stale)", record.key, record.revision)
                return

    def delete(self, tenant: str, asset_key: str, *, revision: int | None = None) -> None:
        check_asset_key(tenant, asset_key)
        # With the tombstone's revision the delete is versioned like every write: a document of a
        # later revision (the asset came back) is kept, and an older write arriving late is refused.
        params = {"version": revision, "version_type": "external_gte"} if revision is not None else {}
        try:
            with _translated(f"deleting {asset_key}", missing_ok=True, missing_doc_ok=True):
                self._client.delete(index=alias_name(tenant), id=doc_id_for_key(asset_key), params=params)
        except _AliasMissing:
            return
        except _StaleRevision:
            log.info("kept newer document of %s (the deletion is revision %s)", asset_key, revision)

    def bulk_upsert(
        self, records_with_taxonomies: Iterable[RecordWithTaxonomies], tenant: str
    ) -> list[BulkItemError]:
        alias = alias_name(tenant)
        self.ensure_tenant(tenant)
        return self._bulk_load(alias, records_with_taxonomies, tenant)

    def rebuild(
        self, tenant: str, records: Iterable[AssetRecord], taxonomies: Mapping[str, Taxonomy]
    ) -> RebuildReport:
        started = time.perf_counter()
        alias = alias_name(tenant)
        index = new_index_name(tenant)
        with _translated(f"creating index {index}"):
            self._client.indices.create(index=index, body=load_mapping(MAPPING_VERSION))
        counted = _Counter()
        try:
            live = (r for r in records if searchable(r))  # tombstones have no document
            errors = self._bulk_load(index, ((r, taxonomies) for r in counted.wrap(live)), tenant)
            with _translated(f"reading the search aliases of tenant {tenant!r}"):
                old = self._tenant_indices(tenant)
            # One update_aliases call: readers see either the old index or the new one, never none.
            actions: list[dict[str, Any]] = [
                {"remove": {"index": name, "alias": alias}} for name, has_alias in old.items() if has_alias
            ]
            actions.append({"add": {"index": index, "alias": alias, "is_write_index": True}})
            with _translated(f"swapping the search alias of tenant {tenant!r} to {index}"):
                self._client.indices.update_aliases(body={"actions": actions})
        except BaseException:
            self._delete_indices([index])  # leave the live alias exactly as it was
            raise
        stale = [name for name in old if name != index]
        self._delete_indices(stale)
        report = RebuildReport(
            tenant=tenant,
            index=index,
            indexed=counted.n - len(errors),
            errors=errors,
            deleted_indices=stale,
            seconds=time.perf_counter() - started,
        )
        log.info(
            "rebuilt search index of tenant %s: %d documents, %d errors, %.1f s",
            tenant,
            report.indexed,
            len(errors),
            report.seconds,
            extra={"tenant": tenant},
        )
        return report

    # -- reads ------------------------------------------------------------------------------

    def search(self, tenant: str, query: SearchQuery) -> SearchPage:
        body = build_search_body(validate_tenant(tenant), query)
        try:
            with _translated(f"searching tenant {tenant!r}", missing_ok=True):
                response = self._client.search(index=alias_name(tenant), body=body)
        except _AliasMissing:
            return SearchPage(total=0, hits=[], next_search_after=None, facets={})
        return page_from_response(response, query)

    def count(self, tenant: str) -> int:
        try:
            with _translated(f"counting tenant {tenant!r}", missing_ok=True):
                return int(self._client.count(index=alias_name(tenant))["count"])
        except _AliasMissing:
            return 0

    def mapping_version(self, tenant: str) -> int | None:
        try:
            with _translated(f"reading the search mapping of tenant {tenant!r}", missing_ok=True):
                mappings = self._client.indices.get_mapping(index=alias_name(tenant))
        except _AliasMissing:
            return None
        versions = [
            (info.get("mappings") or {}).get("_meta", {}).get("tagsmith_mapping_version")
            for info in mappings.values()
        ]
        # one index behind the alias; an index made without our mapping has no version at all (0)
        return min(int(v) if v is not None else 0 for v in versions) if versions else None

    def revisions(self, tenant: str) -> dict[str, int] | None:
        from opensearchpy import helpers

        alias = alias_name(validate_tenant(tenant))
        found: dict[str, int] = {}
        try:
            with _translated(f"listing the documents of tenant {tenant!r}", missing_ok=True):
                # ids and versions only: a scroll of a few bytes per document
                for hit in helpers.scan(
                    self._client,
                    index=alias,
                    query={"query": {"match_all": {}}, "_source": ["asset_key"]},
                    version=True,
                    size=5000,
                ):
                    key = (hit.get("_source") or {}).get("asset_key")
                    if key is not None:
                        found[str(key)] = int(hit.get("_version", 0))
        except _AliasMissing:
            return None
        return found

    # -- helpers ----------------------------------------------------------------------------

    def _bulk_load(
        self, target: str, items: Iterable[RecordWithTaxonomies], tenant: str
    ) -> list[BulkItemError]:
        from opensearchpy import helpers

        errors: list[BulkItemError] = []
        keys: dict[str, str] = {}

        def actions() -> Iterator[dict[str, Any]]:
            for record, taxonomies in items:
                if not searchable(record):
                    continue  # a tombstone: nothing to index (its old document is deleted on delete)
                doc = bulk_document(record, taxonomies, tenant)
                if isinstance(doc, BulkItemError):
                    errors.append(doc)
                    continue
                keys[doc_id(record)] = record.key
                yield {"_index": target, "_id": doc_id(record), "_source": doc, **_bulk_version(record)}

        with _translated(f"bulk indexing into {target}"):
            for ok, item in helpers.streaming_bulk(
                self._client,
                actions(),
                chunk_size=self._chunk_size,
                raise_on_error=False,
                raise_on_exception=True,
                require_alias=target == alias_name(tenant),
            ):
                if ok:
                    continue
                result = next(iter(item.values()))
                if result.get("status") == 409:  # a newer revision is already indexed
                    continue
                error = result.get("error") or {}
                errors.append(
                    BulkItemError(
                        asset_key=keys.get(str(result.get("_id")), str(result.get("_id"))),
                        status=int(result.get("status", 0)),
                        error_type=str(error.get("type", "error")) if isinstance(error, dict) else "error",
                        reason=str(error.get("reason", error)) if isinstance(error, dict) else str(error),
                    )
                )
        return errors

    def _tenant_indices(self, tenant: str) -> dict[str, bool]:
        """The tenant's concrete indices -> whether each holds the alias."""
        import opensearchpy

        try:
            listing = self._client.indices.get_alias(index=f"{alias_name(tenant)}-v*")
        except opensearchpy.NotFoundError:
            return {}
        alias = alias_name(tenant)
        return {
            name: alias in (info.get("aliases") or {})
            for name, info in listing.items()
            if is_tenant_index(tenant, name)  # the wildcard may also match a tenant named acme-v2-...
        }

    def _delete_indices(self, names: list[str]) -> None:
        for name in names:
            try:
                with _translated(f"deleting index {name}"):
                    self._client.indices.delete(index=name)
            except TagsmithError:
                # An orphan index wastes space but harms no reader; the next rebuild removes it.
                log.warning("could not delete search index %s", name, exc_info=True)


class _AliasMissing(Exception):
    """Internal: the tenant has no alias yet."""


class _StaleRevision(Exception):
    """Internal: a newer revision of the document is already indexed."""


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def wrap(self, items: Iterable[AssetRecord]) -> Iterator[AssetRecord]:
        for item in items:
            self.n += 1
            yield item


def _write_params(record: AssetRecord) -> dict[str, Any]:
    # external_gte: equal revisions overwrite (idempotent redelivery), older ones are refused.
    return {"version": record.revision, "version_type": "external_gte", "require_alias": "true"}


def _bulk_version(record: AssetRecord) -> dict[str, Any]:
    return {"version": record.revision, "version_type": "external_gte"}


@contextmanager
def _translated(action: str, *, missing_ok: bool = False, missing_doc_ok: bool = False) -> Iterator[None]:
    """Turn opensearch-py errors into Tagsmith errors that say what failed and what to do."""
    import opensearchpy
    from opensearchpy import helpers

    try:
        yield
    except opensearchpy.ConnectionTimeout as e:
        raise TransientError(f"search cluster timed out while {action}: retry later") from e
    except opensearchpy.ConnectionError as e:
        raise TransientError(f"search cluster unreachable while {action}: {e.info}; retry later") from e
    except opensearchpy.NotFoundError as e:
        if missing_ok and _is_missing_index(e):
            raise _AliasMissing() from e
        if missing_doc_ok and not _is_missing_index(e):
            return  # a missing document: deletes are idempotent
        raise SearchIndexError(f"search index not found while {action}: {_reason(e)}") from e
    except opensearchpy.ConflictError as e:
        raise _StaleRevision() from e
    except opensearchpy.TransportError as e:
        if e.status_code in _TRANSIENT_STATUS:
            raise TransientError(f"search cluster busy ({e.status_code}) while {action}: retry later") from e
        raise SearchIndexError(f"search cluster refused {action}: {e.status_code} {_reason(e)}") from e
    except helpers.BulkIndexError as e:  # only raised for transport-level chunk failures
        raise SearchIndexError(f"bulk request failed while {action}: {e}") from e


def _is_missing_index(e: opensearchpy.NotFoundError) -> bool:
    return e.error == "index_not_found_exception"


def _reason(e: opensearchpy.TransportError) -> str:
    info = e.info
    if isinstance(info, dict):
        err = info.get("error")
        if isinstance(err, dict):
            return f"{err.get('type')}: {err.get('reason')}"
        if err:
            return str(err)
    return str(e.error)
