"""Search: HTTP API (API Gateway payload v2) -> one page of the caller's tenant's assets.

``GET /v1/search?q=veste+bleu&tag=product/storm-blue-jacket&size=20&cursor=...`` with
``Authorization: Bearer tsk.<tenant>.<secret>``. The tenant comes from the token, never from the
request, so a caller can only ever search its own tenant. Parameters, the JSON body and the error
codes are documented in ``docs/search.md``:

    200  a page: {"total", "hits", "next_search_after", "next_cursor", "facets"}
    400  a bad parameter: {"error": "<what was wrong and what to do>"}
    401  missing, malformed or unknown token
    503  the search cluster is unreachable or busy: retry
    500  anything else (the cluster refused the request): logged with the tenant
"""

from __future__ import annotations

import json
from typing import Any

from tagsmith.auth import AuthError, TokenStore
from tagsmith.errors import InvalidInputError, TransientError
from tagsmith.lazy import lazy_components
from tagsmith.logs import function_logger, logged
from tagsmith.search import SearchIndexError, SearchQuery
from tagsmith.search.query import query_from_params

logger = function_logger("tagsmith-search")
components = lazy_components()  # built on the first invocation, reused while warm


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, ensure_ascii=False),
    }


def parse_query(params: dict[str, str]) -> SearchQuery:
    """The query string of the request as a :class:`SearchQuery` (400 on a bad parameter)."""
    return query_from_params(params)


@logged(logger)
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
    except SearchIndexError:
        logger.exception("search refused by the cluster")
        return _response(500, {"error": "search failed; the error was logged"})
    return _response(200, page)
