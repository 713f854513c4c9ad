"""Search: HTTP API (API Gateway payload v2) -> one page of the caller's tenant's assets.

``GET /search?q=veste+bleu&tag=product/storm-blue-jacket&size=20&cursor=...`` with
``Authorization: Bearer tsk.<tenant>.<secret>``. The tenant comes from the token, never from the
request, so a caller can only ever search its own tenant.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools import Logger
from tagsmith.auth import AuthError, TokenStore
from tagsmith.config import Settings
from tagsmith.errors import InvalidInputError, TransientError
from tagsmith.search import SearchQuery
from tagsmith.wiring import Components, build

logger = Logger(service="tagsmith-search")
_components: Components | None = None


def components() -> Components:
    global _components
    if _components is None:
        _components = build(Settings.from_env())
    return _components


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, ensure_ascii=False),
    }


def parse_query(params: dict[str, str]) -> SearchQuery:
    cursor = params.get("cursor")
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode())) if cursor else None
        return SearchQuery(
            text=params.get("q") or None,
            tags=tuple(t for t in (params.get("tag") or "").split(",") if t),
            size=int(params.get("size", 20)),
            min_confidence=float(params["min_confidence"]) if "min_confidence" in params else None,
            source=params.get("source"),
            review_state=params.get("review_state"),
            media_type=params.get("media_type"),
            search_after=after,
        )
    except (ValueError, TypeError) as e:
        raise InvalidInputError(f"bad query parameter: {e}") from e


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    c = components()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        principal = TokenStore(store=c.store, bucket=c.settings.data_bucket).authenticate(
            headers.get("authorization")
        )
        query = parse_query(event.get("queryStringParameters") or {})
        page = c.index.search(principal.tenant, query).to_dict()
    except AuthError as e:
        return _response(401, {"error": str(e)})
    except InvalidInputError as e:
        return _response(400, {"error": str(e)})
    except TransientError as e:
        logger.warning("search unavailable: %s", e)
        return _response(503, {"error": "search is temporarily unavailable; retry"})
    after = page.get("next_search_after")
    page["next_cursor"] = base64.urlsafe_b64encode(json.dumps(after).encode()).decode() if after else None
    return _response(200, page)
