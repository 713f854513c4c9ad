"""The console's HTTP surface as one pure function: :func:`handle` maps a :class:`Request` to a
:class:`Response` over injected :class:`ConsoleServices`. The local server
(:mod:`tagsmith.console.server`) and the Lambda handler (``functions/review/handler.py``, API
Gateway payload v2) are thin adapters around it.

Size: over 600 lines because it holds the whole route table, each route a few lines beside its
neighbours; the work behind a route lives in the services (decisions, review, search).

Every ``/api`` route authenticates ``Authorization: Bearer tsk.<tenant>.<secret>`` and works in the
token's tenant only; no route takes a tenant from the request. Another tenant's item ids and asset
keys answer 404, exactly as ids that do not exist, so probing reveals nothing.

Routes::

    GET  /  /review  /search                  the pages (static HTML, CSS and JS; no secrets)
    GET  /static/<file>                       page assets
    GET  /api/me                              who the token is: tenant, name, role
    GET  /api/models                          active models, tags and labels, training status;
                                              ``broken``: active versions that cannot be loaded, and why
    GET  /api/queue?model&tag&min_confidence&max_confidence&status&cursor&offset&limit&counts
                                              review items, most informative first, plus backlog
                                              (pending: paged by ``next_cursor``; counts=0 skips
                                              the counts and backlog)
    GET  /api/items/<id>                      one item
    POST /api/items/<id>/decision             {"action": "accept|reject|pick|none", "tag": "..."}
    POST /api/decisions/bulk-accept           {"item_ids": [...], "tag": "..."}   (tag optional)
    POST /api/models/<model>/retrain          request a retrain on the reviewed examples now
    POST /api/models/<model>/target           {"precision": 0.95, "max_tags": 3}: what it auto-applies,
                                              without retraining (a new version; the library is re-routed)
    GET  /api/assets/image?key=<asset key>&max=<px>   the asset (or a preview), tenant-checked
    GET  /api/items/<id>/frame                the video frame of a video item
    GET  /api/search?q&lang&tag&size&cursor&include_review
                                              search the tenant's assets (facets by tag); says
                                              how many more wait for review on the tags the
                                              text names (include_review=1: list them too)

Roles: ``reader`` may read and search; ``reviewer`` and ``admin`` may also decide and retrain.
Status codes: 400 bad input, 401 no or unknown token, 403 role too low, 404 not found (or not
yours), 405 wrong method, 411/413 a request body without a valid length or over the limit, 429
too many retrains for the tenant this hour (``retry-after``), 503 a dependency is down (retry).
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from tagsmith.auth import AuthError, Principal, TokenStore
from tagsmith.console.media import preview
from tagsmith.console.queue import QueueFilter, backlog, informativeness, pending_queue_page, select
from tagsmith.decisions import CorrectionTracker, DecisionOutcome, DecisionService, RetrainPolicy
from tagsmith.errors import InvalidInputError, NotFoundError, TagsmithError, TransientError
from tagsmith.keys import is_under, model_prefix, parse_asset_key, tenant_prefix
from tagsmith.outbound.webhooks import SubscriptionStore
from tagsmith.previews import PREVIEW_SIDE, PreviewMaker, scaled
from tagsmith.records import AssetStatus
from tagsmith.retrains import RetrainRateError
from tagsmith.review import ReviewItem, ReviewStatus, ReviewStore
from tagsmith.storage import ObjectStore, RecordStore
from tagsmith.tagmodels import ActiveModels, ModelStore

log = logging.getLogger(__name__)

DECIDING_ROLES = frozenset({"reviewer", "admin"})
MAX_BODY = 256 * 1024
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}
PAGES = {
    "/": "review.html",
    "/review": "review.html",
    "/search": "search.html",
    "/favicon.ico": "favicon.svg",
}


class ForbiddenError(TagsmithError):
    """The token is valid but its role may not do this."""

    code = "forbidden"


@dataclass(frozen=True)
class Request:
    """An HTTP request, whatever server it came through; header names are lower-case."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def build(
        cls, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> Request:
        """From a request line's target (``/path?query``)."""
        path, _, qs = target.partition("?")
        return cls(
            method=method.upper(),
            path=path or "/",
            query=parse_qs(qs, keep_blank_values=False),
            headers={k.lower(): v for k, v in (headers or {}).items()},
            body=body,
        )

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def args(self, name: str) -> list[str]:
        return [v for value in self.query.get(name, []) for v in value.split(",") if v]

    def json(self) -> dict[str, Any]:
        if len(self.body) > MAX_BODY:
            raise InvalidInputError(f"request body is over {MAX_BODY} bytes")
        try:
            data = json.loads(self.body or b"{}")
        except RecursionError:  # a 100,000-deep array: the parser's recursion limit, not a 500
            raise InvalidInputError("request body is nested too deeply to be a request") from None
        except ValueError as e:
            raise InvalidInputError(f"request body is not JSON: {e}") from e
        if not isinstance(data, dict):
            raise InvalidInputError("request body must be a JSON object")
        return data


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def json(cls, status: int, data: Any) -> Response:
        body = json.dumps(data, ensure_ascii=False).encode()
        return cls(
            status, {"content-type": "application/json; charset=utf-8", "cache-control": "no-store"}, body
        )

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json(status, {"error": message})


