"""Webhook deliveries: Standard Webhooks signatures, filters, retries spread over time through the
queue, the dead-letter queue, the per-endpoint breaker, and one tenant's slow endpoint not
delaying another's."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
from tagsmith.outbound.webhooks import (
    MemoryDelayedQueue,
    RetryPolicy,
    SubscriptionStore,
    WebhookError,
    WebhookService,
    signed_headers,
    validate_url,
    verify,
)
from tagsmith.storage import MemoryObjectStore


def envelope(
    tenant: str, revision: int = 1, kinds: tuple[str, ...] = ("applied",), model: str = "sku"
) -> str:
    detail = {
        "id": f"evt_{tenant}{revision:030d}"[:36], "tenant": tenant, "key": f"{tenant}/a.jpg", "revision": revision,
        "status": "tagged", "kinds": list(kinds), "changes": [{"model": model, "tag": "x", "before": None, "after": "applied"}],
        "tags": [],
    }  # fmt: skip
    return json.dumps({"source": "tagsmith", "detail-type": "Asset Tags Changed", "detail": detail})


class FakeTransport:
    """Answers per URL: a status, an exception, or a delay then 204."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = dict(answers)
        self.calls: list[tuple[str, float, dict[str, str], bytes]] = []

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> int:
        self.calls.append((url, time.monotonic(), dict(headers), body))
        answer = self.answers[url]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, float):
            time.sleep(min(answer, timeout))
            if answer > timeout:
                raise TimeoutError("read timed out")
            return 204
        return int(answer)


def service(
    answers: Mapping[str, Any], **policy: Any
) -> tuple[WebhookService, SubscriptionStore, FakeTransport]:
    subs = SubscriptionStore(store=MemoryObjectStore(), bucket="data", ttl=0)
    transport = FakeTransport(answers)
    s = WebhookService(
        subscriptions=subs, retries=MemoryDelayedQueue(), dead_letters=MemoryDelayedQueue(),
        transport=transport, policy=RetryPolicy(**policy), allow_private=True,
    )  # fmt: skip
    return s, subs, transport


def test_a_delivery_is_signed_so_that_the_receiver_can_verify_it() -> None:
    s, subs, transport = service({"http://a/": 204})
    sub = subs.add("acme", "http://a/", allow_private=True)
    assert s.handle([("m1", envelope("acme"))]) == []
    [(_, _, headers, body)] = transport.calls
    assert verify(sub.secret, headers, body)
    assert headers["webhook-id"] == json.loads(body)["id"]
    assert not verify(sub.secret, headers, body + b" ")  # tampered
    assert not verify(sub.secret, signed_headers(sub.secret, "x", body, timestamp=1), body)  # replayed late


def test_subscriptions_filter_by_kind_and_model_and_never_cross_tenants() -> None:
    s, subs, transport = service({"http://a/": 204, "http://b/": 204, "http://c/": 204})
    subs.add("acme", "http://a/", kinds=["confirmed"], allow_private=True)
    subs.add("acme", "http://b/", models=["sku"], allow_private=True)
    subs.add("beta", "http://c/", allow_private=True)
    s.handle([("m1", envelope("acme", kinds=("applied",)))])
    assert [c[0] for c in transport.calls] == ["http://b/"]
    with pytest.raises(WebhookError, match="unknown event kinds"):
        subs.add("acme", "http://a/", kinds=["approved"], allow_private=True)


def test_failures_are_retried_later_through_the_queue_then_dead_lettered() -> None:
    s, subs, transport = service({"http://a/": 500}, max_attempts=3, breaker_failures=99)
    subs.add("acme", "http://a/", allow_private=True)
    s.handle([("m1", envelope("acme"))])
    for _ in range(5):  # deliver what was re-queued, as the queue would after its delay
        queued = list(s.retries.sent)  # type: ignore[attr-defined]
        s.retries.sent.clear()  # type: ignore[attr-defined]
        s.handle([(f"r{i}", json.dumps(m)) for i, (m, _) in enumerate(queued)])
    assert len(transport.calls) == 3  # bounded
    [(dead, _)] = s.dead_letters.sent  # type: ignore[attr-defined]
    assert dead["webhook_delivery"]["attempt"] == 4 and dead["webhook_delivery"]["last_error"] == "HTTP 500"
    assert [c[2]["tagsmith-attempt"] for c in transport.calls] == ["1", "2", "3"]


def test_the_backoff_grows_up_to_sqs_longest_delay() -> None:
    policy = RetryPolicy()
    delays = [policy.delay(n, rng=lambda: 0.5) for n in range(1, 9)]
    assert delays == [5.0, 15.0, 45.0, 135.0, 405.0, 900.0, 900.0, 900.0]


def test_an_endpoint_that_keeps_failing_is_paused_instead_of_called() -> None:
    s, subs, transport = service({"http://a/": ConnectionRefusedError("down")}, breaker_failures=2)
    subs.add("acme", "http://a/", allow_private=True)
    s.handle([(f"m{i}", envelope("acme", revision=i)) for i in range(1, 3)])  # two failures: paused
    s.handle([(f"m{i}", envelope("acme", revision=i)) for i in range(3, 8)])
    assert len(transport.calls) == 2
    assert s.stats.deferred == 5 and s.stats.retried == 2  # waiting in the queue, not lost


def test_one_tenants_slow_endpoint_does_not_delay_anothers() -> None:
    s, subs, transport = service({"http://slow/": 2.0, "http://fast/": 204}, timeout=1.0)
    subs.add("slow", "http://slow/", allow_private=True)
    subs.add("fast", "http://fast/", allow_private=True)
    started = time.monotonic()
    s.handle([("m1", envelope("slow", 1)), ("m2", envelope("slow", 2)), ("m3", envelope("fast", 1))])
    fast = [t for url, t, *_ in transport.calls if url == "http://fast/"]
    assert fast and fast[0] - started < 0.2  # called at once, not after the slow one's timeout
    assert s.stats.retried == 2  # the slow endpoint's attempts timed out and wait in the queue


def test_urls_must_be_public_https_unless_the_stack_is_local() -> None:
    with pytest.raises(WebhookError, match="https"):
        validate_url("http://example.com/hook")
    with pytest.raises(WebhookError, match="private or loopback"):
        validate_url("https://127.0.0.1/hook")
    assert validate_url("http://127.0.0.1:8080/hook", allow_private=True)
