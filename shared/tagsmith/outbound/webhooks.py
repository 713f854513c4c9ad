"""Webhooks: per-tenant subscriptions to change events, delivered signed, retried, dead-lettered.

A subscription (``tenants/<t>/webhooks/<id>.json``) is a URL, a filter (event kinds and models;
empty = everything) and a secret. The webhooks function consumes the queue the event bus feeds
(one rule, ``webhooks``) and POSTs each event to every matching subscription of its tenant:

* signed as `Standard Webhooks <https://www.standardwebhooks.com/>`_ does: headers ``webhook-id``
  (the event id: the same on every retry), ``webhook-timestamp`` (Unix seconds of this attempt) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed with the
  secret's bytes (``whsec_<base64>``); :func:`verify` is the receiver's side (docs/events.md);
* a failed attempt (no answer within :attr:`RetryPolicy.timeout`, or not 2xx) is not retried in
  place: it is sent back to the queue with an SQS delay (5 s, 15 s, 45 s ... up to 15 min), so
  nothing waits for it; after :attr:`RetryPolicy.max_attempts` attempts (or
  :attr:`RetryPolicy.max_age`) the delivery goes to the dead-letter queue with the last error;
* one tenant never delays another: a batch's deliveries run at the same time, each bounded by the
  timeout, and an endpoint that failed :attr:`RetryPolicy.breaker_failures` times in a row is not
  called for :attr:`RetryPolicy.breaker_seconds` (its deliveries wait in the queue instead of
  holding workers).

Deliveries are at least once and not ordered: receivers keep the highest ``revision`` per key and
drop the rest (each event carries the asset's whole tag state, so skipping a stale one loses
nothing).

>>> secret = "whsec_" + base64.b64encode(b"0" * 24).decode()
>>> headers = signed_headers(secret, "evt_1", b'{"a":1}', timestamp=1700000000)
>>> verify(secret, headers, b'{"a":1}', now=1700000010)
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from tagsmith.errors import InvalidInputError, NotFoundError, TransientError
from tagsmith.keys import tenant_prefix, validate_model_id, validate_tenant
from tagsmith.outbound.changes import DETAIL_TYPE, KINDS, SOURCE
from tagsmith.records import utc_now
from tagsmith.storage.base import ObjectStore
from tagsmith.tenantcache import TenantCache

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
MAX_SUBSCRIPTIONS = 20  # per tenant


class WebhookError(InvalidInputError):
    """A subscription request that cannot be accepted; the message says what to send instead."""

    code = "webhook_request"


# --- signatures ----------------------------------------------------------------------------------
def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "user-agent": "Tagsmith-Webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """Whether ``body`` was signed with ``secret`` less than ``tolerance`` seconds ago."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        ts = int(h["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = sign(secret, h.get("webhook-id", ""), ts, body).split(",", 1)[1]
    return any(
        hmac.compare_digest(expected, s.split(",", 1)[1])
        for s in h.get("webhook-signature", "").split()
        if s.startswith("v1,")
    )