@dataclass
class ConsoleServices:
    """Everything the console needs; build it once per process with :meth:`from_components`."""

    store: ObjectStore
    data_bucket: str
    tokens: TokenStore
    records: RecordStore
    reviews: ReviewStore
    models: ActiveModels
    index: Any  # tagsmith.search.SearchIndex
    decisions: DecisionService
    corrections: CorrectionTracker
    previews: PreviewMaker | None = None  # None: one over ``store`` (at most one preview made at a time)
    max_pixels: int = 100_000_000
    webhooks_allow_private: bool = False

    def webhooks(self) -> SubscriptionStore:
        return SubscriptionStore(store=self.store, bucket=self.data_bucket)

    def model_store(self) -> ModelStore:
        return ModelStore(store=self.store, bucket=self.data_bucket)

    def __post_init__(self) -> None:
        if self.previews is None:
            self.previews = PreviewMaker(
                store=self.store, data_bucket=self.data_bucket, max_pixels=self.max_pixels
            )

    @classmethod
    def from_components(cls, c: Any) -> ConsoleServices:
        """From :class:`tagsmith.wiring.Components` (never touches the encoder). The retrain policy
        is the deployment's one setting (``TAGSMITH_RETRAIN_EVERY``), whichever entry point
        records the decision: console, CLI or the review Lambda."""
        bucket = c.settings.data_bucket
        corrections = CorrectionTracker(
            store=c.store,
            data_bucket=bucket,
            models=c.active_models,
            policy=RetrainPolicy(c.settings.retrain_every),
        )
        decisions = DecisionService(
            records=c.records,
            reviews=c.reviews,
            models=c.active_models,
            index=c.index,
            corrections=corrections,
            outbound=c.outbound,
        )
        return cls(
            store=c.store,
            data_bucket=bucket,
            tokens=TokenStore(store=c.store, bucket=bucket),
            records=c.records,
            reviews=c.reviews,
            models=c.active_models,
            index=c.index,
            decisions=decisions,
            corrections=corrections,
            previews=c.previews,
            max_pixels=c.settings.max_pixels,
            webhooks_allow_private=c.settings.webhooks_allow_private,
        )


Route = Callable[[Request, ConsoleServices, Principal, re.Match[str]], Response]
_ROUTES: list[tuple[str, re.Pattern[str], Route, bool]] = []  # method, path, handler, needs a decider


def _route(method: str, pattern: str, *, decides: bool = False) -> Callable[[Route], Route]:
    def register(fn: Route) -> Route:
        _ROUTES.append((method, re.compile(f"^{pattern}$"), fn, decides))
        return fn

    return register


