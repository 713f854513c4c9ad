"""Backfill: re-tag a tenant's whole library after a tag model version is promoted.

A backfill is a chain of small steps on one SQS queue, so it runs the same way on Lambda and in the
local stack, survives crashes and never needs one long-running process:

* **start** writes a progress object ``tenants/<t>/backfills/<id>.json`` and sends a *plan* message;
* a **plan** step lists one page of the tenant's assets after the saved cursor (S3 ``StartAfter``),
  sends them as *work* messages of ``keys_per_message`` keys, spread over time with SQS delays so
  no more than ``rate`` assets per second are queued, saves the cursor and sends the next plan
  message, delayed until that page has drained;
* a **work** step runs its keys through the ordinary ingest path (so :func:`~tagsmith.records.merge_tags`
  keeps every human decision) and writes a small result object
  ``tenants/<t>/backfills/<id>/batches/<seq>.json`` (overwritten, never added to, on redelivery).

Resumable: the cursor and a step number live in the progress object, written with a conditional
put. A redelivered or duplicated plan message whose step is not the saved one is dropped (the step
number is a fencing token), so at most one chain advances. If the chain stops (a message ended in
the dead-letter queue), ``start`` with the same id sends a plan message for the saved step and the
listing continues from the last listed key.

Progress is read back by :meth:`BackfillService.status`: listed and queued counts from the progress
object, done and failed counts summed from the batch results.

Example::

    >>> from tagsmith.storage import MemoryObjectStore
    >>> store = MemoryObjectStore()
    >>> queue = MemoryDelayQueue()
    >>> service = BackfillService(store=store, data_bucket="data", assets_bucket="assets", queue=queue,
    ...                           ingest=lambda refs: [], active_models=lambda tenant: {"product": "v2"})
    >>> service.start("acme").state
    'listing'
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tagsmith.assetwriter import IngestOutcome
from tagsmith.errors import InvalidInputError, NotFoundError, TransientError
from tagsmith.events import ObjectRef
from tagsmith.keys import tenant_prefix, validate_model_id, validate_tenant
from tagsmith.records import utc_now
from tagsmith.sqsbatch import IngestFn
from tagsmith.storage.base import ObjectStore, PreconditionFailedError

log = logging.getLogger(__name__)

BACKFILL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
MAX_SQS_DELAY = 900  # seconds: SQS refuses longer per-message delays
#: What ingestion answers per asset; all but ``failed`` count as done. ``queued``: a long video was
#: handed to its own resumable job (:mod:`tagsmith.videojobs`), which writes the record later.
OUTCOMES = ("tagged", "unchanged", "queued", "failed", "skipped", "rejected")


class BackfillError(InvalidInputError):
    """A backfill request that cannot be carried out as asked (bad id, unknown backfill)."""

    code = "backfill_request"


# --- the queue boundary ------------------------------------------------------------------------
class DelayQueue(Protocol):
    """A queue that accepts per-message delivery delays (SQS ``DelaySeconds``)."""

    def send_many(self, messages: Sequence[dict[str, Any]], delays: Sequence[int]) -> None: ...


class SqsDelayQueue:
    """:class:`DelayQueue` on SQS: ``SendMessageBatch`` in tens, each entry with its own delay."""

    def __init__(self, *, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    def send_many(self, messages: Sequence[dict[str, Any]], delays: Sequence[int]) -> None:
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(m, ensure_ascii=False), "DelaySeconds": int(d)}
            for i, (m, d) in enumerate(zip(messages, delays, strict=True))
        ]
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            try:
                r = self.client.send_message_batch(QueueUrl=self.url, Entries=chunk)
            except (ClientError, BotoCoreError) as e:
                raise TransientError(f"sending to {self.url} failed: {e}") from e
            if r.get("Failed"):
                raise TransientError(
                    f"SQS refused {len(r['Failed'])} message(s) for {self.url}: {r['Failed'][0]}"
                )


class MemoryDelayQueue:
    """:class:`DelayQueue` in memory, for tests: ``sent`` holds ``(message, delay)`` pairs."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send_many(self, messages: Sequence[dict[str, Any]], delays: Sequence[int]) -> None:
        for m, d in zip(messages, delays, strict=True):
            self.sent.append((json.loads(json.dumps(m)), int(d)))

    def take(self) -> list[dict[str, Any]]:
        """Every message sent so far (delays ignored), emptying the queue."""
        out = [m for m, _ in self.sent]
        self.sent.clear()
        return out


