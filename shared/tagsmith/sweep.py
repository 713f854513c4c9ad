"""The sweep: every projection of every record, checked and repaired on a schedule.

A redelivered event repairs its own record's projections (:meth:`Projections.ensure`), but some
faults send no event at all: a search server that restarts empty, a crash whose message was
deleted before the projections were written, a review item deleted by hand. The sweep finds them
from the records, per tenant:

1. **list** the tenant's records (keys and last-modified times: one LIST per 1,000), its review
   queue entries and the index's documents (:meth:`SearchIndex.revisions`);
2. **read** the records written since the last sweep (minus ``slack``, plus every record on the
   first sweep or a ``full`` one), and those the index lacks;
3. **repair** each read record's projections (:meth:`Projections.ensure`: review items, entries,
   previews, stale thumbnails), publish the outbound projections of revisions never published
   (:meth:`tagsmith.outbound.Outbound.after_write`: change event, object tags, sidecar), and repair
   the index as a whole (:mod:`tagsmith.search.healing`: rebuilt when missing or empty, caught up
   when behind);
4. **remember** where it got to in ``tenants/<t>/sweep.json``: the window's end, and the deleted
   assets' records (tombstones have no document, so without this every sweep would read them all).

Records written in the last ``settle`` seconds are left for the next sweep: they are probably being
projected right now, and repairing under a running ingestion would race it. Everything the sweep
writes is idempotent, so two sweeps (or a sweep and a redelivery) at once do no harm.

On AWS the ``sweep`` function runs it on a schedule (``infra/aws/template.yaml``); the local stack
runs it in a thread and, in full, at every start (the restart reconcile). Each tenant's outcome is
one log line (a warning naming what was repaired, INFO when nothing was) and metrics.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tagsmith.errors import NotFoundError, TagsmithError
from tagsmith.keys import AssetKey, asset_from_record_key, records_prefix, tenant_prefix, validate_tenant
from tagsmith.projections import ProjectionRepair, Projections
from tagsmith.records import AssetRecord, AssetStatus
from tagsmith.review import ReviewStore
from tagsmith.search.healing import IndexRepair, diagnose, heal
from tagsmith.storage.base import ObjectStore
from tagsmith.storage.records import RecordStore
from tagsmith.taxonomy import Taxonomy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepOptions:
    settle: float = 60.0  # seconds: records younger than this are left for the next sweep
    slack: float = 300.0  # seconds the window reaches back before the last sweep's end (clock skew)


@dataclass(frozen=True)
class TenantSweep:
    """What one tenant's sweep found and did."""

    tenant: str
    records: int  # record keys listed
    read: int  # records read and checked
    projections: ProjectionRepair = field(default_factory=ProjectionRepair)
    index: IndexRepair | None = None
    published: int = 0  # revisions whose change was never published, published now
    stale_entries: int = 0  # review-queue entries superseded by another of the same item, deleted
    seconds: float = 0.0

    @property
    def repaired(self) -> int:
        index = (self.index.indexed + self.index.removed) if self.index else 0
        return self.projections.total + index + self.published + self.stale_entries

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "records": self.records,
            "read": self.read,
            "projections": self.projections.to_dict(),
            "index": self.index.to_dict() if self.index else None,
            "published": self.published,
            "stale_entries": self.stale_entries,
            "seconds": round(self.seconds, 3),
        }


def sweep_state_key(tenant: str) -> str:
    return tenant_prefix(tenant) + "sweep.json"


def tenant_ids(store: ObjectStore, bucket: str) -> list[str]:
    """Every tenant with data, one LIST request per tenant (each listing jumps past the tenant
    found, so a bucket of millions of keys is not read through)."""
    found: list[str] = []
    after = ""
    while True:
        first = next(iter(store.list(bucket, "tenants/", start_after=after)), None)
        if first is None:
            return sorted(found)
        tenant = first.key.split("/")[1]
        try:
            found.append(validate_tenant(tenant))
        except TagsmithError:
            log.warning("data bucket holds a folder that is not a tenant: tenants/%s/", tenant)
        after = f"tenants/{tenant}/\U0010ffff"