def handle(request: Request, services: ConsoleServices) -> Response:
    """Answer one request. Never raises: every failure becomes a JSON error response."""
    try:
        response = _dispatch(request, services)
    except AuthError as e:
        response = Response.error(401, str(e))
    except ForbiddenError as e:
        response = Response.error(403, str(e))
    except NotFoundError as e:
        response = Response.error(404, str(e))
    except InvalidInputError as e:
        response = Response.error(400, str(e))
    except RetrainRateError as e:
        response = Response.error(429, str(e))
        response.headers["retry-after"] = str(e.retry_after)
    except TransientError as e:
        log.warning("console request failed transiently: %s", e, extra={"path": request.path})
        response = Response.error(503, "a backing service is unavailable; retry in a moment")
    except Exception:
        log.exception("console request failed", extra={"path": request.path})
        response = Response.error(500, "internal error; the server log has the details")
    return Response(response.status, {**SECURITY_HEADERS, **response.headers}, response.body)


def _dispatch(request: Request, services: ConsoleServices) -> Response:
    if not request.path.startswith("/api/"):
        return _static(request)
    allowed = []
    for method, pattern, fn, decides in _ROUTES:
        match = pattern.match(request.path)
        if match is None:
            continue
        if method != request.method:
            allowed.append(method)
            continue
        principal = services.tokens.authenticate(request.headers.get("authorization"))
        if decides and principal.role not in DECIDING_ROLES:
            raise ForbiddenError(f"role {principal.role!r} may not change tags; ask for a reviewer token")
        return fn(request, services, principal, match)
    if allowed:
        return Response(
            405, {"allow": ", ".join(allowed), "content-type": "text/plain"}, b"method not allowed"
        )
    raise NotFoundError(f"no API route {request.path}")


# --- pages -------------------------------------------------------------------------------------
def _static_files() -> dict[str, bytes]:
    root = resources.files("tagsmith.console") / "static"
    return {f.name: f.read_bytes() for f in root.iterdir() if f.is_file()}


_STATIC = _static_files()


