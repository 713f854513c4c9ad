"""Ingestion: an object-created event becomes an asset record, review items and a search document.

Media-type dispatch: the first bytes decide (:func:`tagsmith.video.sniff_media`). Images are
decoded in memory and embedded in one batch per tenant; videos are streamed from the store and
handled one at a time by :class:`tagsmith.video.VideoTagger` (segments, thumbnails). OCR runs on
both when the tenant's settings turn it on (``tenants/<t>/tenant.json``, off by default), and the
tag models' text rules then apply to what it read. On images OCR also runs, whatever those settings
say, when an active tag model of the tenant reads text (:attr:`TagModel.text`): the text is read
before the models score the image (or reused: from the record when it describes the same content
with the same engine, else from the per-tenant OCR cache), and an OCR failure falls back to the
models' image-only scoring (logged; the record then has no ``ocr_engine``, so a reprocessing reads
the text again). Videos are scored on image features only.

Order matters: the record (source of truth) is written first, then review items, then the index.
A batch's objects are read, and their records and review items written, side by side
(:func:`tagsmith.concurrency.map_io`: each object's own writes keep that order, and a record is still
a compare-and-swap); the search documents of a tenant's tagged records then go in one bulk request,
and a document that fails there fails its object's message alone.
Every step is idempotent, keyed on bucket, key and ETag: a redelivered event whose record already
describes that object version with the same model versions changes nothing (it only re-projects
the record into the index, which repairs a crash between the two writes).

Per object the outcome is one of:
* ``tagged`` / ``unchanged``: fine;
* ``failed``: the object itself is bad (not an image or video, empty, too large, an undecodable
  codec); the reason is on the record and the message is NOT retried;
* ``rejected``: the key is outside any tenant prefix; only a log line can say so;
* ``skipped``: the object no longer exists;
* ``queued``: a long video became a resumable job (:mod:`tagsmith.videojobs`); its record is
  written when the job's last step has run;
* an exception (transient): the caller reports the message as a batch failure so it is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tagsmith.assetwriter import AssetWriter, Current, IngestOutcome, log_outcome
from tagsmith.concurrency import map_io
from tagsmith.errors import (
    InvalidInputError,
    InvalidKeyError,
    NotFoundError,
    TagsmithError,
    UnsupportedMediaError,
)
from tagsmith.events import ObjectRef
from tagsmith.keys import AssetKey, parse_asset_key
from tagsmith.previews import PreviewMaker, preview_from, preview_key
from tagsmith.projections import Projections
from tagsmith.records import AssetRecord, AssetStatus, Cause, SourceObject, TagState, TextLine
from tagsmith.review import ReviewStore
from tagsmith.storage import ObjectStore, RecordStore
from tagsmith.storage.base import ObjectInfo
from tagsmith.tagging import PreparedImage, Proposal, Tagger
from tagsmith.tagmodels.text_rules import apply_text_rules
from tagsmith.video import (
    SNIFF_BYTES,
    MediaKind,
    MediaSettings,
    SamplingPolicy,
    TenantMediaSettings,
    VideoReader,
    VideoTagger,
    sniff_media,
)
from tagsmith.videojobs import VideoJobGaveUpError

if TYPE_CHECKING:
    from tagsmith.ocr import OcrEngine
    from tagsmith.outbound import Outbound
    from tagsmith.search import SearchIndex
    from tagsmith.storage.texts import TextCache
    from tagsmith.videojobs import VideoJobService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoJob:
    """A video found by ``_prepare``: processed after the batch's images, one at a time."""

    asset: AssetKey
    source: SourceObject
    current: Current


