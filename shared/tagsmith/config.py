"""Settings: read from the environment in exactly one function, at an entry point, then passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tagsmith.errors import TagsmithError


class ConfigurationError(TagsmithError):
    """A required setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    data_bucket: str
    assets_bucket: str = ""
    training_queue_url: str = ""
    backfill_queue_url: str = ""
    video_jobs_queue_url: str = ""  # long videos run as jobs from this queue; "" = always inline
    video_inline_seconds: float = 180.0  # longer videos become jobs
    video_window_seconds: float = 120.0  # video time per job window
    event_bus: str = ""  # EventBridge bus for change events (tagsmith.outbound); "" = none published
    webhooks_queue_url: str = ""  # the webhooks consumer's queue: where its retries go
    webhooks_dlq_url: str = ""  # where deliveries that gave up go
    # webhook URLs on loopback or private addresses, and plain http: only for a local stack
    webhooks_allow_private: bool = False
    backfill_rate: float = 50.0  # assets per second a backfill queues, at most
    opensearch_url: str = ""
    opensearch_auth: str = ""  # "sigv4" on Amazon OpenSearch Service; "" = none (osmem, local)
    region: str = "us-east-1"
    endpoint_url: str | None = None  # moto or another S3/SQS-compatible endpoint; None = AWS
    encoder_cache_dir: Path = Path.home() / ".cache" / "tagsmith"
    encoder_spec: Path | None = None  # an ONNX encoder spec JSON; None = the built-in EfficientNet-Lite0
    encoder_recipe: str | None = None  # a built-in recipe id (tagsmith.encoder.RECIPES); None = the default
    # the recipes the trainer picks between per model (tagsmith.encoder.CANDIDATE_RECIPES when
    # None and no recipe is pinned; only the pinned recipe when one is)
    encoder_candidates: tuple[str, ...] | None = None
    retrain_every: int = 25  # review corrections of a model that trigger a retrain (0: never)
    max_object_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 100_000_000
    model_cache_seconds: float = 30.0
    sweep_settle_seconds: float = 60.0  # the sweep leaves records younger than this to its next run

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        data_bucket = e.get("TAGSMITH_DATA_BUCKET", "")
        if not data_bucket:
            raise ConfigurationError(
                "TAGSMITH_DATA_BUCKET is not set: name the bucket that holds records and models"
            )
        try:
            return cls(
                data_bucket=data_bucket,
                assets_bucket=e.get("TAGSMITH_ASSETS_BUCKET", ""),
                training_queue_url=e.get("TAGSMITH_TRAINING_QUEUE_URL", ""),
                backfill_queue_url=e.get("TAGSMITH_BACKFILL_QUEUE_URL", ""),
                video_jobs_queue_url=e.get("TAGSMITH_VIDEO_JOBS_QUEUE_URL", ""),
                video_inline_seconds=float(e.get("TAGSMITH_VIDEO_INLINE_SECONDS", 180)),
                video_window_seconds=float(e.get("TAGSMITH_VIDEO_WINDOW_SECONDS", 120)),
                event_bus=e.get("TAGSMITH_EVENT_BUS", ""),
                webhooks_queue_url=e.get("TAGSMITH_WEBHOOKS_QUEUE_URL", ""),
                webhooks_dlq_url=e.get("TAGSMITH_WEBHOOKS_DLQ_URL", ""),
                webhooks_allow_private=e.get("TAGSMITH_WEBHOOKS_ALLOW_PRIVATE", "") in ("1", "true"),
                backfill_rate=float(e.get("TAGSMITH_BACKFILL_RATE", 50)),
                opensearch_url=e.get("TAGSMITH_OPENSEARCH_URL", ""),
                opensearch_auth=e.get("TAGSMITH_OPENSEARCH_AUTH", ""),
                region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
                endpoint_url=e.get("AWS_ENDPOINT_URL") or None,
                encoder_cache_dir=Path(
                    e.get("TAGSMITH_ENCODER_CACHE", str(Path.home() / ".cache" / "tagsmith"))
                ),
                encoder_spec=Path(e["TAGSMITH_ENCODER_SPEC"]) if e.get("TAGSMITH_ENCODER_SPEC") else None,
                encoder_recipe=e.get("TAGSMITH_ENCODER_RECIPE") or None,
                encoder_candidates=(
                    tuple(r.strip() for r in e["TAGSMITH_ENCODER_CANDIDATES"].split(",") if r.strip())
                    if e.get("TAGSMITH_ENCODER_CANDIDATES")
                    else None
                ),
                retrain_every=int(e.get("TAGSMITH_RETRAIN_EVERY", 25)),
                max_object_bytes=int(e.get("TAGSMITH_MAX_OBJECT_BYTES", 64 * 1024 * 1024)),
                max_pixels=int(e.get("TAGSMITH_MAX_PIXELS", 100_000_000)),
                model_cache_seconds=float(e.get("TAGSMITH_MODEL_CACHE_SECONDS", 30)),
                sweep_settle_seconds=float(e.get("TAGSMITH_SWEEP_SETTLE_SECONDS", 60)),
            )
        except ValueError as err:
            raise ConfigurationError(f"a numeric TAGSMITH_* setting is malformed: {err}") from err
