"""Changing a model's precision target (or a multi-label model's tags per asset) without training.

A version is immutable, so a new target makes a new version: the same weights, thresholds chosen
again from the out-of-fold evidence the version keeps (:meth:`TagModel.recalibrated`), its examples'
list copied, and ``active.json`` moved to it with a compare-and-swap like any promotion. The move is
what re-routes the library: every activation starts a backfill (:mod:`tagsmith.backfill`), and the
records name the version whose thresholds decided their tags.

Example::

    >>> new = retarget(models, "acme", "product", target=0.95)  # doctest: +SKIP
    >>> new.target_precision, new.metrics["retargeted_from"]  # doctest: +SKIP
    (0.95, '20261207-101500-120-3f9a')
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from tagsmith.errors import NotFoundError
from tagsmith.records import utc_now
from tagsmith.tagmodels.calibration import validate_target
from tagsmith.tagmodels.model import KEEP, TagModel, _Keep
from tagsmith.tagmodels.store import ModelStore, new_version

__all__ = ["retarget"]

log = logging.getLogger(__name__)


def retarget(
    models: ModelStore,
    tenant: str,
    model_id: str,
    *,
    target: float | None = None,
    max_tags: int | _Keep | None = KEEP,
    by: str = "",
) -> TagModel:
    """Make a new active version of ``model_id`` for ``target`` precision and/or ``max_tags``.

    Raises :class:`~tagsmith.errors.NotFoundError` without an active version,
    :class:`~tagsmith.errors.InvalidInputError` for a model that keeps no evidence (retrain it) or
    a setting it cannot take, and :class:`~tagsmith.tagmodels.store.PromotionConflictError` when
    another promotion won meanwhile (nothing is activated then).
    """
    if target is not None:
        target = validate_target(target)
    pointer = models.active_version(tenant, model_id)
    if pointer is None:
        raise NotFoundError(f"tenant {tenant!r} has no active model {model_id!r}")
    active = models.load_version(tenant, model_id, pointer)
    changed = active.recalibrated(target=target, max_tags=max_tags)
    version = new_version()
    what = []
    if changed.target_precision != active.target_precision:
        what.append(f"precision target {active.target_precision:.0%} -> {changed.target_precision:.0%}")
    if changed.max_tags != active.max_tags:
        what.append(f"at most {changed.max_tags or 'any number of'} tags per asset")
    reason = "; ".join(what) or "thresholds chosen again"
    reason = f"{reason} (recalibrated from {active.version}, no fit{', by ' + by if by else ''})"
    model = replace(
        changed,
        version=version,
        created_at=utc_now(),
        metrics={**changed.metrics, "retargeted_from": active.version},
    )
    models.save_version(model)
    examples = models.version_file(tenant, model_id, active.version, "examples.json")
    if examples is not None:
        models.save_version_file(tenant, model_id, version, "examples.json", examples)
    report = {"format": 1, "tenant": tenant, "model_id": model_id, "version": version, "retargeted_from": active.version,
              "promotion": {"promoted": True, "reason": reason, "compared_with": active.version}}  # fmt: skip
    models.save_version_file(tenant, model_id, version, "report.json", json.dumps(report).encode())
    models.activate(tenant, model_id, version, reason=reason, expected=pointer)
    log.info("%s/%s: %s", tenant, model_id, reason, extra={"tenant": tenant})
    return model