def _static(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        return Response(405, {"allow": "GET, HEAD", "content-type": "text/plain"}, b"method not allowed")
    name = PAGES.get(request.path) or request.path.removeprefix("/static/")
    if request.path not in PAGES and not request.path.startswith("/static/"):
        name = ""
    body = _STATIC.get(name)
    if body is None:
        return Response(404, {"content-type": "text/plain"}, b"not found")
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype.endswith("javascript"):
        ctype += "; charset=utf-8"
    return Response(200, {"content-type": ctype, "cache-control": "no-cache"}, body)


# --- API ---------------------------------------------------------------------------------------
@_route("GET", "/api/me")
def _me(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    return Response.json(
        200,
        {"tenant": who.tenant, "name": who.name, "role": who.role, "can_decide": who.role in DECIDING_ROLES},
    )


@_route("GET", "/api/models")
def _models(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    out = []
    for model in s.models.for_tenant(who.tenant):
        out.append(
            {
                "id": model.model_id,
                "kind": model.kind.value,
                "version": model.version,
                "threshold": round(float(model.thresholds.max()), 4) if len(model.thresholds) else None,
                "target_precision": model.target_precision,
                "max_tags": model.max_tags,
                # what the thresholds promise on uploads like the examples (out of fold)
                "automation": model.metrics.get("calibration") or None,
                "cv_accuracy": model.metrics.get("cv_accuracy"),
                "examples": int(sum(model.examples_per_tag.values())),
                "tags": [{"id": t, "labels": dict(model.taxonomy.get(t).labels)} for t in model.tags],
                "training": _training_status(s, who.tenant, model.model_id),
                "corrections": s.corrections.state(who.tenant, model.model_id),
            }
        )
    # a version that cannot be loaded is shown with the reason; the tenant's other models still work
    broken = [b.to_dict() for b in s.models.broken(who.tenant)]
    return Response.json(200, {"models": out, "broken": broken})


def _training_status(s: ConsoleServices, tenant: str, model: str) -> dict[str, Any] | None:
    try:
        status = dict(
            json.loads(s.store.get(s.data_bucket, model_prefix(tenant, model) + "status.json").body)
        )
    except NotFoundError:
        return None
    report = status.get("report") or {}
    return {
        "state": status.get("state"),
        "at": status.get("at"),
        "version": status.get("version"),
        "error": status.get("error"),
        "cv_accuracy": report.get("cv_accuracy"),
        "examples": sum((report.get("examples_per_tag") or {}).values()) or None,
    }


def _item_json(item: ReviewItem) -> dict[str, Any]:
    asset_key = f"{item.tenant}/{item.asset_path}"
    frame = getattr(item, "thumbnail_key", None)  # a video item: the frame the model was unsure about
    return {
        "id": item.id,
        "asset_key": asset_key,
        "asset_path": item.asset_path,
        "image_url": f"/api/items/{item.id}/frame?v=1"
        if frame
        else "/api/assets/image?" + _qs(key=asset_key),
        "timestamp": getattr(item, "timestamp", None),
        "model": item.model,
        "model_version": item.model_version,
        "suggestion": item.suggestion,
        "confidence": item.confidence,
        "threshold": item.threshold,
        "informativeness": informativeness(item),
        "alternatives": [{"tag": a.tag, "confidence": a.confidence} for a in item.alternatives],
        "status": item.status.value,
        "created_at": item.created_at,
        "decided_by": item.decided_by,
        "decided_at": item.decided_at,
        "decision": item.decision,
    }


def _qs(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _float_arg(req: Request, name: str) -> float | None:
    raw = req.arg(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidInputError(f"{name} must be a number between 0 and 1, got {raw!r}") from None


def _int_arg(req: Request, name: str, default: int) -> int:
    raw = req.arg(name)
    try:
        return default if raw in (None, "") else int(raw)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidInputError(f"{name} must be a whole number, got {raw!r}") from None


@_route("GET", "/api/queue")
def _queue(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    try:
        status = ReviewStatus(req.arg("status") or "pending")
    except ValueError:
        raise InvalidInputError("status must be pending, decided or superseded") from None
    flt = QueueFilter(
        model=req.arg("model") or None,
        tag=req.arg("tag") or None,
        min_confidence=_float_arg(req, "min_confidence"),
        max_confidence=_float_arg(req, "max_confidence"),
        status=status,
    )
    offset, limit = _int_arg(req, "offset", 0), _int_arg(req, "limit", 50)
    if status is ReviewStatus.PENDING:
        # the durable items through their ordered entries: ``limit`` item reads, whatever the backlog
        queue = pending_queue_page(
            s.reviews,
            who.tenant,
            flt,
            cursor=req.arg("cursor") or None,
            offset=offset,
            limit=limit,
            counts=req.arg("counts") not in ("0", "false"),
        )
        return Response.json(
            200,
            {
                "items": [_item_json(i) for i in queue.items],
                "next_cursor": queue.next_cursor,
                "total": queue.total,
                "pending": queue.pending,
                "counts_exact": queue.counts_exact,
                "backlog": [
                    {"tenant": who.tenant, "model": b.model, "tag": b.tag, "pending": b.pending}
                    for b in queue.backlog
                ],
            },
        )
    # decided / superseded items (an audit view, not the work queue): every item is read
    items = list(s.reviews.iter_tenant(who.tenant))
    page = select(items, flt, offset=offset, limit=limit)
    return Response.json(
        200,
        {
            "items": [_item_json(i) for i in page],
            "next_cursor": None,
            "total": sum(1 for i in items if flt.matches(i)),
            "pending": sum(1 for i in items if i.status is ReviewStatus.PENDING),
            "counts_exact": True,
            "backlog": [
                {"tenant": who.tenant, "model": b.model, "tag": b.tag, "pending": b.pending}
                for b in backlog(items)
            ],
        },
    )


def _own_item(s: ConsoleServices, who: Principal, item_id: str) -> ReviewItem:
    item = s.reviews.get(who.tenant, item_id) if re.fullmatch(r"[0-9a-f]{1,64}", item_id) else None
    if item is None:
        raise NotFoundError(f"no review item {item_id!r}")
    return item


@_route("GET", r"/api/items/(?P<id>[^/]+)")
def _item(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    return Response.json(200, _item_json(_own_item(s, who, m["id"])))


def _outcome_json(outcome: DecisionOutcome) -> dict[str, Any]:
    return {"ok": True, **outcome.to_dict()}


@_route("POST", r"/api/items/(?P<id>[^/]+)/decision", decides=True)
def _decide(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    body = req.json()
    item = _own_item(s, who, m["id"])
    tag = body.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise InvalidInputError("'tag' must be a string")
    outcome = s.decisions.decide(who.tenant, item.id, str(body.get("action", "")), reviewer=who.name, tag=tag)
    return Response.json(200, _outcome_json(outcome))


@_route("POST", "/api/decisions/bulk-accept", decides=True)
def _bulk_accept(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    body = req.json()
    ids = body.get("item_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidInputError("'item_ids' must be a non-empty list of review item ids")
    if len(ids) > 500:
        raise InvalidInputError("at most 500 items per bulk accept")
    tag = body.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise InvalidInputError("'tag' must be a string")
    results = s.decisions.bulk_accept(who.tenant, ids, reviewer=who.name, tag=tag)
    out = []
    for item_id, result in zip(dict.fromkeys(ids), results, strict=True):
        if isinstance(result, Exception):
            status = 404 if isinstance(result, NotFoundError) else 400
            out.append({"item_id": item_id, "ok": False, "status": status, "error": str(result)})
        else:
            out.append({**_outcome_json(result), "item_id": item_id})
    return Response.json(200, {"results": out, "accepted": sum(1 for r in out if r["ok"])})


@_route("POST", r"/api/models/(?P<model>[a-z0-9-]+)/retrain", decides=True)
def _retrain(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    return Response.json(202, s.corrections.request_retrain(who.tenant, m["model"]))


@_route("POST", r"/api/models/(?P<model>[a-z0-9-]+)/target", decides=True)
def _target(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    from tagsmith.tagmodels.model import KEEP
    from tagsmith.tagmodels.retarget import retarget

    body = req.json()
    if not {"precision", "max_tags"} & set(body):
        raise InvalidInputError('send {"precision": 0.95} and/or {"max_tags": 3} (null: no limit)')
    precision = body.get("precision")
    if precision is not None and (isinstance(precision, bool) or not isinstance(precision, int | float)):
        raise InvalidInputError(f"precision must be a number such as 0.95, got {precision!r}")
    max_tags = body.get("max_tags", KEEP)
    if (
        max_tags is not KEEP
        and max_tags is not None
        and (isinstance(max_tags, bool) or not isinstance(max_tags, int))
    ):
        raise InvalidInputError(f"max_tags must be a whole number or null, got {max_tags!r}")
    new = retarget(
        s.model_store(),
        who.tenant,
        m["model"],
        target=precision,
        max_tags=max_tags,
        by=f"{who.name} (console)",
    )
    s.models.invalidate(who.tenant)
    return Response.json(
        200,
        {
            "model": new.model_id,
            "version": new.version,
            "target_precision": new.target_precision,
            "max_tags": new.max_tags,
            "automation": new.metrics.get("calibration"),
        },
    )


# --- webhook subscriptions (tagsmith.outbound.webhooks) -----------------------------------------
@_route("GET", "/api/webhooks", decides=True)
def _webhooks(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    return Response.json(200, {"webhooks": [w.public() for w in s.webhooks().list(who.tenant)]})


@_route("POST", "/api/webhooks", decides=True)
def _add_webhook(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    """``{"url": "https://...", "kinds": ["confirmed"], "models": ["product"]}``; the answer holds the
    signing secret, the only time it is shown."""
    body = req.json()
    if not isinstance(body.get("url"), str):
        raise InvalidInputError('send {"url": "https://...", "kinds": [...], "models": [...]}')
    sub = s.webhooks().add(
        who.tenant, body["url"], kinds=list(body.get("kinds") or ()), models=list(body.get("models") or ()),
        description=str(body.get("description", "")), allow_private=s.webhooks_allow_private,
    )  # fmt: skip
    return Response.json(201, {**sub.public(), "secret": sub.secret})


@_route("DELETE", r"/api/webhooks/(?P<id>wh_[0-9a-f]+)", decides=True)
def _remove_webhook(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    s.webhooks().remove(who.tenant, m["id"])
    return Response.json(200, {"removed": m["id"]})


@_route("GET", "/api/assets/image")
def _image(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    key = req.arg("key") or ""
    not_found = NotFoundError(f"no asset {key!r}")
    try:
        asset = parse_asset_key(key)
    except InvalidInputError:
        raise not_found from None
    if asset.tenant != who.tenant:
        raise not_found  # another tenant's key looks exactly like a missing one
    got = s.records.get(asset)
    if got is None or got[0].source.key != asset.key or got[0].status is AssetStatus.DELETED:
        raise not_found
    record = got[0]
    # the bounded preview made once at ingest (or now, once, for an asset ingested before previews
    # existed): a request never decodes the original, however large it is
    try:
        assert s.previews is not None
        stored = s.previews.ensure(record)
    except NotFoundError:
        raise not_found from None
    max_side = min(max(_int_arg(req, "max", PREVIEW_SIDE), 64), PREVIEW_SIDE)
    body = scaled(stored, max_side)
    return Response(200, {"content-type": "image/jpeg", "cache-control": "private, max-age=300"}, body)


@_route("GET", r"/api/items/(?P<id>[^/]+)/frame")
def _frame(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    item = _own_item(s, who, m["id"])
    key = getattr(item, "thumbnail_key", None)
    if not key or not is_under(key, tenant_prefix(who.tenant)):
        raise NotFoundError(f"review item {item.id} has no video frame")
    data = s.store.get(s.data_bucket, key).body
    max_side = min(max(_int_arg(req, "max", 1024), 64), 2048)
    body, ctype = preview(data, "image/jpeg", max_side=max_side, max_pixels=s.max_pixels)
    return Response(200, {"content-type": ctype, "cache-control": "private, max-age=300"}, body)


@_route("GET", "/api/search")
def _search(req: Request, s: ConsoleServices, who: Principal, m: re.Match[str]) -> Response:
    from tagsmith.search import LANGUAGES, SearchQuery, search_with_waiting

    cursor = req.arg("cursor")
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode())) if cursor else None
    except (ValueError, RecursionError):
        raise InvalidInputError("cursor is not one this API returned; start from the first page") from None
    lang = req.arg("lang") or ""
    query = SearchQuery(
        text=req.arg("q") or None,
        languages=[lang] if lang else LANGUAGES,
        tags=tuple(req.args("tag")),
        review_state=req.arg("review_state") or None,
        none_of=req.arg("none_of") or None,
        source=req.arg("source") or None,
        size=_int_arg(req, "size", 24),
        search_after=after,
    )
    taxonomies = {m.model_id: m.taxonomy for m in s.models.for_tenant(who.tenant)}
    include = req.arg("include_review") in ("1", "true")
    found, waiting = search_with_waiting(s.index, who.tenant, query, taxonomies, include=include)
    page = found.to_dict()
    page["waiting_for_review"] = waiting.to_dict() if waiting else None
    for hit in page["hits"]:
        hit["image_url"] = "/api/assets/image?" + _qs(key=hit["asset_key"], max="480")
    nxt = page.get("next_search_after")
    page["next_cursor"] = base64.urlsafe_b64encode(json.dumps(nxt).encode()).decode() if nxt else None
    page["languages"] = list(LANGUAGES)
    return Response.json(200, page)