class SweepService:
    """Checks and repairs every projection of a tenant's records (see the module docstring)."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        data_bucket: str,
        records: RecordStore,
        reviews: ReviewStore,
        projections: Projections,
        index: Any,  # tagsmith.search.SearchIndex
        taxonomies: Callable[[str], Mapping[str, Taxonomy]],
        outbound: Any = None,  # tagsmith.outbound.Outbound (None: no change events to repair)
        options: SweepOptions = SweepOptions(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.data_bucket = data_bucket
        self.records = records
        self.reviews = reviews
        self.projections = projections
        self.index = index
        self.taxonomies = taxonomies
        self.outbound = outbound
        self.options = options
        self.clock = clock

    @classmethod
    def from_components(cls, c: Any, options: SweepOptions = SweepOptions()) -> SweepService:
        """From :class:`tagsmith.wiring.Components` (never loads the encoder)."""
        return cls(
            store=c.store,
            data_bucket=c.settings.data_bucket,
            records=c.records,
            reviews=c.reviews,
            projections=c.projections,
            index=c.index,
            taxonomies=c.projections.taxonomies,
            outbound=c.outbound,
            options=options,
        )

    def sweep(
        self,
        tenants: Iterable[str] | None = None,
        *,
        full: bool = False,
        quiet: bool = False,
        time_left: Callable[[], float] | None = None,
    ) -> list[TenantSweep]:
        """Sweep ``tenants`` (default: every tenant, least recently swept first); with
        ``time_left`` (seconds), stop before starting a tenant when under a minute is left."""
        todo = (
            list(tenants)
            if tenants is not None
            else self._by_last_sweep(tenant_ids(self.store, self.data_bucket))
        )
        done: list[TenantSweep] = []
        for tenant in todo:
            if time_left is not None and time_left() < 60:
                log.info(
                    "sweep stopped for lack of time; %d tenants left for the next run", len(todo) - len(done)
                )
                break
            done.append(self.sweep_tenant(tenant, full=full, quiet=quiet))
        return done

    def sweep_tenant(self, tenant: str, *, full: bool = False, quiet: bool = False) -> TenantSweep:
        """One tenant (see the module docstring). ``quiet``: nothing else writes meanwhile (the
        local stack's start), so a rebuild can load the records this sweep read."""
        started = time.perf_counter()
        now = self.clock()
        until = now - timedelta(seconds=self.options.settle)
        state = self._state(tenant)
        last_end = None if full else _instant(state.get("until"))
        since = last_end - timedelta(seconds=self.options.slack) if last_end is not None else None
        # the documents before the records: a document listed now has its record written already
        # (records come first), so the listing below has it; the other way round, a record and
        # document written between the two listings would look like an orphan document
        documents = self.index.revisions(tenant)
        prefix = records_prefix(tenant)
        listing: dict[str, datetime | None] = {}
        etags: dict[str, str] = {}
        for info in self.store.list(self.data_bucket, prefix):
            if not info.key.endswith(".json"):
                continue
            key = asset_from_record_key(info.key).key
            listing[key] = _instant(info.last_modified)
            etags[key] = info.etag
        settled = {k for k, at in listing.items() if at is None or at < until}
        known_dead: dict[str, str] = dict(state.get("tombstones") or {})
        # A record the last sweeps read and repaired at this very revision is not read again while
        # the slack keeps it in the window: under a bulk import the window holds every record of
        # the last five minutes, and re-reading them all every run cost the local stack more CPU
        # than ingesting them (docs/benchmarks.md, "Local stack on an idle machine").
        checked: dict[str, str] = {} if full else dict(state.get("checked") or {})
        recent = {k for k in settled if _at_or_after(listing[k], since) and checked.get(k) != etags[k]}
        lacking = {
            k
            for k in settled
            if (documents is None or k not in documents) and known_dead.get(k) != _stamp(listing[k])
        }
        read: dict[str, AssetRecord] = {}
        for key in sorted(recent | lacking):
            got = self.records.get(AssetKey(tenant, key.split("/", 1)[1]))
            if got is not None:
                read[key] = got[0]
        entry_times = self.reviews.entry_times(tenant)
        entries = set(entry_times)
        # superseded entries once settled (a put may be between its steps); all of them when
        # nothing else writes (the restart reconcile)
        stale = self.reviews.drop_superseded_entries(
            tenant, [n for n, at in entry_times.items() if quiet or (t := _instant(at)) is None or t < until]
        )
        repaired = ProjectionRepair()
        for key in sorted(recent):
            if key in read:
                repaired += self.projections.ensure(read[key], entries=entries, index=False)
        published = self._publish([read[k] for k in sorted(recent) if k in read])
        diagnosis = diagnose(
            tenant, documents, {k: r for k, r in read.items() if k in settled}, listed=set(listing)
        )
        index_repair = heal(
            index=self.index,
            diagnosis=diagnosis,
            records=read,
            source=self.records,
            taxonomies=self.taxonomies(tenant),
            complete=quiet and settled <= set(read),
        )
        dead = {k: s for k, s in known_dead.items() if k in listing and s == _stamp(listing[k])}
        dead |= {k: _stamp(listing[k]) for k, r in read.items() if r.status is AssetStatus.DELETED}
        # what the next run's window can still hold: this run's and earlier runs' checks
        horizon = until - timedelta(seconds=self.options.slack)
        checked = {k: e for k, e in checked.items() if etags.get(k) == e} | {
            k: etags[k] for k in recent if k in read
        }
        checked = {k: e for k, e in checked.items() if _at_or_after(listing[k], horizon)}
        report = TenantSweep(
            tenant,
            len(listing),
            len(read),
            repaired,
            index_repair,
            published,
            len(stale),
            time.perf_counter() - started,
        )
        self._save(
            tenant,
            {
                "until": until.isoformat(),
                "at": now.isoformat(),
                "tombstones": dead,
                "checked": checked,
                "last": report.to_dict(),
            },
        )
        level = logging.WARNING if report.repaired else logging.INFO
        log.log(
            level,
            "sweep of tenant %s: %d records, %d read, %d projections repaired, %d changes published, "
            "index %s (%s)",
            tenant,
            report.records,
            report.read,
            repaired.total,
            published,
            index_repair.state,
            index_repair.action,
            extra={"tenant": tenant, "sweep": report.to_dict()},
        )
        return report

    def _publish(self, records: list[AssetRecord]) -> int:
        """The outbound projections of the revisions a crash left unpublished; returns how many."""
        if self.outbound is None or not records:
            return 0
        from tagsmith.outbound.changes import needs_event

        todo = [r for r in records if needs_event(r)]
        if not todo:
            return 0
        errors = self.outbound.after_write(todo)  # never raises; what failed waits for the next sweep
        return len(todo) - len(errors)

    # --- state -----------------------------------------------------------------------------------
    def _state(self, tenant: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self.store.get(self.data_bucket, sweep_state_key(tenant)).body))
        except (NotFoundError, ValueError):
            return {}

    def _save(self, tenant: str, state: dict[str, Any]) -> None:
        body = json.dumps(state, ensure_ascii=False).encode()
        self.store.put(self.data_bucket, sweep_state_key(tenant), body, content_type="application/json")

    def _by_last_sweep(self, tenants: list[str]) -> list[str]:
        return sorted(tenants, key=lambda t: str(self._state(t).get("at", "")))


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _at_or_after(at: datetime | None, since: datetime | None) -> bool:
    return since is None or at is None or at >= since


def _stamp(at: datetime | None) -> str:
    return at.isoformat() if at is not None else ""