# --- data --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BackfillOptions:
    rate: float = 50.0  # assets per second queued, at most
    keys_per_message: int = 25
    page_size: int = 1000  # keys listed per plan step (one S3 LIST call)

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise BackfillError(f"rate must be > 0 assets per second, got {self.rate}")
        if not 1 <= self.keys_per_message <= 100:
            raise BackfillError(f"keys_per_message must be 1..100, got {self.keys_per_message}")
        if not 1 <= self.page_size <= 10_000:
            raise BackfillError(f"page_size must be 1..10000, got {self.page_size}")


@dataclass(frozen=True)
class BackfillProgress:
    """The progress object: what was listed and queued so far. Written only by start and plan steps."""

    id: str
    tenant: str
    assets_bucket: str
    models: dict[str, str]  # model id -> version active when the backfill started
    options: BackfillOptions
    state: str = "listing"  # listing -> listed
    step: int = 0  # the plan step that may run next (a fencing token)
    cursor: str = ""  # the last listed key
    listed: int = 0
    messages: int = 0  # work messages queued (their sequence numbers are 0..messages-1)
    created_at: str = ""
    updated_at: str = ""
    reason: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1).encode()

    @classmethod
    def from_json(cls, body: bytes) -> BackfillProgress:
        d = json.loads(body)
        d["options"] = BackfillOptions(**d.get("options", {}))
        return cls(**d)


@dataclass(frozen=True)
class BackfillStatus:
    progress: BackfillProgress
    counts: dict[str, int] = field(default_factory=dict)  # outcome -> assets, plus "errors"
    batches_done: int = 0

    @property
    def done(self) -> int:
        return sum(self.counts.get(k, 0) for k in OUTCOMES if k != "failed")

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    @property
    def errors(self) -> int:
        return self.counts.get("errors", 0)

    @property
    def pending(self) -> int:
        return max(0, self.progress.listed - self.done - self.failed)

    @property
    def complete(self) -> bool:
        return self.progress.state == "listed" and self.pending == 0

    def to_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "id": p.id,
            "tenant": p.tenant,
            "state": "complete" if self.complete else p.state,
            "models": p.models,
            "listed": p.listed,
            "queued_messages": p.messages,
            "done": self.done,
            "failed": self.failed,
            "errors": self.errors,
            "pending": self.pending,
            "counts": self.counts,
            "batches_done": self.batches_done,
            "cursor": p.cursor,
            "created_at": p.created_at,
            "updated_at": p.updated_at,
            "reason": p.reason,
            "rate": p.options.rate,
        }


# --- keys and naming (pure) ----------------------------------------------------------------------
def backfills_prefix(tenant: str) -> str:
    return tenant_prefix(tenant) + "backfills/"


def progress_key(tenant: str, backfill_id: str) -> str:
    return f"{backfills_prefix(tenant)}{validate_backfill_id(backfill_id)}.json"


def batch_key(tenant: str, backfill_id: str, seq: int) -> str:
    return f"{backfills_prefix(tenant)}{validate_backfill_id(backfill_id)}/batches/{seq:09d}.json"


def validate_backfill_id(backfill_id: str) -> str:
    if not BACKFILL_ID.match(backfill_id):
        raise BackfillError(
            f"invalid backfill id {backfill_id!r}: use 1-128 lower-case letters, digits, '.', '_' and '-'"
        )
    return backfill_id


def backfill_id_for(models: dict[str, str], *, promoted: str | None = None, activation: str = "") -> str:
    """A readable id: ``<model>-<version>[-at<activation time>]`` for a promotion, else one naming
    every active version. The activation time tells apart two activations of one version (a
    rollback to it, after another was promoted, re-tags the library again).

    >>> backfill_id_for({"product": "20261122-061500-3f9a"}, promoted="product")
    'product-20261122-061500-3f9a'
    >>> backfill_id_for({"product": "v1"}, promoted="product", activation="2026-12-07T10:15:00.120Z")
    'product-v1-at20261207101500120'
    """
    if promoted is not None:
        stamp = "".join(ch for ch in activation if ch.isdigit())
        suffix = f"-at{stamp}" if stamp else ""
        return validate_backfill_id(f"{promoted}-{models[promoted]}{suffix}".lower()[:128])
    body = "_".join(f"{m}-{v}" for m, v in sorted(models.items())) or "no-models"
    return validate_backfill_id(body.lower()[:128])


