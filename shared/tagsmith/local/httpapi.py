"""The local stack's HTTP API: the routes ``resources.py`` gives functions without a queue (the
search API's ``GET /v1/search``), served beside the console as API Gateway would serve them.

Each request becomes an API Gateway HTTP API event (payload format 2.0), the function's
``handler`` runs on it, and its result becomes the response, so ``curl .../v1/search`` against
``make run`` exercises exactly the code Lambda runs. The console's own routes are not here: the
console server answers them with the same :func:`tagsmith.console.handle` the review function wraps.

>>> event = api_event(Request.build("GET", "/v1/search?q=veste&tag=a/b&tag=c/d"), "GET /v1/search")
>>> event["queryStringParameters"], event["rawQueryString"]
({'q': 'veste', 'tag': 'a/b,c/d'}, 'q=veste&tag=a/b&tag=c/d')
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tagsmith.console.api import Request, Response
from tagsmith.local.resources import STACK, StackDef
from tagsmith.local.runtime import LambdaContext

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
SERVED_BY_THE_CONSOLE = frozenset({"review"})


def api_event(request: Request, route_key: str) -> dict[str, Any]:
    """``request`` as an API Gateway HTTP API (payload 2.0) event; repeated query parameters are
    joined with commas, as API Gateway does."""
    raw_query = urlencode([(k, v) for k, values in request.query.items() for v in values], safe="/,")
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": raw_query,
        "headers": dict(request.headers),
        "queryStringParameters": {k: ",".join(v) for k, v in request.query.items()} or None,
        "requestContext": {
            "http": {"method": request.method, "path": request.path, "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(request.body).decode() if request.body else None,
        "isBase64Encoded": bool(request.body),
    }


def api_response(result: dict[str, Any]) -> Response:
    """A function's API Gateway result as a :class:`Response`."""
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    return Response(int(result.get("statusCode", 200)), headers, raw)


class LocalHttpApi:
    """Routes ``METHOD /path`` to function handlers; ``__call__`` answers a request it routes and
    returns None for any other (the console answers those)."""

    def __init__(self, routes: dict[str, tuple[str, Handler]], *, timeouts: dict[str, float]) -> None:
        self.routes = routes  # "GET /v1/search" -> (function name, handler)
        self.timeouts = timeouts

    @classmethod
    def from_definition(
        cls,
        functions_dir: Path,
        definition: StackDef = STACK,
        *,
        load: Callable[[Path, str], Handler] | None = None,
    ) -> LocalHttpApi:
        from tagsmith.local.stack import load_handler

        load = load or load_handler
        routes: dict[str, tuple[str, Handler]] = {}
        timeouts = {}
        for f in definition.functions:
            wanted = [r for r in f.routes if "{" not in r]  # exact routes; proxies are the console's
            if f.queue is not None or f.name in SERVED_BY_THE_CONSOLE or not wanted:
                continue
            handler = load(functions_dir, f.name)
            timeouts[f.name] = float(f.timeout)
            routes.update({route: (f.name, handler) for route in wanted})
        return cls(routes, timeouts=timeouts)

    def __call__(self, request: Request) -> Response | None:
        route_key = f"{request.method} {request.path}"
        found = self.routes.get(route_key)
        if found is None:
            return None
        name, handler = found
        context = LambdaContext(
            f"tagsmith-{name}", aws_request_id=str(uuid.uuid4()), timeout=self.timeouts[name]
        )
        try:
            return api_response(handler(api_event(request, route_key), context))
        except Exception:  # what API Gateway answers when the function itself fails
            log.exception("%s failed on %s", name, route_key)
            return Response.error(500, "internal server error")
