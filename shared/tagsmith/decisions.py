"""Review decisions: what a reviewer said about a review item, written to the asset record for good.

A reviewer answers one review item (one asset, one model) with one of four actions:

* ``accept``: the suggestion is right: ``(model, suggestion)`` becomes ``confirmed``;
* ``reject``: the suggestion is wrong: it becomes ``rejected`` and is never proposed again;
* ``pick``: another tag of the model is right: the suggestion is rejected, the picked tag confirmed;
* ``none``: none of the model's tags fits. For an exclusive model that is a confirmed
  :data:`~tagsmith.records.NONE_TAG`, which silences the model on this asset; for a multi-label
  model every tag the item proposed is rejected.

:func:`apply_decision` is the pure core (tags in, tags out). :class:`DecisionService` runs the
whole path: the record (compare-and-swap through :meth:`RecordStore.update`, so a decision and a
reprocessing that race never overwrite each other), then the review item, then the search index,
then the correction count that triggers a retrain (:class:`CorrectionTracker`).

Once written, :func:`~tagsmith.records.merge_tags` guarantees no reprocessing, retraining or
backfill removes a confirmed tag or re-applies a rejected one.

Decisions are idempotent: deciding the same thing twice changes nothing the second time (the first
decision's ``decided_by`` / ``decided_at`` stay). A *stale* decision (the asset was re-uploaded or the
model retrained since the item was made) is still applied, because humans win, and the staleness is
recorded on the review item and logged.

Errors::

    DecisionError (InvalidInputError)   the request cannot be a decision: unknown action, a pick
                                        without a tag or with a tag the model does not know
    NotFoundError                       no such review item (in this tenant), or its asset is gone

Example::

    >>> from tagsmith.records import Source, TagAssignment, TagState
    >>> ai = TagAssignment("sku", "milk", TagState.REVIEW, Source.AI, confidence=0.55)
    >>> d = Decision(Action.PICK, model="sku", suggestion="milk", tag="juice", decided_by="ana",
    ...              decided_at="2026-11-22T06:00:00.000Z")
    >>> [(t.tag, t.state.value) for t in apply_decision([ai], d, exclusive=True)]
    [('juice', 'confirmed'), ('milk', 'rejected')]

Size: just over 600 lines: the pure core (:func:`apply_decision`) and the service that writes its
result with compare-and-swap, re-projects and counts corrections for retraining belong together.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol, cast

from tagsmith.errors import InvalidInputError, NotFoundError, TransientError
from tagsmith.keys import AssetKey, model_prefix, tenant_prefix, validate_tag_id
from tagsmith.records import (
    NONE_TAG,
    AssetRecord,
    AssetStatus,
    Cause,
    RecordChange,
    Source,
    TagAssignment,
    TagState,
    utc_now,
)
from tagsmith.retrains import RetrainRateError, RetrainThrottle
from tagsmith.review import ReviewItem, ReviewStatus, ReviewStore
from tagsmith.storage.base import ObjectStore, PreconditionFailedError
from tagsmith.storage.records import RecordStore
from tagsmith.tagmodels import ModelKind, TagModel

log = logging.getLogger(__name__)


class DecisionError(InvalidInputError):
    """A request that cannot be turned into a decision; the message says what to send instead."""

    code = "decision_request"


class Action(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    PICK = "pick"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Decision:
    """One reviewer's answer about one model's suggestion on one asset."""

    action: Action
    model: str
    suggestion: str
    decided_by: str
    decided_at: str
    tag: str | None = None  # the picked tag (``pick`` only)
    proposed: tuple[str, ...] = ()  # every tag the item offered (``none`` on a multi-label model)

    def __post_init__(self) -> None:
        if self.action is Action.PICK:
            if not self.tag:
                raise DecisionError(
                    "'pick' needs the tag that is right: send {'action': 'pick', 'tag': '<tag id>'}"
                )
            validate_tag_id(self.tag)
        elif self.tag is not None and self.tag != self.suggestion:
            raise DecisionError(f"only 'pick' takes a tag; '{self.action.value}' acts on the suggestion")

    def targets(self, *, exclusive: bool) -> dict[str, TagState]:
        """The human state each touched tag of the model ends in."""
        if self.action is Action.ACCEPT:
            return {self.suggestion: TagState.CONFIRMED}
        if self.action is Action.REJECT:
            return {self.suggestion: TagState.REJECTED}
        if self.action is Action.PICK:
            assert self.tag is not None
            if self.tag == self.suggestion:
                return {self.tag: TagState.CONFIRMED}
            return {self.suggestion: TagState.REJECTED, self.tag: TagState.CONFIRMED}
        if exclusive:
            return {NONE_TAG: TagState.CONFIRMED}
        return dict.fromkeys(dict.fromkeys((self.suggestion, *self.proposed)), TagState.REJECTED)


def apply_decision(
    tags: Sequence[TagAssignment], decision: Decision, *, exclusive: bool
) -> tuple[TagAssignment, ...]:
    """The record's tags after ``decision`` (pure; the latest human decision wins).

    For an exclusive model a confirmation settles the model on this asset: its AI tags and any
    earlier confirmation of another tag (or "none of these") are dropped. Tags of other models
    are never touched. A tag that already carries the decided state keeps its original provenance,
    which makes deciding twice a no-op.
    """
    targets = decision.targets(exclusive=exclusive)
    settles = exclusive and TagState.CONFIRMED in targets.values()
    current = {(t.model, t.tag): t for t in tags}
    out: list[TagAssignment] = []
    for t in tags:
        if t.model != decision.model:
            out.append(t)
        elif t.tag in targets:
            continue  # replaced below
        elif settles and (not t.is_human or t.state is TagState.CONFIRMED):
            continue
        else:
            out.append(t)
    for tag, state in targets.items():
        before = current.get((decision.model, tag))
        if before is not None and before.state is state and before.source is Source.HUMAN:
            out.append(before)
            continue
        out.append(
            TagAssignment(
                model=decision.model,
                tag=tag,
                state=state,
                source=Source.HUMAN,
                confidence=before.confidence if before else None,  # what the model said, for the record
                model_version=before.model_version if before else None,
                threshold=before.threshold if before else None,
                decided_by=decision.decided_by,
                decided_at=decision.decided_at,
            )
        )
    return tuple(sorted(out, key=lambda t: (t.model, t.tag)))


def stale_reasons(item: ReviewItem, record: AssetRecord) -> list[str]:
    """Why the item no longer describes the record exactly (empty: it is current)."""
    reasons = []
    if item.asset_etag and item.asset_etag != record.source.etag:
        reasons.append(
            f"asset changed since the item was made (etag {item.asset_etag} -> {record.source.etag})"
        )
    current_version = record.models.get(item.model)
    if item.model_version and current_version and current_version != item.model_version:
        reasons.append(
            f"model {item.model} retrained since the item was made ({item.model_version} -> {current_version})"
        )
    return reasons


def next_question(item: ReviewItem, record: AssetRecord) -> ReviewItem | None:
    """For a multi-label model, the item re-opened on the next tag still waiting for a human."""
    waiting = sorted(
        (t for t in record.pending_review() if t.model == item.model),
        key=lambda t: (-(t.confidence or 0.0), t.tag),
    )
    if not waiting:
        return None
    top = waiting[0]
    others = tuple(a for a in item.alternatives if a.tag != top.tag and any(w.tag == a.tag for w in waiting))
    return replace(
        item,
        suggestion=top.tag,
        confidence=top.confidence or 0.0,
        threshold=top.threshold or item.threshold,
        alternatives=others,
        status=ReviewStatus.PENDING,
    )


# --- corrections -> retraining -------------------------------------------------------------------


class TaxonomySource(Protocol):
    """What the service needs from :class:`~tagsmith.tagmodels.ActiveModels`."""

    def for_tenant(self, tenant: str) -> list[TagModel]: ...

    def invalidate(self, tenant: str | None = None) -> None: ...


@dataclass(frozen=True)
class RetrainPolicy:
    """After ``every`` new corrections (human decisions that yield a labelled example) for a model,
    a retrain is requested. ``every <= 0`` disables the trigger."""

    every: int = 25


def corrections_key(tenant: str, model: str) -> str:
    return model_prefix(tenant, model) + "corrections.json"


class CorrectionTracker:
    """Counts a model's corrections in ``tenants/<t>/models/<m>/corrections.json`` and, every
    ``policy.every`` of them, writes a training request
    (``tenants/<t>/training-requests/<m>-reviewed-<n>.train.json``) that the train handler picks up
    like any other.

    The request trains on the examples the active version was trained on (``"previous_examples":
    true``, from the copies the trainer keeps) plus the corrections (``"corrections": true``: the
    trainer turns every human-confirmed tag of the model into an example, and every "none of
    these" into a negative, see :func:`tagsmith.examples.examples_from_corrections`). It carries, and the counter
    file keeps, the model's figures when the retrain was requested (``baseline``), so the
    retrain's report can be read against them.
    """

    def __init__(
        self,
        *,
        store: ObjectStore,
        data_bucket: str,
        models: TaxonomySource,
        policy: RetrainPolicy = RetrainPolicy(),
        clock: Callable[[], str] = utc_now,
        throttle: RetrainThrottle | None = None,
    ) -> None:
        self.store = store
        self.data_bucket = data_bucket
        self.models = models
        self.policy = policy
        self.clock = clock
        # one pending retrain per model and a per-tenant rate: the training queue is shared
        self.throttle = throttle or RetrainThrottle(store=store, data_bucket=data_bucket)

    def state(self, tenant: str, model: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self.store.get(self.data_bucket, corrections_key(tenant, model)).body))
        except NotFoundError:
            return {
                "model": model,
                "since_request": 0,
                "total": 0,
                "every": self.policy.every,
                "requests": [],
            }

    def record(self, tenant: str, model: str, count: int = 1) -> dict[str, Any] | None:
        """Add ``count`` corrections; returns the training request written, if this crossed the line."""
        for _ in range(5):
            obj = None
            try:
                obj = self.store.get(self.data_bucket, corrections_key(tenant, model))
                state = dict(json.loads(obj.body))
            except NotFoundError:
                state = self.state(tenant, model)
            state["total"] = int(state.get("total", 0)) + count
            state["since_request"] = int(state.get("since_request", 0)) + count
            state["every"] = self.policy.every
            state["updated_at"] = self.clock()
            due = self.policy.every > 0 and state["since_request"] >= self.policy.every
            if due and not self.throttle.allows(tenant, model):
                due = False  # over the tenant's hourly allowance: asked again by a later decision
            name = f"{model}-reviewed-{state['total']:06d}"
            if due:
                state["since_request"] = 0
                state.setdefault("requests", []).append(
                    {"name": name, "at": state["updated_at"], "baseline": self._baseline(tenant, model)}
                )
                state["requests"] = state["requests"][-20:]
            try:
                self.store.put(
                    self.data_bucket,
                    corrections_key(tenant, model),
                    json.dumps(state, ensure_ascii=False, indent=1).encode(),
                    content_type="application/json",
                    if_match=obj.info.etag if obj else None,
                    if_none_match=obj is None,
                )
            except PreconditionFailedError:
                continue  # another decision counted at the same time: count again on top of it
            if not due:
                return None
            try:
                return self.request_retrain(tenant, model, name=name)
            except RetrainRateError as e:  # another request took the last slot meanwhile
                log.warning("retrain after corrections deferred: %s", e, extra={"tenant": tenant})
                return None
        raise TransientError(f"correction count of {tenant}/{model} kept changing; retry the decision")

    def _baseline(self, tenant: str, model: str) -> dict[str, Any]:
        active = next((m for m in self.models.for_tenant(tenant) if m.model_id == model), None)
        if active is None:
            return {}
        return {
            "version": active.version,
            "cv_accuracy": active.metrics.get("cv_accuracy"),
            "examples": int(sum(active.examples_per_tag.values())),
        }

    def request_retrain(self, tenant: str, model: str, *, name: str | None = None) -> dict[str, Any]:
        """Write a training request on the last examples plus the corrections (also the console's
        "Retrain now")."""
        active = next((m for m in self.models.for_tenant(tenant) if m.model_id == model), None)
        if active is None:
            raise NotFoundError(f"tenant {tenant!r} has no active model {model!r} to retrain")
        stamp = "".join(ch for ch in self.clock() if ch.isdigit())
        name = name or f"{model}-reviewed-at-{stamp}"
        request = {
            "model": model,
            # everything the active version learnt from, whatever it came from (a folder, a
            # manifest, the console), plus every reviewer's answer
            "previous_examples": True,
            "corrections": True,
            "kind": active.kind.value,
            # no "threshold": the retrained version's thresholds are calibrated like any training's
            "review_floor": active.review_floor,
            "reason": "review corrections",
            "baseline": self._baseline(tenant, model),
        }
        key = f"{tenant_prefix(tenant)}training-requests/{name}.train.json"
        pending = self.throttle.admit(tenant, model, key)  # RetrainRateError over the tenant's rate
        if pending is not None:  # one pending retrain per model: it will see these corrections too
            return {"key": pending, "coalesced": True, **request}
        self.store.put(self.data_bucket, key, json.dumps(request).encode(), content_type="application/json")
        log.info(
            "retrain of %s requested after review corrections", model, extra={"tenant": tenant, "key": key}
        )
        return {"key": key, "coalesced": False, **request}


# --- the service -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionOutcome:
    """What one decision did; ``to_dict()`` is the console API's JSON."""

    item_id: str
    asset_key: str
    model: str
    action: str
    tags: list[dict[str, Any]]  # the model's tags on the record afterwards
    changed: bool  # False: the record already said this (a repeated decision)
    stale: list[str] = field(default_factory=list)
    retrain: dict[str, Any] | None = None
    item_status: str = ReviewStatus.DECIDED.value

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class DecisionService:
    """Applies reviewers' decisions: record, then review item, then index, then the correction count.

    Every step is idempotent, so a decision retried after a crash between two steps completes it.
    """

    def __init__(
        self,
        *,
        records: RecordStore,
        reviews: ReviewStore,
        models: TaxonomySource,
        index: Any,  # tagsmith.search.SearchIndex
        corrections: CorrectionTracker | None = None,
        clock: Callable[[], str] = utc_now,
        outbound: Any = None,  # tagsmith.outbound.Outbound: change events, object tags, sidecars
    ) -> None:
        self.outbound = outbound
        self.records = records
        self.reviews = reviews
        self.models = models
        self.index = index
        self.corrections = corrections
        self.clock = clock

    def decide(
        self, tenant: str, item_id: str, action: str | Action, *, reviewer: str, tag: str | None = None
    ) -> DecisionOutcome:
        return self._decide(tenant, item_id, action, reviewer=reviewer, tag=tag)

    def _decide(
        self,
        tenant: str,
        item_id: str,
        action: str | Action,
        *,
        reviewer: str,
        tag: str | None = None,
        expect_suggestion: str | None = None,
        deferred: _Deferred | None = None,
    ) -> DecisionOutcome:
        """:meth:`decide`; with ``deferred`` the index write and the correction count are collected
        there for the caller to do once for a whole batch (:meth:`bulk_accept`)."""
        item = self.reviews.get(tenant, item_id)
        if item is None:
            raise NotFoundError(f"no review item {item_id!r} in tenant {tenant!r}")
        if expect_suggestion is not None and item.suggestion != expect_suggestion:
            raise DecisionError(
                f"item {item_id} suggests {item.suggestion!r}, not {expect_suggestion!r}: not accepted"
            )
        try:
            act = Action(action)
        except ValueError:
            raise DecisionError(
                f"unknown action {action!r}: use one of {', '.join(a.value for a in Action)}"
            ) from None
        models = {m.model_id: m for m in self.models.for_tenant(tenant)}
        model = models.get(item.model)
        exclusive = model is None or model.kind is ModelKind.EXCLUSIVE
        if act is Action.PICK and model is not None and tag not in model.tags:
            raise DecisionError(
                f"tag {tag!r} is not a tag of model {item.model!r}: pick one of {', '.join(model.tags)}"
            )
        decision = Decision(
            act,
            model=item.model,
            suggestion=item.suggestion,
            decided_by=reviewer,
            decided_at=self.clock(),
            tag=tag if act is Action.PICK else None,
            proposed=tuple(a.tag for a in item.alternatives),
        )
        asset = AssetKey(tenant, item.asset_path)
        seen: dict[str, Any] = {}

        def change(record: AssetRecord | None) -> AssetRecord | None:
            if record is None or record.status is AssetStatus.DELETED:
                return None  # nothing to decide on: the asset is gone
            seen["before"] = record
            return replace(record, tags=apply_decision(record.tags, decision, exclusive=exclusive))

        why = RecordChange(Cause.REVIEW, action=act.value, by=reviewer)
        record = self.records.update(asset, change, cause=why)
        if record is None or record.status is AssetStatus.DELETED:
            if item.status is ReviewStatus.PENDING:
                self.reviews.put(replace(item, status=ReviewStatus.SUPERSEDED))
            raise NotFoundError(f"asset {asset.key} no longer exists; the review item is closed")
        changed = record is not seen.get("before")
        stale = stale_reasons(item, record)
        if stale:
            log.info(
                "stale decision applied (humans win): %s",
                "; ".join(stale),
                extra={"tenant": tenant, "key": asset.key, "item": item.id},
            )
        reopened = None if exclusive else next_question(item, record)
        summary = {"action": act.value, "tag": decision.tag, "stale": stale} if changed else None
        if reopened is not None:
            self.reviews.put(replace(reopened, decision=summary or item.decision))
        elif item.status is not ReviewStatus.DECIDED or changed:
            self.reviews.put(
                replace(
                    item,
                    status=ReviewStatus.DECIDED,
                    decided_by=reviewer if changed else item.decided_by or reviewer,
                    decided_at=decision.decided_at if changed else item.decided_at or decision.decided_at,
                    decision=summary
                    or item.decision
                    or {"action": act.value, "tag": decision.tag, "stale": stale},
                )
            )
        taxonomies = {m.model_id: m.taxonomy for m in models.values()}
        counts = changed and self.corrections is not None and _yields_example(decision)
        retrain = None
        if deferred is not None:
            deferred.add(record, taxonomies, item.model if counts else None)
        else:
            self.index.upsert(record, taxonomies)
            self._publish([record])
            if counts:
                assert self.corrections is not None
                retrain = self.corrections.record(tenant, item.model)
        log.info(
            "review decision %s on %s/%s by %s%s",
            act.value,
            item.model,
            decision.tag or item.suggestion,
            reviewer,
            "" if changed else " (already recorded)",
            extra={"tenant": tenant, "key": asset.key, "item": item.id},
        )
        return DecisionOutcome(
            item_id=item.id,
            asset_key=asset.key,
            model=item.model,
            action=act.value,
            tags=[t.to_dict() for t in record.tags if t.model == item.model],
            changed=changed,
            stale=stale,
            retrain=retrain,
            item_status=(ReviewStatus.PENDING if reopened is not None else ReviewStatus.DECIDED).value,
        )

    def bulk_accept(
        self, tenant: str, item_ids: Iterable[str], *, reviewer: str, tag: str | None = None
    ) -> list[DecisionOutcome | Exception]:
        """Accept each item's suggestion; with ``tag``, only items suggesting that tag (others fail).

        Returns one outcome or error per id, in order: one bad id never blocks the rest. Items are
        decided :data:`BULK_WORKERS` at a time (each is its own record's compare-and-swap, so two
        items of one asset simply retry), then the index gets one bulk request and each model's
        correction count one update, instead of one of each per item.
        """
        ids = list(dict.fromkeys(item_ids))
        deferred = _Deferred()

        def one(item_id: str) -> DecisionOutcome | Exception:
            try:
                return self._decide(
                    tenant,
                    item_id,
                    Action.ACCEPT,
                    reviewer=reviewer,
                    expect_suggestion=tag,
                    deferred=deferred,
                )
            except (InvalidInputError, NotFoundError) as e:
                return e

        if len(ids) > 1:
            with ThreadPoolExecutor(max_workers=min(BULK_WORKERS, len(ids))) as pool:
                results = list(pool.map(one, ids))
        else:
            results = [one(i) for i in ids]
        if deferred.records:
            errors = self.index.bulk_upsert(deferred.records, tenant)
            for error in errors:  # the record is written; a reindex repairs the projection
                log.warning(
                    "bulk accept: indexing %s failed: %s",
                    error.asset_key,
                    error.reason,
                    extra={"tenant": tenant},
                )
            self._publish([r for r, _ in deferred.records])
        if self.corrections is not None:
            for model, count in sorted(deferred.corrections.items()):
                retrain = self.corrections.record(tenant, model, count=count)
                if retrain is not None:  # shown on the batch's last outcome of that model
                    last = max(
                        i
                        for i, r in enumerate(results)
                        if isinstance(r, DecisionOutcome) and r.model == model
                    )
                    results[last] = replace(cast(DecisionOutcome, results[last]), retrain=retrain)
        return results

    def _publish(self, records: list[AssetRecord]) -> None:
        """Outbound projections after the decision: a failure does not undo the decision (the
        record is the truth); a repeated decision or ``tagsmith republish`` publishes it later."""
        if self.outbound is None:
            return
        for key, error in self.outbound.after_write(records).items():
            log.warning("decision recorded, publishing it failed: %s", error, extra={"key": key})


BULK_WORKERS = 8  # decisions of one bulk accept in flight at once (S3 round trips dominate)


class _Deferred:
    """What a batch of decisions leaves for the end: index writes and correction counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latest: dict[str, tuple[AssetRecord, dict[str, Any]]] = {}
        self.corrections: dict[str, int] = {}

    def add(self, record: AssetRecord, taxonomies: dict[str, Any], counted_model: str | None) -> None:
        with self._lock:
            held = self.latest.get(record.key)
            if held is None or held[0].revision <= record.revision:
                self.latest[record.key] = (record, taxonomies)  # two items of one asset: the later write
            if counted_model is not None:
                self.corrections[counted_model] = self.corrections.get(counted_model, 0) + 1

    @property
    def records(self) -> list[tuple[AssetRecord, dict[str, Any]]]:
        return list(self.latest.values())


def _yields_example(decision: Decision) -> bool:
    """Accepting or picking a tag gives a labelled example; rejecting and "none" do not."""
    return decision.action in (Action.ACCEPT, Action.PICK)