class IngestService:
    def __init__(
        self,
        *,
        store: ObjectStore,
        records: RecordStore,
        tagger: Tagger,
        reviews: ReviewStore,
        index: SearchIndex,
        video: VideoTagger | None = None,
        ocr: OcrEngine | None = None,
        media_settings: TenantMediaSettings | None = None,
        texts: TextCache | None = None,
        video_jobs: VideoJobService | None = None,
        outbound: Outbound | None = None,
        projections: Projections | None = None,
        writer: AssetWriter | None = None,
    ) -> None:
        self.store = store
        self.records = records
        self.tagger = tagger
        self.reviews = reviews
        self.index = index
        self.outbound = outbound  # change events, object tags, sidecars (None: none of them)
        self.video = video or VideoTagger(tagger=tagger)
        self.ocr = ocr  # None: no OCR, whatever the tenants' settings say
        self.media_settings = media_settings
        self.texts = texts  # OCR results by content hash: read once, reused by training
        # review items and their queue entries, the search document, previews: written after the
        # record and repaired from it (a redelivery of a current record makes them whole again)
        self.projections = projections or Projections(
            store=store,
            data_bucket=records.bucket,
            reviews=reviews,
            index=index,
            taxonomies=self._taxonomies,
            previews=PreviewMaker(
                store=store,
                data_bucket=records.bucket,
                max_pixels=tagger.limits.max_pixels,
                max_bytes=tagger.limits.max_object_bytes,
            ),
        )
        # the record and what follows it (shared with video jobs, which commit what they tag)
        self.writer = writer or AssetWriter(
            store=store,
            records=records,
            projections=self.projections,
            encoder_key=tagger.encoder_key,
            outbound=outbound,
        )
        # long videos become resumable jobs on their own queue; without one they are tagged inline
        self.video_jobs = video_jobs

    def ingest(
        self, refs: Sequence[ObjectRef], *, cause: Cause = Cause.UPLOAD
    ) -> list[IngestOutcome | Exception]:
        """Ingest a batch; returns one outcome (or the transient exception) per ref, in order.
        ``cause`` is what the records' change events report (``backfill`` for a re-tag)."""
        results: list[IngestOutcome | Exception | None] = [None] * len(refs)
        todo: list[tuple[int, AssetKey, SourceObject, Current, PreparedImage]] = []
        videos: list[tuple[int, VideoJob]] = []
        # Each object's HEAD, record GET and object GET (and decode: Pillow releases the GIL) run
        # side by side: one after another they were most of a batch's wall time on S3.
        steps = map_io(lambda ref: self._prepare_or_error(ref, cause), refs)
        for i, step in enumerate(steps):
            if isinstance(step, Exception | IngestOutcome):
                results[i] = step
            elif isinstance(step, VideoJob):
                videos.append((i, step))
            else:
                todo.append((i, *step))
        if todo:
            self._tag(todo, results, cause)
        self._publish(results)  # images and bad objects: videos publish as they commit
        for i, job in videos:
            try:
                results[i] = self._ingest_video(job, cause)
            except Exception as e:  # transient (or a bug): this video alone is retried
                log.exception("video ingest failed", extra={"tenant": job.asset.tenant, "key": job.asset.key})
                results[i] = e
        final = [r if r is not None else RuntimeError("no outcome") for r in results]
        for outcome in final:
            if isinstance(outcome, IngestOutcome):
                log_outcome("ingest", outcome)
        return final

    # --- steps ---------------------------------------------------------------------------------
    def _publish(self, results: list[IngestOutcome | Exception | None]) -> None:
        """Outbound projections of the records just written (or found unpublished by a redelivery),
        one batch; an asset whose projection failed gets the error, so its message is retried."""
        if self.outbound is None:
            return
        records = [r.record for r in results if isinstance(r, IngestOutcome) and r.record is not None]
        errors = self.outbound.after_write(records)
        for i, r in enumerate(results):
            if isinstance(r, IngestOutcome) and r.record is not None and r.record.key in errors:
                results[i] = errors[r.record.key]

    def _prepare_or_error(
        self, ref: ObjectRef, cause: Cause
    ) -> IngestOutcome | VideoJob | tuple[AssetKey, SourceObject, Current, PreparedImage] | Exception:
        """:meth:`_prepare`, with a transient failure (or a bug) returned as this object's outcome."""
        try:
            return self._prepare(ref, cause)
        except TagsmithError as e:
            if isinstance(e, InvalidInputError):
                raise AssertionError("invalid input must be handled in _prepare") from e
            return e
        except Exception as e:  # an unexpected bug: retry, then the DLQ keeps the message
            log.exception("ingest failed unexpectedly", extra={"key": ref.key})
            return e

    def _prepare(
        self, ref: ObjectRef, cause: Cause = Cause.UPLOAD
    ) -> IngestOutcome | VideoJob | tuple[AssetKey, SourceObject, Current, PreparedImage]:
        try:
            asset = parse_asset_key(ref.key)
        except InvalidKeyError as e:
            log.warning(
                "rejected object outside any tenant: %s", e, extra={"bucket": ref.bucket, "key": ref.key}
            )
            return IngestOutcome(ref.key, "rejected", message=str(e))
        # One GET gives the object's info and, unless it is larger than any image may be, its
        # bytes: a HEAD before it was one request of ten per photo. A redelivery reads the bytes
        # it then does not need; redeliveries are rare, new uploads are not. A key named like a
        # video gets a HEAD: its head is sniffed from a stream below, it is never read whole.
        limit = self.tagger.limits.max_object_bytes
        if sniff_media(b"", content_type=None, key=ref.key) is MediaKind.VIDEO:
            head = self.store.head(ref.bucket, ref.key)
            got: tuple[ObjectInfo, bytes | None] | None = None if head is None else (head, None)
        else:
            got = self.store.get_small(ref.bucket, ref.key, limit)
        if got is None:
            log.info("object is gone, nothing to do", extra={"tenant": asset.tenant, "key": ref.key})
            return IngestOutcome(ref.key, "skipped", asset.tenant, message="object no longer exists")
        info, small = got
        source = SourceObject(ref.bucket, ref.key, info.etag, info.size)
        current = self.records.get(asset)
        existing = current[0] if current else None
        if existing is not None and self.is_current(existing, source, asset.tenant):
            # A redelivery (or a retry after a crash or a timeout mid-commit): the record is done,
            # but what is written after it may not be. Repair every projection, not just the index.
            repair = self.projections.ensure(existing)
            message = f"repaired {repair.total} projections" if repair.total else ""
            return IngestOutcome(ref.key, "unchanged", asset.tenant, existing, message)
        try:
            if info.size == 0:
                raise InvalidInputError("empty object: 0 bytes; upload the file again")
            # Named like a video or too large for an image: sniff a streamed head before deciding (a
            # video is read on demand, never whole). Anything else was read whole: sniffed now.
            if small is None:
                if self._media_kind(ref.bucket, ref.key, info.content_type) is MediaKind.VIDEO:
                    return VideoJob(asset, source, current)
                if info.size > limit:
                    raise UnsupportedMediaError(  # what Tagger.prepare says, without reading it
                        f"object is {info.size:,} bytes, over the {limit:,}-byte limit for images"
                    )
            body = small if small is not None else self.store.get(ref.bucket, ref.key).body
            if (
                sniff_media(body[:SNIFF_BYTES], content_type=info.content_type, key=ref.key)
                is MediaKind.VIDEO
            ):
                return VideoJob(asset, source, current)  # a video named like an image
            prepared = self.tagger.prepare(body)
            prepared = replace(
                prepared,
                preview=preview_from(body, prepared.decoded, max_pixels=self.tagger.limits.max_pixels),
            )
        except NotFoundError:
            return IngestOutcome(ref.key, "skipped", asset.tenant, message="object no longer exists")
        except InvalidInputError as e:
            return self.writer.fail(asset, source, e, cause)
        return asset, source, current, prepared

    def is_current(self, record: AssetRecord, source: SourceObject, tenant: str) -> bool:
        """Whether ``record`` already describes this object version as the tenant's models see it now."""
        if record.source.etag != source.etag or record.source.bucket != source.bucket:
            return False
        if record.status is AssetStatus.FAILED:
            # the same bad bytes fail the same way: do not redo the work (unless a video job gave
            # up for reasons that were not the file's)
            return record.failure is None or record.failure.code != VideoJobGaveUpError.code
        models = {m.model_id: m.version for m in self.tagger.active_models(tenant)}
        if self._ocr_for(tenant, video=record.duration is not None) is not None and record.ocr_engine is None:
            return False  # the tenant turned OCR on since: read the text now
        return record.models == models and record.encoder_id == self.tagger.encoder_key(tenant)

    def _tag(
        self,
        todo: list[tuple[int, AssetKey, SourceObject, Current, PreparedImage]],
        results: list[IngestOutcome | Exception | None],
        cause: Cause = Cause.UPLOAD,
    ) -> None:
        by_tenant: dict[str, list[int]] = {}
        for n, (_, asset, *_rest) in enumerate(todo):
            by_tenant.setdefault(asset.tenant, []).append(n)
        for tenant, members in by_tenant.items():
            try:
                # inside the try: reading the tenant's models may fail (an unloadable model), and
                # that must fail this tenant's messages only, never the rest of the batch
                ocr = self._ocr_for(tenant, video=False)
                embeddings = self.tagger.embed_for_models(tenant, [todo[n][4] for n in members])
                read = [self._text_for(ocr, *todo[n][1:]) if ocr is not None else None for n in members]
                texts = [None if lines is None else "\n".join(x.text for x in lines) for lines in read]
                proposals = self.tagger.propose(
                    tenant, embeddings, texts, ocr_engine=ocr.engine_id if ocr is not None else None
                )
            except Exception as e:  # the whole tenant batch is retried
                log.exception("tagging failed for this tenant's objects", extra={"tenant": tenant})
                for n in members:
                    results[todo[n][0]] = e
                continue

            def commit(
                job: tuple[int, Proposal, list[TextLine] | None], ocr: OcrEngine | None = ocr
            ) -> IngestOutcome | Exception:
                n, proposal, lines = job
                _, asset, source, current, prepared = todo[n]
                try:
                    return self._commit(asset, source, prepared, proposal, current, ocr, lines, cause)
                except Exception as e:
                    log.exception("committing tags failed", extra={"tenant": asset.tenant, "key": asset.key})
                    return e

            # Each asset's preview, record (compare-and-swap) and review items are written side by
            # side; the search documents of the records written then go in one bulk request.
            committed = map_io(commit, list(zip(members, proposals, read, strict=True)))
            for n, outcome in zip(members, committed, strict=True):
                results[todo[n][0]] = outcome
            written = [
                (todo[n][0], r.record)
                for n, r in zip(members, committed, strict=True)
                if isinstance(r, IngestOutcome) and r.status == "tagged" and r.record is not None
            ]
            failed = self.projections.project_many([record for _, record in written])
            for i, record in written:
                if record.key in failed:
                    results[i] = failed[record.key]

    def _commit(
        self,
        asset: AssetKey,
        source: SourceObject,
        prepared: PreparedImage,
        proposal: Proposal,
        current: Current,
        ocr: OcrEngine | None = None,
        lines: list[TextLine] | None = None,
        cause: Cause = Cause.UPLOAD,
    ) -> IngestOutcome:
        """``lines``: what ``ocr`` read (None: OCR did not run or failed)."""
        decoded = prepared.decoded
        if lines:
            proposal = self._apply_text_rules(asset.tenant, proposal, lines)
        if prepared.preview is not None:  # written before the record that describes this version
            self.store.put(
                self.records.bucket,
                preview_key(asset.tenant, asset.path, source.etag),
                prepared.preview,
                content_type="image/jpeg",
            )

        def change(record: AssetRecord | None) -> AssetRecord | None:
            if self.writer.deleted_meanwhile(record, source):
                return None
            return self.writer.tagged_record(
                asset, source, proposal, record,
                media_type=decoded.mime, width=decoded.width, height=decoded.height,
                content_sha256=prepared.sha256,
                text_lines=tuple(lines or ()),
                ocr_engine=ocr.engine_id if ocr is not None and lines is not None else None,
            )  # fmt: skip

        record = self.records.update(asset, change, cause=cause, known=current)
        assert record is not None
        if record.status is AssetStatus.DELETED:
            return self.writer.skipped_deleted(asset, record)
        previous = current[0] if current else None
        self.projections.sync_reviews(record, previous, set(proposal.models))
        # the search document: the caller indexes the batch's records in one request
        if previous is not None and previous.source.etag != record.source.etag:
            self.writer.delete_stale_thumbnails(record)  # the replaced version's preview (or video frames)
        for t in record.tags:
            if t.source.value == "ai":
                log.info(
                    "%s %s/%s confidence %.2f (threshold %.2f)",
                    "applied" if t.state is TagState.APPLIED else "routed to review",
                    t.model,
                    t.tag,
                    t.confidence or 0.0,
                    t.threshold or 0.0,
                    extra={"tenant": asset.tenant, "key": asset.key},
                )
        return IngestOutcome(asset.key, "tagged", asset.tenant, record)

    # --- media dispatch, video and OCR ------------------------------------------------------------
    def _media_kind(self, bucket: str, key: str, content_type: str | None) -> MediaKind:
        with self.store.open(bucket, key) as f:
            head = f.read(SNIFF_BYTES)
        return sniff_media(head, content_type=content_type, key=key)

    def _settings(self, tenant: str) -> MediaSettings:
        return self.media_settings.for_tenant(tenant) if self.media_settings else MediaSettings()

    def _ocr_for(self, tenant: str, *, video: bool) -> OcrEngine | None:
        if self.ocr is None:
            return None
        settings = self._settings(tenant)
        if video:
            return self.ocr if settings.ocr_video else None
        # a tag model that reads text needs it, whatever the search setting says
        return self.ocr if settings.ocr_images or self.tagger.reads_text(tenant) else None

    def _text_for(
        self, ocr: OcrEngine, asset: AssetKey, source: SourceObject, current: Current, prepared: PreparedImage
    ) -> list[TextLine] | None:
        """The image's text as ``ocr`` reads it: from the record when it already holds that for
        the same content, else from the tenant's OCR cache, else read now (and cached). None when
        OCR failed (the models then score the image alone)."""
        record = current[0] if current else None
        if (
            record is not None
            and record.ocr_engine == ocr.engine_id
            and record.content_sha256 == prepared.sha256
        ):
            return list(record.text_lines)
        cached = self._cached_text(ocr, asset, prepared.sha256)
        if cached is not None:
            return cached
        lines = self._read_text(ocr, prepared.decoded.image, asset)
        if lines is not None and self.texts is not None:
            try:
                self.texts.put(asset.tenant, ocr.engine_id, prepared.sha256, lines)
            except Exception:  # the cache only saves work: never lose the tags over it
                log.warning("OCR cache write failed", extra={"tenant": asset.tenant, "key": asset.key})
        return lines

    def _cached_text(self, ocr: OcrEngine, asset: AssetKey, sha256: str) -> list[TextLine] | None:
        if self.texts is None:
            return None
        try:
            return self.texts.get(asset.tenant, ocr.engine_id, sha256)
        except Exception:
            log.warning(
                "OCR cache read failed; reading the text", extra={"tenant": asset.tenant, "key": asset.key}
            )
            return None

    def _read_text(self, ocr: OcrEngine, image: object, asset: AssetKey) -> list[TextLine] | None:
        """What OCR reads, or None when it failed: a broken OCR run must not lose the tags."""
        try:
            lines = ocr.read(image)  # type: ignore[arg-type]
        except Exception:
            log.exception(
                "OCR failed; tagging without text (models that read text score the image alone)",
                extra={"tenant": asset.tenant, "key": asset.key},
            )
            return None
        log.info("OCR read %d lines", len(lines), extra={"tenant": asset.tenant, "key": asset.key})
        return lines

    def _apply_text_rules(self, tenant: str, proposal: Proposal, lines: Sequence[TextLine]) -> Proposal:
        text = "\n".join(line.text for line in lines)
        assignments = list(proposal.assignments)
        for model in self.tagger.active_models(tenant):
            assignments = apply_text_rules(model, assignments, text)
        return replace(proposal, assignments=assignments)

    def _video_plan(self, tenant: str) -> tuple[SamplingPolicy, OcrEngine | None]:
        settings = self._settings(tenant)
        sampling = replace(self.video.sampling, every=settings.sample_every, keyframes=settings.keyframes)
        return sampling, self._ocr_for(tenant, video=True)

    def _ingest_video(self, job: VideoJob, cause: Cause = Cause.UPLOAD) -> IngestOutcome:
        """A short video is tagged here, in one pass; a long one (see :class:`VideoJobPolicy`)
        becomes a job whose steps run from the video-jobs queue (:mod:`tagsmith.videojobs`)."""
        asset, source = job.asset, job.source
        sampling, ocr = self._video_plan(asset.tenant)
        models = self.tagger.active_models(asset.tenant)
        try:
            with self.store.open(source.bucket, source.key) as f, VideoReader(f, sampling) as video:
                info = video.info
                if self.video_jobs is not None and self.video_jobs.policy.wants_job(info):
                    state = self.video_jobs.start(
                        asset, source, info, sampling=sampling, ocr_engine=ocr.engine_id if ocr else None
                    )
                    current = job.current[0] if job.current else None
                    return IngestOutcome(
                        asset.key,
                        "queued",
                        asset.tenant,
                        current,
                        f"tagged as a video job ({state.summary()})",
                    )
                scan = self.video.scan(video, ocr=ocr, encoders=self.tagger.encoders_for(asset.tenant))
        except NotFoundError:
            return IngestOutcome(asset.key, "skipped", asset.tenant, message="object no longer exists")
        except InvalidInputError as e:
            return self.writer.fail_video(asset, source, e, cause)
        analysis = self.video.aggregate(
            asset.tenant, path=asset.path, etag=source.etag, info=info, scan=scan, models=models,
            thumbnail=scan.thumbnails.__getitem__,
        )  # fmt: skip
        return self.writer.commit_video(
            asset, source, job.current, analysis, ocr.engine_id if ocr else None, cause=cause
        )

    def _taxonomies(self, tenant: str) -> dict[str, Any]:
        return {m.model_id: m.taxonomy for m in self.tagger.models.for_tenant(tenant)}