def parse_promotion_key(key: str) -> tuple[str, str] | None:
    """``tenants/<t>/models/<m>/active.json`` -> ``(tenant, model)``; None for any other key.

    >>> parse_promotion_key("tenants/acme/models/product/active.json")
    ('acme', 'product')
    >>> parse_promotion_key("tenants/acme/records/x/active.json") is None
    True
    """
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != "tenants" or parts[2] != "models" or parts[4] != "active.json":
        return None
    try:
        return validate_tenant(parts[1]), validate_model_id(parts[3])
    except InvalidInputError:
        return None


def plan_delays(n_messages: int, keys_per_message: int, rate: float) -> list[int]:
    """Per-message SQS delays that spread ``n_messages`` so at most ``rate`` assets/s become visible.

    >>> plan_delays(4, 25, 50.0)
    [0, 0, 1, 1]
    """
    return [min(MAX_SQS_DELAY, int(i * keys_per_message / rate)) for i in range(n_messages)]


def next_plan_delay(listed_now: int, rate: float) -> int:
    """Wait until this page's messages are visible before listing the next one.

    >>> next_plan_delay(1000, 50.0)
    20
    """
    return min(MAX_SQS_DELAY, math.ceil(listed_now / rate))


def tally(outcomes: Sequence[IngestOutcome | Exception]) -> dict[str, int]:
    counts = {k: 0 for k in (*OUTCOMES, "errors")}
    for o in outcomes:
        if isinstance(o, Exception):
            counts["errors"] += 1
        else:
            counts[o.status] = counts.get(o.status, 0) + 1
    return counts


