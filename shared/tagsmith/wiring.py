"""Wiring: the one place that turns :class:`Settings` into adapters and services.

Entry points (Lambda handlers, the CLI, the local stack) call :func:`build`; domain code never
builds an adapter or reads the environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tagsmith.config import ConfigurationError, Settings
from tagsmith.records import Cause
from tagsmith.review import ReviewStore
from tagsmith.storage import ObjectStore, RecordStore

# The services are imported by the properties that build them: `tagsmith record` and `review list`
# need the record store alone, and importing the trainer (scikit-learn, SciPy) or the ingest path
# (video, OCR, the tagger) costs 1-2 s on 2 cores (tests/unit/test_cli_startup.py keeps it so).
if TYPE_CHECKING:
    from tagsmith.assetwriter import AssetWriter
    from tagsmith.backfill import BackfillService, DelayQueue
    from tagsmith.encoder import Encoder
    from tagsmith.encoder.registry import EncoderSet
    from tagsmith.ingest import IngestService
    from tagsmith.ocr import RapidOcrEngine
    from tagsmith.outbound import Outbound, TenantOutputs
    from tagsmith.outbound.webhooks import WebhookService
    from tagsmith.previews import PreviewMaker
    from tagsmith.projections import Projections
    from tagsmith.queues import Queue
    from tagsmith.search import SearchIndex
    from tagsmith.storage.texts import TextCache
    from tagsmith.tagging import Tagger
    from tagsmith.tagmodels import ActiveModels, ModelStore
    from tagsmith.trainer import TrainingService
    from tagsmith.video import VideoTagger
    from tagsmith.videojobs import VideoJobPolicy, VideoJobService


def boto3_client(service: str, settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    # one connection per request in flight: a batch's IO_WORKERS (10) for each of the local
    # runtime's concurrent ingest invocations (3) share one client; botocore's default pool of 10
    # would make the rest open and drop a connection per request
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
    )
    return boto3.client(
        service, region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
    )


def opensearch_index(url: str, *, auth: str = "", region: str = "us-east-1") -> SearchIndex:
    """The search index on ``url``; ``auth="sigv4"`` signs every request with the caller's IAM
    credentials (an Amazon OpenSearch Service domain with fine-grained access control)."""
    from opensearchpy import OpenSearch

    from tagsmith.search import OpenSearchIndex

    if auth == "sigv4":
        import boto3
        from opensearchpy import Urllib3AWSV4SignerAuth

        credentials = boto3.Session().get_credentials()
        signer = Urllib3AWSV4SignerAuth(credentials, region, "es")
        return OpenSearchIndex(client=OpenSearch(hosts=[url], http_auth=signer, timeout=30))
    if auth:
        raise ConfigurationError(f"TAGSMITH_OPENSEARCH_AUTH must be 'sigv4' or empty, got {auth!r}")
    return OpenSearchIndex(client=OpenSearch(hosts=[url], timeout=30))


def load_encoders(settings: Settings) -> EncoderSet:
    """The deployment's encoders: an operator's ONNX encoder alone, or the built-in recipes (the
    default, the trainer's candidates, any other built on first use for a model that names it)."""
    from tagsmith.encoder import (
        CANDIDATE_RECIPES,
        LITE0_ENCODER_ID,
        RECIPES,
        EncoderSpec,
        OnnxEncoder,
        baseline_encoder,
        feature_encoder,
    )
    from tagsmith.encoder.registry import EncoderSet, UnknownEncoderError

    if settings.encoder_spec is not None:
        return EncoderSet.of(OnnxEncoder(EncoderSpec.from_json_file(settings.encoder_spec)))
    named = [settings.encoder_recipe] if settings.encoder_recipe else []
    for recipe in [*named, *(settings.encoder_candidates or ())]:
        if recipe not in RECIPES:
            raise ConfigurationError(
                f"encoder recipe {recipe!r} (TAGSMITH_ENCODER_RECIPE / TAGSMITH_ENCODER_CANDIDATES) is not "
                f"a built-in recipe; known: {', '.join(sorted(RECIPES))}"
            )
    default = settings.encoder_recipe or CANDIDATE_RECIPES[0]
    if settings.encoder_candidates is not None:
        candidates: tuple[str, ...] = settings.encoder_candidates
    else:
        candidates = (default,) if settings.encoder_recipe else CANDIDATE_RECIPES
    cache = settings.encoder_cache_dir

    def build(encoder_id: str) -> Encoder:
        if encoder_id == LITE0_ENCODER_ID:
            return baseline_encoder(cache)
        if encoder_id not in RECIPES:
            raise UnknownEncoderError(f"encoder {encoder_id!r} is not a built-in recipe")
        return feature_encoder(cache, encoder_id)

    return EncoderSet(default=build(default), candidates=candidates, factory=build)


@dataclass
class Components:
    """Everything an entry point needs, built lazily so a handler pays only for what it uses."""

    settings: Settings
    store: ObjectStore
    index: SearchIndex
    encoder_override: Encoder | None = None
    backfill_queue_override: DelayQueue | None = None

    @cached_property
    def sqs(self) -> Any:
        """An SQS client (handlers use it to shorten failed messages' retry delay)."""
        return boto3_client("sqs", self.settings)

    @cached_property
    def encoders(self) -> EncoderSet:
        from tagsmith.encoder.registry import EncoderSet

        if self.encoder_override is not None:
            return EncoderSet.of(self.encoder_override)
        return load_encoders(self.settings)

    @property
    def encoder(self) -> Encoder:
        """The default encoder (the one a model trains with when there is no choice)."""
        return self.encoders.default

    @cached_property
    def records(self) -> RecordStore:
        return RecordStore(store=self.store, bucket=self.settings.data_bucket)

    @cached_property
    def models(self) -> ModelStore:
        from tagsmith.tagmodels import ModelStore

        return ModelStore(store=self.store, bucket=self.settings.data_bucket)

    @cached_property
    def active_models(self) -> ActiveModels:
        from tagsmith.tagmodels import ActiveModels

        return ActiveModels(models=self.models, ttl=self.settings.model_cache_seconds)

    @cached_property
    def reviews(self) -> ReviewStore:
        return ReviewStore(store=self.store, bucket=self.settings.data_bucket)

    @cached_property
    def ocr(self) -> RapidOcrEngine:
        from tagsmith.ocr import RapidOcrEngine

        # loads its models on first use: only tenants whose settings turn OCR on, or whose tag
        # models read text, pay for it
        return RapidOcrEngine()

    @cached_property
    def texts(self) -> TextCache:
        from tagsmith.storage.texts import TextCache

        return TextCache(store=self.store, bucket=self.settings.data_bucket)

    @cached_property
    def tagger(self) -> Tagger:
        from tagsmith.storage import EmbeddingCache
        from tagsmith.tagging import Limits, Tagger

        return Tagger(
            encoders=self.encoders,
            models=self.active_models,
            embeddings=EmbeddingCache(store=self.store, bucket=self.settings.data_bucket),
            limits=Limits(
                max_object_bytes=self.settings.max_object_bytes, max_pixels=self.settings.max_pixels
            ),
        )

    @cached_property
    def previews(self) -> PreviewMaker:
        from tagsmith.previews import PreviewMaker

        return PreviewMaker(
            store=self.store,
            data_bucket=self.settings.data_bucket,
            max_pixels=self.settings.max_pixels,
            max_bytes=self.settings.max_object_bytes,
        )

    @cached_property
    def projections(self) -> Projections:
        """Review items, queue entries, the search document and previews of records (never loads
        the encoder: the console and the sweep use it too)."""
        from tagsmith.projections import Projections

        def taxonomies(tenant: str) -> dict[str, Any]:
            return {m.model_id: m.taxonomy for m in self.active_models.for_tenant(tenant)}

        return Projections(
            store=self.store,
            data_bucket=self.settings.data_bucket,
            reviews=self.reviews,
            index=self.index,
            taxonomies=taxonomies,
            previews=self.previews,
        )

    @cached_property
    def ingest(self) -> IngestService:
        from tagsmith.ingest import IngestService
        from tagsmith.video import TenantMediaSettings

        return IngestService(
            store=self.store,
            records=self.records,
            tagger=self.tagger,
            reviews=self.reviews,
            index=self.index,
            ocr=self.ocr,
            texts=self.texts,
            media_settings=TenantMediaSettings(store=self.store, bucket=self.settings.data_bucket),
            video=self.video,
            video_jobs=self.video_jobs,
            outbound=self.outbound,
            projections=self.projections,
            writer=self.writer,
        )

    @cached_property
    def video(self) -> VideoTagger:
        """Video scanning and segmenting, shared by inline ingestion and video jobs."""
        from tagsmith.video import VideoTagger

        return VideoTagger(tagger=self.tagger)

    @cached_property
    def writer(self) -> AssetWriter:
        """Asset records and what follows them, for ingestion and video jobs alike."""
        from tagsmith.assetwriter import AssetWriter

        return AssetWriter(
            store=self.store,
            records=self.records,
            projections=self.projections,
            encoder_key=lambda tenant: self.tagger.encoder_key(tenant),
            outbound=self.outbound,
        )

    @cached_property
    def video_jobs(self) -> VideoJobService | None:
        """Long videos as resumable jobs on the video-jobs queue (None without one: tagged inline)."""
        from tagsmith.queues import SqsQueue
        from tagsmith.videojobs import VideoJobPolicy

        if not self.settings.video_jobs_queue_url:
            return None
        queue = SqsQueue(client=boto3_client("sqs", self.settings), url=self.settings.video_jobs_queue_url)
        policy = VideoJobPolicy(
            inline_seconds=self.settings.video_inline_seconds,
            window_seconds=self.settings.video_window_seconds,
        )
        return self.video_job_service(queue, policy)

    def video_job_service(
        self, queue: Queue, policy: VideoJobPolicy, *, clock: Callable[[], float] = time.time
    ) -> VideoJobService:
        """A :class:`VideoJobService` on ``queue`` (tests give a memory queue and a clock)."""
        from tagsmith.videojobs import VideoJobService

        return VideoJobService(
            store=self.store,
            records=self.records,
            tagger=self.tagger,
            video=self.video,
            writer=self.writer,
            # ingestion's rule, looked up when a job finishes: ingestion itself starts the jobs
            is_current=lambda record, source, tenant: self.ingest.is_current(record, source, tenant),
            queue=queue,
            ocr=self.ocr,
            policy=policy,
            clock=clock,
        )

    @cached_property
    def output_settings(self) -> TenantOutputs:
        from tagsmith.outbound import TenantOutputs

        return TenantOutputs(store=self.store, bucket=self.settings.data_bucket)

    @cached_property
    def outbound(self) -> Outbound:
        """Change events (when ``TAGSMITH_EVENT_BUS`` names a bus), S3 object tags and XMP sidecars
        (when a tenant turns them on): what every record writer calls after writing."""
        from tagsmith.outbound import EventBridgePublisher, Outbound, S3ObjectTagging

        publisher = (
            EventBridgePublisher(client=boto3_client("events", self.settings), bus=self.settings.event_bus)
            if self.settings.event_bus
            else None
        )
        client = getattr(self.store, "client", None)  # object tags need S3 itself
        return Outbound(
            records=self.records,
            settings=self.output_settings,
            models=self.active_models,
            publisher=publisher,
            tagging=S3ObjectTagging(client=client) if client is not None else None,
        )

    @cached_property
    def webhooks(self) -> WebhookService:
        from tagsmith.outbound.webhooks import WebhookService

        return WebhookService.from_components(self)

    @cached_property
    def trainer(self) -> TrainingService:
        from tagsmith.trainer import TrainingService

        return TrainingService(tagger=self.tagger, models=self.models, ocr=self.ocr, texts=self.texts)

    @cached_property
    def backfill(self) -> BackfillService:
        from tagsmith.backfill import BackfillOptions, BackfillService, MemoryDelayQueue, SqsDelayQueue

        queue = self.backfill_queue_override or (
            SqsDelayQueue(client=boto3_client("sqs", self.settings), url=self.settings.backfill_queue_url)
            if self.settings.backfill_queue_url
            else MemoryDelayQueue()
        )

        def active(tenant: str) -> dict[str, str]:
            return {
                m: v for m in self.models.model_ids(tenant) if (v := self.models.active_version(tenant, m))
            }

        def cached(tenant: str) -> dict[str, str]:
            return {m.model_id: m.version for m in self.active_models.for_tenant(tenant)}

        return BackfillService(
            store=self.store,
            data_bucket=self.settings.data_bucket,
            assets_bucket=self.settings.assets_bucket,
            queue=queue,
            ingest=lambda refs: self.ingest.ingest(refs, cause=Cause.BACKFILL),
            active_models=active,
            refresh_models=self.active_models.invalidate,
            cached_models=cached,
            default_options=BackfillOptions(rate=self.settings.backfill_rate),
        )


def build(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    index: SearchIndex | None = None,
    encoder: Encoder | None = None,
) -> Components:
    """Components for ``settings``; any adapter may be passed in (tests, the local CLI)."""
    if store is None:
        from tagsmith.storage import S3ObjectStore

        store = S3ObjectStore(client=boto3_client("s3", settings))
    if index is None:
        if settings.opensearch_url:
            index = opensearch_index(
                settings.opensearch_url, auth=settings.opensearch_auth, region=settings.region
            )
        else:
            from tagsmith.search import InMemorySearchIndex

            index = InMemorySearchIndex()
    return Components(settings=settings, store=store, index=index, encoder_override=encoder)
