"""Review console: HTTP API (API Gateway HTTP API, payload format 2.0) -> the console's routes.

Pages, queue, decisions, images and search are all answered by
:func:`tagsmith.console.handle`; this module only translates the event and the response. The
tenant comes from the caller's token, never from the request.
"""

from __future__ import annotations

import base64
from typing import Any

from tagsmith.console import ConsoleServices, Request, Response, handle
from tagsmith.lazy import Lazy, lazy_components
from tagsmith.logs import function_logger, logged

logger = function_logger("tagsmith-review")  # library lines name this function while it runs
components = lazy_components()
services = Lazy(lambda: ConsoleServices.from_components(components()))  # built on first use


def request_from_event(event: dict[str, Any]) -> Request:
    """An API Gateway v2 event as a console :class:`Request`."""
    http = event.get("requestContext", {}).get("http", {})
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    target = event.get("rawPath") or http.get("path") or "/"
    if event.get("rawQueryString"):
        target += "?" + event["rawQueryString"]
    return Request.build(http.get("method", "GET"), target, event.get("headers") or {}, raw)


def event_response(response: Response) -> dict[str, Any]:
    """A console :class:`Response` as an API Gateway v2 result (binary bodies base64-encoded)."""
    ctype = response.headers.get("content-type", "")
    text = ctype.startswith(("application/json", "text/")) or "javascript" in ctype
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "body": response.body.decode() if text else base64.b64encode(response.body).decode(),
        "isBase64Encoded": not text,
    }


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return event_response(handle(request_from_event(event), services()))