# --- subscriptions -------------------------------------------------------------------------------
def _is_private(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # unresolvable now: the delivery will fail and retry
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast:
            return True
    return False


def validate_url(url: str, *, allow_private: bool = False) -> str:
    """An ``https`` URL whose host is not on a private network (plain ``http`` and private hosts
    only with ``allow_private``, for a local stack): a tenant must not make us call our own
    network."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookError(f"webhook URL {url!r} must be an absolute https:// URL")
    if parts.scheme == "http" and not allow_private:
        raise WebhookError(f"webhook URL {url!r} must use https")
    if not allow_private and _is_private(parts.hostname):
        raise WebhookError(f"webhook URL {url!r} points at a private or loopback address")
    return url


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant: str
    url: str
    secret: str
    kinds: tuple[str, ...] = ()  # () = every kind
    models: tuple[str, ...] = ()  # () = every model
    description: str = ""
    created_at: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise WebhookError(f"unknown event kinds {unknown}: use some of {', '.join(KINDS)}")
        for m in self.models:
            validate_model_id(m)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` passes this subscription's filter."""
        if event.get("tenant") != self.tenant:
            return False
        if self.kinds and not set(self.kinds) & set(event.get("kinds", ())):
            return False
        if self.models:
            touched = {c["model"] for c in event.get("changes", ())} | {
                t["model"] for t in event.get("tags", ())
            }
            if event.get("status") != "deleted" and not touched & set(self.models):
                return False
        return True

    def to_json(self) -> bytes:
        d = asdict(self)
        d["kinds"], d["models"] = list(self.kinds), list(self.models)
        return json.dumps(d, ensure_ascii=False, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Subscription:
        d = json.loads(data)
        return cls(**{**d, "kinds": tuple(d.get("kinds", ())), "models": tuple(d.get("models", ()))})

    def public(self) -> dict[str, Any]:
        """Everything but the secret (listing, the API)."""
        d = json.loads(self.to_json())
        d["secret"] = self.secret[: len(SECRET_PREFIX) + 4] + "..."
        return d


def webhooks_prefix(tenant: str) -> str:
    return f"{tenant_prefix(tenant)}webhooks/"


class SubscriptionStore:
    """Subscriptions in the data bucket; :meth:`for_tenant` is cached for ``ttl`` seconds (a new
    subscription receives events within that time)."""

    def __init__(self, *, store: ObjectStore, bucket: str, ttl: float = 30.0) -> None:
        self.store = store
        self.bucket = bucket
        self._cache = TenantCache(self._load, ttl=ttl)

    def add(
        self,
        tenant: str,
        url: str,
        *,
        kinds: Sequence[str] = (),
        models: Sequence[str] = (),
        description: str = "",
        allow_private: bool = False,
    ) -> Subscription:
        validate_tenant(tenant)
        if len(self.list(tenant)) >= MAX_SUBSCRIPTIONS:
            raise WebhookError(f"tenant {tenant} has {MAX_SUBSCRIPTIONS} webhooks already: remove one first")
        sub = Subscription(
            id="wh_" + secrets.token_hex(8),
            tenant=tenant,
            url=validate_url(url, allow_private=allow_private),
            secret=new_secret(),
            kinds=tuple(dict.fromkeys(kinds)),
            models=tuple(dict.fromkeys(models)),
            description=description,
        )
        return self._put(sub)

    def _put(self, sub: Subscription) -> Subscription:
        key = webhooks_prefix(sub.tenant) + f"{sub.id}.json"
        self.store.put(self.bucket, key, sub.to_json(), content_type="application/json")
        self._cache.invalidate(sub.tenant)
        return sub

    def get(self, tenant: str, sub_id: str) -> Subscription:
        try:
            return Subscription.from_json(
                self.store.get(self.bucket, webhooks_prefix(tenant) + f"{sub_id}.json").body
            )
        except NotFoundError:
            raise NotFoundError(f"tenant {tenant} has no webhook {sub_id!r}") from None

    def rotate(self, tenant: str, sub_id: str) -> Subscription:
        return self._put(replace(self.get(tenant, sub_id), secret=new_secret()))

    def remove(self, tenant: str, sub_id: str) -> None:
        self.get(tenant, sub_id)
        self.store.delete(self.bucket, webhooks_prefix(tenant) + f"{sub_id}.json")
        self._cache.invalidate(tenant)

    def list(self, tenant: str) -> Sequence[Subscription]:
        return self._load(tenant)

    def for_tenant(self, tenant: str) -> Sequence[Subscription]:
        return self._cache.get(tenant)

    def _load(self, tenant: str) -> Sequence[Subscription]:
        out = []
        for info in self.store.list(self.bucket, webhooks_prefix(tenant)):
            try:
                out.append(Subscription.from_json(self.store.get(self.bucket, info.key).body))
            except NotFoundError:
                continue
            except (ValueError, TypeError, InvalidInputError) as e:
                log.warning("webhook %s is malformed, skipped: %s", info.key, e, extra={"tenant": tenant})
        return out


# --- delivery ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    timeout: float = 5.0  # seconds an endpoint has to answer one attempt
    max_attempts: int = 10
    first_delay: float = 5.0  # seconds before the second attempt; then x factor, up to max_delay
    factor: float = 3.0
    max_delay: float = 900.0  # SQS's longest message delay
    max_age: float = 24 * 3600.0  # a delivery older than this gives up, whatever its attempts
    breaker_failures: int = 3  # failures in a row that pause an endpoint ...
    breaker_seconds: float = 30.0  # ... for this long

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), with ±20% jitter."""
        base = min(self.max_delay, self.first_delay * self.factor ** (attempt - 1))
        return min(self.max_delay, base * (0.8 + 0.4 * rng()))


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> int:
        """The HTTP status; raises ``OSError`` (or any exception) when there was no answer."""
        ...


class Urllib3Transport:
    """HTTP through urllib3 (already a dependency, via botocore): pooled, no redirects followed,
    no retries of its own (retries are ours, spread over time)."""

    def __init__(self) -> None:
        import urllib3

        self._pool = urllib3.PoolManager(num_pools=64, maxsize=8, retries=False)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> int:
        import urllib3

        r = self._pool.request(
            "POST", url, body=body, headers=dict(headers), timeout=urllib3.Timeout(total=timeout),
            redirect=False, preload_content=True,
        )  # fmt: skip
        return int(r.status)


class DelayedQueue(Protocol):
    def send(self, message: dict[str, Any], *, delay: float = 0) -> None: ...


class SqsDelayedQueue:
    def __init__(self, *, client: Any, url: str) -> None:
        self.client, self.url = client, url

    def send(self, message: dict[str, Any], *, delay: float = 0) -> None:
        try:
            self.client.send_message(
                QueueUrl=self.url,
                MessageBody=json.dumps(message, ensure_ascii=False),
                DelaySeconds=max(0, min(900, round(delay))),
            )
        except (ClientError, BotoCoreError) as e:
            raise TransientError(f"sending to {self.url} failed: {e}") from e


class MemoryDelayedQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], float]] = []

    def send(self, message: dict[str, Any], *, delay: float = 0) -> None:
        self.sent.append((json.loads(json.dumps(message)), delay))


@dataclass(frozen=True)
class Delivery:
    """One event for one subscription, and how far its delivery has got."""

    tenant: str
    subscription: str
    event: dict[str, Any]
    attempt: int = 1  # the attempt about to be made
    first_at: float = 0.0  # Unix time of the first attempt
    last_error: str = ""

    def to_message(self) -> dict[str, Any]:
        return {"webhook_delivery": asdict(self)}


@dataclass
class DeliveryStats:
    delivered: int = 0
    retried: int = 0
    deferred: int = 0  # not attempted: the endpoint's breaker was open
    gave_up: int = 0


class _Breaker:
    """Per subscription: failures in a row, and until when calls are paused (in this process)."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float]) -> None:
        self.policy, self.clock = policy, clock
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, sub: str) -> float:
        with self._lock:
            return max(0.0, self._open_until.get(sub, 0.0) - self.clock())

    def record(self, sub: str, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures.pop(sub, None)
                self._open_until.pop(sub, None)
                return
            n = self._failures.get(sub, 0) + 1
            self._failures[sub] = n
            if n >= self.policy.breaker_failures:
                self._open_until[sub] = self.clock() + self.policy.breaker_seconds


class WebhookService:
    """Consumes the webhooks queue: see the module docstring."""

    def __init__(
        self,
        *,
        subscriptions: SubscriptionStore,
        retries: DelayedQueue,
        dead_letters: DelayedQueue,
        transport: Transport | None = None,
        policy: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.time,
        allow_private: bool = False,
        workers: int = 32,
    ) -> None:
        self.subscriptions = subscriptions
        self.retries = retries
        self.dead_letters = dead_letters
        self.transport = transport or Urllib3Transport()
        self.policy = policy
        self.clock = clock
        self.allow_private = allow_private
        self.workers = workers
        self.breaker = _Breaker(policy, clock)
        self.stats = DeliveryStats()
        self._lock = threading.Lock()

    @classmethod
    def from_components(cls, c: Any) -> WebhookService:
        s = c.settings
        sqs = c.sqs
        return cls(
            subscriptions=SubscriptionStore(store=c.store, bucket=s.data_bucket),
            retries=SqsDelayedQueue(client=sqs, url=s.webhooks_queue_url)
            if s.webhooks_queue_url
            else MemoryDelayedQueue(),
            dead_letters=SqsDelayedQueue(client=sqs, url=s.webhooks_dlq_url)
            if s.webhooks_dlq_url
            else MemoryDelayedQueue(),
            allow_private=s.webhooks_allow_private,
        )

    # --- messages in -----------------------------------------------------------------------------
    def deliveries(self, body: str | Mapping[str, Any]) -> list[Delivery]:
        """What one queue message asks for: an EventBridge change event (one delivery per matching
        subscription) or a retry of one delivery. Raises :class:`InvalidInputError` otherwise."""
        try:
            msg = json.loads(body) if isinstance(body, str) else dict(body)
        except ValueError as e:
            raise InvalidInputError(f"webhooks message is not JSON: {e}") from e
        if not isinstance(msg, dict):
            raise InvalidInputError("webhooks message is not a JSON object")
        if "webhook_delivery" in msg:
            try:
                return [Delivery(**msg["webhook_delivery"])]
            except TypeError as e:
                raise InvalidInputError(f"malformed webhook delivery: {e}") from e
        if (
            msg.get("source") == SOURCE
            and msg.get("detail-type") == DETAIL_TYPE
            and isinstance(msg.get("detail"), dict)
        ):
            event = msg["detail"]
            tenant = str(event.get("tenant", ""))
            now = self.clock()
            return [
                Delivery(tenant, s.id, event, 1, now)
                for s in self.subscriptions.for_tenant(tenant)
                if s.matches(event)
            ]
        raise InvalidInputError(f"not a change event nor a webhook delivery: keys {sorted(msg)[:5]}")

    def handle(self, bodies: Sequence[tuple[str, str]]) -> list[str]:
        """Deliver what a batch of messages ``(message id, body)`` asks for; returns the ids of the
        messages to retry whole (malformed bodies and queue trouble; a failed *delivery* is
        re-queued on its own and its message succeeds)."""
        failed: list[str] = []
        work: list[tuple[str, Delivery]] = []
        for message_id, body in bodies:
            try:
                work.extend((message_id, d) for d in self.deliveries(body))
            except InvalidInputError as e:
                log.error("webhooks message %s left for the dead-letter queue: %s", message_id, e)
                failed.append(message_id)
            except Exception:
                log.exception("reading subscriptions failed; message %s will be retried", message_id)
                failed.append(message_id)
        if not work:
            return failed
        with ThreadPoolExecutor(max_workers=min(self.workers, len(work))) as pool:
            results = list(pool.map(lambda w: self._attempt(w[1]), work))
        for (message_id, _), ok in zip(work, results, strict=True):
            if not ok and message_id not in failed:
                failed.append(message_id)
        return failed

    # --- one delivery ------------------------------------------------------------------------------
    def _attempt(self, d: Delivery) -> bool:
        """Try ``d`` once (unless its endpoint is paused); schedule what comes next. False only when
        scheduling itself failed (the message is then retried whole)."""
        extra = {"tenant": d.tenant, "webhook": d.subscription, "event": d.event.get("id")}
        try:
            sub = self.subscriptions.get(d.tenant, d.subscription)
        except NotFoundError:
            log.info("webhook removed: delivery dropped", extra=extra)
            return True
        try:
            wait = self.breaker.wait(sub.id)
            if wait > 0:
                return self._later(d, wait, attempted=False, error=d.last_error or "endpoint paused")
            error = self._post(sub, d)
            self.breaker.record(sub.id, ok=error is None)
            if error is None:
                with self._lock:
                    self.stats.delivered += 1
                log.info("delivered %s (attempt %d)", d.event.get("id"), d.attempt, extra=extra)
                return True
            log.info("attempt %d failed: %s", d.attempt, error, extra=extra)
            return self._later(d, self.policy.delay(d.attempt), attempted=True, error=error)
        except TransientError:
            log.exception("scheduling a webhook retry failed; the message will be retried", extra=extra)
            return False

    def _post(self, sub: Subscription, d: Delivery) -> str | None:
        """None when the endpoint answered 2xx, else what went wrong."""
        if not self.allow_private:
            try:
                validate_url(sub.url)
            except WebhookError as e:
                return str(e)
        body = json.dumps(d.event, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            **signed_headers(sub.secret, str(d.event.get("id", "")), body),
            "tagsmith-attempt": str(d.attempt),
        }
        try:
            status = self.transport.post(sub.url, body, headers, timeout=self.policy.timeout)
        except Exception as e:
            return f"no answer: {type(e).__name__}: {e}"[:300]
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _later(self, d: Delivery, delay: float, *, attempted: bool, error: str) -> bool:
        nxt = replace(d, attempt=d.attempt + 1 if attempted else d.attempt, last_error=error)
        too_old = self.clock() + delay - d.first_at > self.policy.max_age
        if (attempted and d.attempt >= self.policy.max_attempts) or too_old:
            self.dead_letters.send(nxt.to_message())
            with self._lock:
                self.stats.gave_up += 1
            log.warning(
                "gave up after %d attempts: %s (in the dead-letter queue)", d.attempt, error,
                extra={"tenant": d.tenant, "webhook": d.subscription, "event": d.event.get("id")},
            )  # fmt: skip
            return True
        self.retries.send(nxt.to_message(), delay=delay)
        with self._lock:
            if attempted:
                self.stats.retried += 1
            else:
                self.stats.deferred += 1
        return True
