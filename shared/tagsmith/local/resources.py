"""The one definition of Tagsmith's queues, buckets and event wiring.

The local stack provisions from it; the AWS template is checked against it, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class QueueDef:
    name: str
    visibility_timeout: int  # seconds; >= the consuming function's timeout (failures retry sooner)
    max_receive_count: int  # deliveries before the dead-letter queue takes the message
    dlq_retention: int = 14 * 24 * 3600

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq"


@dataclass(frozen=True)
class NotificationDef:
    bucket: str  # logical bucket name: "assets" or "data"
    queue: str  # logical queue name
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class RuleDef:
    """An EventBridge rule on the change-event bus that feeds one queue (one rule per target)."""

    name: str  # logical name
    queue: str  # logical queue name
    source: str = "tagsmith"
    detail_types: tuple[str, ...] = ("Asset Tags Changed",)

    def pattern(self) -> dict[str, list[str]]:
        return {"source": [self.source], "detail-type": list(self.detail_types)}


@dataclass(frozen=True)
class FunctionDef:
    name: str
    handler: str  # functions/<folder>/handler.handler
    queue: str | None  # SQS source (logical name) or None for HTTP
    batch_size: int = 10
    max_concurrency: int = 10  # AWS: the event source mapping's MaximumConcurrency
    # The local runtime's invocations at once (<= max_concurrency): its pollers share this
    # machine's cores, so only I/O-bound functions get more than one (docs/benchmarks.md, issue 15)
    local_concurrency: int = 1
    memory_mb: int = 2048
    timeout: int = 60
    routes: tuple[str, ...] = ()  # HTTP API routes ("GET /v1/search") for functions without a queue
    schedule: str | None = (
        None  # an EventBridge schedule ("rate(15 minutes)"); locally, StackConfig's interval
    )


@dataclass(frozen=True)
class StackDef:
    prefix: str = "tagsmith"
    buckets: tuple[str, ...] = ("assets", "data")
    queues: tuple[QueueDef, ...] = field(
        default_factory=lambda: (
            # twice the function's timeout: a batch of 10 photos takes 1-5 s, an inline short video
            # up to the 60 s timeout; a message that fails is brought back after 10-40 s by the
            # handler (tagsmith.sqsbatch.RetryBackoff), so the timeout only covers a crashed
            # invocation (redeliveries are idempotent)
            QueueDef("ingest", visibility_timeout=120, max_receive_count=3),
            # change events for the webhooks function (the event bus's rule "webhooks"), and that
            # function's own delayed retries; deliveries that give up go to its DLQ
            QueueDef("webhooks", visibility_timeout=180, max_receive_count=5),
            QueueDef("training", visibility_timeout=960, max_receive_count=2),
            QueueDef("backfill", visibility_timeout=240, max_receive_count=3),
            # long videos, one job step per message (tagsmith.videojobs): its own queue because a
            # step runs for up to 15 minutes (ingest's messages time out after 2), and its own DLQ
            # and concurrency so long videos can never hold up the uploads behind them
            QueueDef("video-jobs", visibility_timeout=960, max_receive_count=3),
        )
    )
    notifications: tuple[NotificationDef, ...] = (
        NotificationDef("assets", "ingest"),
        # deletions (and, in a versioned bucket, delete markers): tombstone, unindex, close reviews
        NotificationDef("assets", "ingest", events=("s3:ObjectRemoved:*",)),
        NotificationDef("data", "training", prefix="tenants/", suffix=".train.json"),
        # a model version promoted (tenants/<t>/models/<m>/active.json written) -> re-tag the library
        NotificationDef("data", "backfill", prefix="tenants/", suffix="/active.json"),
    )
    event_bus: str = "changes"  # the custom EventBridge bus change events are published on
    rules: tuple[RuleDef, ...] = (RuleDef("webhooks", "webhooks"),)
    functions: tuple[FunctionDef, ...] = (
        # Memory buys CPU here, not room: peak RSS stays under 0.6 GB over 1,000 photos (benchmarks.
        # coldstart; docs/deploy.md, "Memory"), but the encoder runs two threads, and 3,008 MB gives
        # about 1.7 vCPU where 2,048 MB gave 1.16: each batch tags ~1.5x sooner for about the same
        # cost per photo (billed GB-s scale with memory, CPU-bound time shrinks in proportion).
        # Locally one invocation at a time: two writing one asset's review item at once can leave a
        # stale queue entry until the sweep deletes it (ReviewStore.put reads, then writes; make
        # faults with TAGSMITH_INGEST_CONCURRENCY=3 counted 3 in 300); docs/benchmarks.md, issue 15
        FunctionDef(
            "ingest", "functions/ingest/handler.handler", "ingest", batch_size=10, memory_mb=3008, timeout=60
        ),
        FunctionDef(
            "train",
            "functions/train/handler.handler",
            "training",
            batch_size=1,
            max_concurrency=2,
            memory_mb=3008,
            timeout=900,
        ),
        FunctionDef(
            "search",
            "functions/search/handler.handler",
            None,
            memory_mb=512,
            timeout=10,
            # the programmatic search API; the console's own search page lives at /search
            routes=("GET /v1/search",),
        ),
        # the review console (pages, its JSON API, asset previews) behind the same HTTP API
        FunctionDef(
            "review",
            "functions/review/handler.handler",
            None,
            memory_mb=1024,
            timeout=29,  # API Gateway gives an integration at most 30 s
            routes=(
                "GET /",
                "GET /review",
                "GET /search",
                "GET /static/{proxy+}",
                "GET /api/{proxy+}",
                "POST /api/{proxy+}",
            ),
        ),
        # steps of long-video jobs; the time a step may take is what its windows are planned against
        FunctionDef(
            "video",
            "functions/video/handler.handler",
            "video-jobs",
            batch_size=1,
            max_concurrency=4,
            memory_mb=3008,
            timeout=900,
        ),
        # webhook deliveries: each attempt bounded by its timeout (5 s), a batch's deliveries at once
        FunctionDef(
            "webhooks",
            "functions/webhooks/handler.handler",
            "webhooks",
            batch_size=10,
            max_concurrency=5,
            memory_mb=512,
            timeout=30,
        ),
        # projections checked against the records and repaired (review items, previews, the search
        # index: tagsmith.sweep); a sweep reads only the records written since the last one
        FunctionDef(
            "sweep",
            "functions/sweep/handler.handler",
            None,
            memory_mb=1024,
            timeout=900,
            schedule="rate(15 minutes)",
        ),
        # below ingest's concurrency on purpose: a re-tag of the whole library must not starve uploads
        FunctionDef(
            "backfill",
            "functions/backfill/handler.handler",
            "backfill",
            batch_size=4,
            max_concurrency=4,
            timeout=120,
        ),
    )

    def bucket_name(self, logical: str) -> str:
        return f"{self.prefix}-{logical}"

    def queue_name(self, logical: str) -> str:
        return f"{self.prefix}-{logical}"

    def bus_name(self) -> str:
        return f"{self.prefix}-{self.event_bus}"

    def rule_name(self, logical: str) -> str:
        return f"{self.prefix}-{logical}"

    def queue(self, logical: str) -> QueueDef:
        return next(q for q in self.queues if q.name == logical)


STACK = StackDef()
