"""Webhook fault run: one tenant's endpoint down for 30 s then answering 500 for 10% of calls,
another tenant's healthy, through the real local stack (moto's EventBridge and SQS, the webhooks
function's poller, real HTTP on loopback).

Phases (seconds from the start): 0-10 both endpoints healthy; 10-40 tenant ``down``'s endpoint is
closed (connection refused); 40-70 it answers 500 to 10% of calls; then both run until every event
has arrived. Each tenant gets ``--rate`` events per second for 70 s, published to the bus as the
ingest path would (:class:`EventBridgePublisher`; synthetic events: this measures delivery, not
tagging). Reported: events lost (published, never accepted), attempts per event (max is bounded by
the retry policy), deliveries dead-lettered, and the healthy tenant's latency (publish -> accepted)
per phase: the ratio of the fault phases to the healthy phase is the isolation figure.

    python -m benchmarks.webhooks              # ~2-3 minutes
    python -m benchmarks.webhooks --rate 4
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from tagsmith.local.stack import LocalStack, StackConfig
from tagsmith.outbound.changes import EventBridgePublisher, event_id
from tagsmith.wiring import build

from tests.webhook_receiver import Receiver

HEALTHY, FAULTY = "healthy", "down"
PHASES = ((0.0, 10.0, "healthy"), (10.0, 40.0, "down 30 s"), (40.0, 70.0, "500 for 10%"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _phase(t: float) -> str:
    return next((name for start, end, name in PHASES if start <= t < end), "after")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(rate: float = 2.0, drain_timeout: float = 300.0) -> dict[str, Any]:
    saved = dict(os.environ)
    home = Path(tempfile.mkdtemp(prefix="tagsmith-webhooks-"))
    stack = LocalStack(config=StackConfig(home=home, moto_port=_port(), opensearch_port=_port()))
    stack.start()
    healthy = Receiver(secrets={}).start()
    faulty = Receiver(secrets={}, seed=11).start()
    faulty_port = 0
    try:
        assert stack.info is not None
        c = build(stack.info.settings())
        for tenant, receiver in ((HEALTHY, healthy), (FAULTY, faulty)):
            sub = c.webhooks.subscriptions.add(tenant, receiver.url(), allow_private=True)
            receiver.secrets[tenant] = sub.secret
        events = boto3.client("events", endpoint_url=stack.info.endpoint_url, region_name="us-east-1")
        publisher = EventBridgePublisher(client=events, bus=stack.info.event_bus)
        sent: dict[str, float] = {}
        start = time.time()
        n = 0
        faulty_down = False
        while (t := time.time() - start) < PHASES[-1][1]:
            if PHASES[1][0] <= t < PHASES[1][1] and not faulty_down:
                faulty_port = faulty.down()  # connection refused from now on
                faulty_down = True
            if t >= PHASES[2][0] and faulty_down:
                faulty.fail_share = 0.1
                faulty.up(faulty_port)
                faulty_down = False
            batch = []
            for tenant in (HEALTHY, FAULTY):
                key = f"{tenant}/asset-{n:05d}.jpg"
                batch.append({
                    "type": "tagsmith.asset.tags-changed", "version": 1, "id": event_id(tenant, key, 1),
                    "tenant": tenant, "key": key, "path": key.split("/", 1)[1], "revision": 1,
                    "status": "tagged", "kinds": ["applied"], "changes": [], "tags": [], "sent_at": time.time(),
                })  # fmt: skip
                sent[key] = time.time()
            publisher.publish(batch)
            n += 1
            time.sleep(max(0.0, start + n / rate - time.time()))
        deadline = time.time() + drain_timeout
        while time.time() < deadline:
            got = set(healthy.latest) | set(faulty.latest)
            if got >= set(sent):
                break
            time.sleep(1.0)
        result: dict[str, Any] = {"rate_per_tenant": rate, "published": len(sent), "load": os.getloadavg()}
        for name, receiver in ((HEALTHY, healthy), (FAULTY, faulty)):
            keys = [k for k in sent if k.startswith(name + "/")]
            first: dict[str, Any] = {}
            attempts: dict[str, int] = {}
            for r in receiver.accepted:
                first.setdefault(r.event["key"], r)
                attempts[r.event["key"]] = max(attempts.get(r.event["key"], 0), r.attempt)
            lost = [k for k in keys if k not in first]
            by_phase: dict[str, list[float]] = {}
            for k in keys:
                if k in first:
                    by_phase.setdefault(_phase(sent[k] - start), []).append(first[k].at - sent[k])
            result[name] = {
                "events": len(keys), "lost": len(lost), "duplicates": len(receiver.accepted) - len(first),
                "max_attempts": max(attempts.values(), default=0), "answered_500": receiver.failures_sent,
                "bad_signatures": receiver.bad_signatures,
                "latency_s": {p: {"p50": round(_pct(v, 0.5), 2), "p95": round(_pct(v, 0.95), 2),
                                  "max": round(max(v), 2)} for p, v in by_phase.items()},
            }  # fmt: skip
        dlq = stack.info.queue_urls["webhooks-dlq"]
        sqs = boto3.client("sqs", endpoint_url=stack.info.endpoint_url, region_name="us-east-1")
        attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        result["dead_lettered"] = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
        h = result[HEALTHY]["latency_s"]
        result["healthy_p95_ratio_fault_vs_clean"] = round(
            max(h.get("down 30 s", {}).get("p95", 0), h.get("500 for 10%", {}).get("p95", 0)) / h["healthy"]["p95"], 2
        )  # fmt: skip
        return result
    finally:
        healthy.stop()
        faulty.stop()
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2.0, help="events per second per tenant")
    args = parser.parse_args()
    print(json.dumps(run(args.rate), indent=1))


if __name__ == "__main__":
    main()