# --- the service -------------------------------------------------------------------------------
class BackfillService:
    """Start, plan, work and report backfills. Every adapter is injected.

    ``active_models(tenant)`` returns ``{model id: version}`` as the store says now;
    ``refresh_models(tenant)`` drops any cached models so the next ingest loads the promoted ones.
    """

    def __init__(
        self,
        *,
        store: ObjectStore,
        data_bucket: str,
        assets_bucket: str,
        queue: DelayQueue,
        ingest: IngestFn,
        active_models: Callable[[str], dict[str, str]],
        refresh_models: Callable[[str], None] = lambda tenant: None,
        cached_models: Callable[[str], dict[str, str]] | None = None,
        default_options: BackfillOptions | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.store = store
        self.data_bucket = data_bucket
        self.assets_bucket = assets_bucket
        self.queue = queue
        self.ingest = ingest
        self.active_models = active_models
        self.refresh_models = refresh_models
        self.cached_models = cached_models
        self.default_options = default_options or BackfillOptions()
        self.clock = clock

    # -- reading ----------------------------------------------------------------------------
    def _read(self, tenant: str, backfill_id: str) -> tuple[BackfillProgress, str] | None:
        try:
            obj = self.store.get(self.data_bucket, progress_key(tenant, backfill_id))
        except NotFoundError:
            return None
        return BackfillProgress.from_json(obj.body), obj.info.etag

    def progress(self, tenant: str, backfill_id: str) -> BackfillProgress | None:
        got = self._read(tenant, backfill_id)
        return got[0] if got else None

    def list_ids(self, tenant: str) -> list[str]:
        """The tenant's backfills, oldest first."""
        prefix = backfills_prefix(tenant)
        found = []
        for info in self.store.list(self.data_bucket, prefix):
            rest = info.key[len(prefix) :]
            if "/" not in rest and rest.endswith(".json"):
                p = self.progress(tenant, rest[: -len(".json")])
                if p is not None:
                    found.append((p.created_at, p.id))
        return [i for _, i in sorted(found)]

    def status(self, tenant: str, backfill_id: str | None = None) -> BackfillStatus:
        """Progress of ``backfill_id`` (default: the tenant's latest backfill)."""
        validate_tenant(tenant)
        if backfill_id is None:
            ids = self.list_ids(tenant)
            if not ids:
                raise BackfillError(
                    f"tenant {tenant!r} has no backfill yet: start one with `tagsmith backfill start`"
                )
            backfill_id = ids[-1]
        progress = self.progress(tenant, backfill_id)
        if progress is None:
            raise BackfillError(f"tenant {tenant!r} has no backfill {backfill_id!r}")
        counts = {k: 0 for k in (*OUTCOMES, "errors")}
        batches = 0
        for body in self._batch_results(tenant, backfill_id):
            batches += 1
            for k, v in body.get("counts", {}).items():
                counts[k] = counts.get(k, 0) + int(v)
        return BackfillStatus(progress, counts, batches)

    def _batch_results(self, tenant: str, backfill_id: str) -> Iterator[dict[str, Any]]:
        prefix = f"{backfills_prefix(tenant)}{backfill_id}/batches/"
        for info in self.store.list(self.data_bucket, prefix):
            try:
                yield json.loads(self.store.get(self.data_bucket, info.key).body)
            except (NotFoundError, ValueError):
                continue

    # -- starting ---------------------------------------------------------------------------
    def start(
        self,
        tenant: str,
        *,
        backfill_id: str | None = None,
        options: BackfillOptions | None = None,
        reason: str = "manual",
        resume: bool = True,
    ) -> BackfillProgress:
        """Start a backfill of every asset of ``tenant`` (or resume ``backfill_id`` where it stopped).

        With ``resume=False`` an existing backfill of that id is left alone (a redelivered promotion
        event must not start a second chain).
        """
        validate_tenant(tenant)
        models = self.active_models(tenant)
        if backfill_id is None:
            backfill_id = backfill_id_for(models)
        validate_backfill_id(backfill_id)
        existing = self._read(tenant, backfill_id)
        if existing is not None:
            progress = existing[0]
            if resume and progress.state == "listing":
                log.info(
                    "resuming backfill %s at step %d after %r",
                    backfill_id,
                    progress.step,
                    progress.cursor,
                    extra={"tenant": tenant},
                )
                self._send_plan(progress, delay=0)
            return progress
        now = self.clock()
        progress = BackfillProgress(
            id=backfill_id,
            tenant=tenant,
            assets_bucket=self.assets_bucket,
            models=dict(models),
            options=options or self.default_options,
            created_at=now,
            updated_at=now,
            reason=reason,
        )
        try:
            self.store.put(
                self.data_bucket,
                progress_key(tenant, backfill_id),
                progress.to_json(),
                content_type="application/json",
                if_none_match=True,
            )
        except PreconditionFailedError:
            return self.start(tenant, backfill_id=backfill_id, options=options, reason=reason, resume=resume)
        log.info(
            "backfill %s started (%s) for models %s", backfill_id, reason, models, extra={"tenant": tenant}
        )
        self._send_plan(progress, delay=0)
        return progress

    def on_promotion(self, key: str) -> BackfillProgress | None:
        """A model's ``active.json`` was written: start the backfill for that promotion, once."""
        parsed = parse_promotion_key(key)
        if parsed is None:
            log.info("ignoring %s: not a model promotion", key)
            return None
        tenant, model = parsed
        models = self.active_models(tenant)
        if model not in models:
            log.info("ignoring promotion of %s/%s: no active version any more", tenant, model)
            return None
        try:
            pointer = json.loads(self.store.get(self.data_bucket, key).body)
            activation, why = str(pointer.get("at", "")), str(pointer.get("reason", ""))
        except (NotFoundError, ValueError, AttributeError):
            activation, why = "", ""
        return self.start(
            tenant,
            backfill_id=backfill_id_for(models, promoted=model, activation=activation),
            reason=f"{model} {models[model]} activated" + (f" ({why})" if why else ""),
            resume=False,
        )

    def _send_plan(self, progress: BackfillProgress, *, delay: int) -> None:
        message = {"kind": "plan", "tenant": progress.tenant, "backfill": progress.id, "step": progress.step}
        self.queue.send_many([message], [delay])

    # -- one plan step ----------------------------------------------------------------------
    def plan(self, tenant: str, backfill_id: str, step: int) -> str:
        """List one page after the cursor and queue it; returns ``planned``, ``listed`` or ``stale``."""
        got = self._read(tenant, backfill_id)
        if got is None:
            log.warning("plan message for unknown backfill %s dropped", backfill_id, extra={"tenant": tenant})
            return "stale"
        progress, etag = got
        if progress.state != "listing" or progress.step != step:
            log.info(
                "stale plan message (step %d, saved step %d, %s) dropped",
                step,
                progress.step,
                progress.state,
                extra={"tenant": tenant},
            )
            return "stale"
        opts = progress.options
        keys: list[str] = []
        for info in self.store.list(progress.assets_bucket, f"{tenant}/", start_after=progress.cursor):
            keys.append(info.key)
            if len(keys) >= opts.page_size:
                break
        batches = [keys[i : i + opts.keys_per_message] for i in range(0, len(keys), opts.keys_per_message)]
        work = [
            {
                "kind": "work",
                "tenant": tenant,
                "backfill": backfill_id,
                "seq": progress.messages + n,
                "bucket": progress.assets_bucket,
                "keys": batch,
                "models": progress.models,
            }
            for n, batch in enumerate(batches)
        ]
        if work:
            self.queue.send_many(work, plan_delays(len(work), opts.keys_per_message, opts.rate))
        last_page = len(keys) < opts.page_size
        updated = replace(
            progress,
            state="listed" if last_page else "listing",
            step=step + 1,
            cursor=keys[-1] if keys else progress.cursor,
            listed=progress.listed + len(keys),
            messages=progress.messages + len(work),
            updated_at=self.clock(),
        )
        if not last_page:
            # sent before the save: a crash in between redelivers *this* message, which redoes the
            # step; the duplicate of the next one is then fenced off by the step number
            self._send_plan(updated, delay=next_plan_delay(len(keys), opts.rate))
        try:
            self.store.put(
                self.data_bucket,
                progress_key(tenant, backfill_id),
                updated.to_json(),
                content_type="application/json",
                if_match=etag,
            )
        except PreconditionFailedError:
            log.info(
                "another plan step won the race for step %d; this one is dropped",
                step,
                extra={"tenant": tenant},
            )
            return "stale"
        log.info(
            "backfill %s step %d queued %d assets in %d messages (%d listed so far)",
            backfill_id,
            step,
            len(keys),
            len(work),
            updated.listed,
            extra={"tenant": tenant},
        )
        return "listed" if last_page else "planned"

    # -- one work message -------------------------------------------------------------------
    def work(self, message: dict[str, Any]) -> dict[str, int]:
        """Re-ingest the message's keys; raises :class:`TransientError` if any must be retried."""
        tenant = validate_tenant(str(message["tenant"]))
        backfill_id = validate_backfill_id(str(message["backfill"]))
        seq = int(message["seq"])
        bucket = str(message["bucket"])
        wanted = {str(k): str(v) for k, v in (message.get("models") or {}).items()}
        if self.cached_models is not None and any(
            self.cached_models(tenant).get(m) != v for m, v in wanted.items()
        ):
            # a warm container may still hold the models from before the promotion
            self.refresh_models(tenant)
        refs = [ObjectRef(bucket, str(k)) for k in message["keys"]]
        outcomes = self.ingest(refs)
        counts = tally(outcomes)
        body = {"seq": seq, "keys": len(refs), "counts": counts, "at": self.clock()}
        self.store.put(
            self.data_bucket,
            batch_key(tenant, backfill_id, seq),
            json.dumps(body).encode(),
            content_type="application/json",
        )
        if counts["errors"]:
            first = next(o for o in outcomes if isinstance(o, Exception))
            raise TransientError(
                f"{counts['errors']} of {len(refs)} assets failed transiently; retrying: {first}"
            )
        return counts

    # -- a queue message of either kind ---------------------------------------------------------
    def handle(self, body: str | dict[str, Any]) -> str:
        """Dispatch one backfill-queue message body: plan, work, or an S3 promotion event."""
        try:
            message = json.loads(body) if isinstance(body, str) else body
        except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
            raise InvalidInputError(f"backfill message is not JSON: {e}") from e
        if not isinstance(message, dict):
            raise InvalidInputError("backfill message is not a JSON object")
        kind = message.get("kind")
        try:
            if kind == "plan":
                return self.plan(
                    validate_tenant(str(message["tenant"])), str(message["backfill"]), int(message["step"])
                )
            if kind == "work":
                self.work(message)
                return "worked"
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInputError(f"malformed {kind} message: {e!r}") from e
        from tagsmith.events import parse_storage_event

        started = [self.on_promotion(ref.key) for ref in parse_storage_event(message)]
        return "started" if any(started) else "ignored"
