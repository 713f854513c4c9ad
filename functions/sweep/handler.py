"""Sweep: every tenant's projections checked against its records and repaired, on a schedule.

An EventBridge schedule invokes it (``infra/aws/template.yaml``); the local stack invokes it from a
thread. Review items and their queue entries, previews, stale thumbnails and the search index are
compared with the records and repaired (:mod:`tagsmith.sweep`); each tenant gets a log line and the
run a metrics line (``Tagsmith`` namespace: ``ProjectionsRepaired``, ``IndexDocumentsRepaired``,
``IndexRebuilds``, ``ChangesPublished``, ``TenantsSwept``). ``{"full": true}`` checks every record, not only those
written since the last sweep; ``{"tenants": [...]}`` sweeps only those.
"""

from __future__ import annotations

from typing import Any

from tagsmith.lazy import Lazy, lazy_components
from tagsmith.logs import emit_metrics, function_logger, logged
from tagsmith.sweep import SweepOptions, SweepService

logger = function_logger("tagsmith-sweep")
components = lazy_components()  # built on the first invocation, reused while warm
sweeper = Lazy(
    lambda: SweepService.from_components(
        components(), options=SweepOptions(settle=components().settings.sweep_settle_seconds)
    )
)


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    reports = sweeper().sweep(
        event.get("tenants"),
        full=bool(event.get("full")),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    index = [r.index for r in reports if r.index is not None]
    emit_metrics(
        logger,
        f"swept {len(reports)} tenants",
        {
            "TenantsSwept": len(reports),
            "ProjectionsRepaired": sum(r.projections.total + r.stale_entries for r in reports),
            "ChangesPublished": sum(r.published for r in reports),
            "IndexDocumentsRepaired": sum(i.indexed + i.removed for i in index if i.action != "none"),
            "IndexRebuilds": sum(1 for i in index if i.action == "rebuilt"),
        },
    )
    return {"tenants": [r.to_dict() for r in reports]}
