"""The review console: a web page where reviewers settle what the models are unsure of, and search.

Public API::

    handle(request, services) -> Response   every route, as one pure function (see api.py)
    Request / Response                      the HTTP shapes the adapters translate to and from
    ConsoleServices                         what handle needs: ConsoleServices.from_components(c)
    start_console(services, host, port)     a local server (stdlib ThreadingHTTPServer)
    QueueFilter, order_queue, backlog, informativeness   the queue's pure core

Example::

    >>> from tagsmith.console import Request
    >>> Request.build("GET", "/api/queue?model=sku&min_confidence=0.3").arg("model")
    'sku'
"""

from tagsmith.console.api import ConsoleServices, Request, Response, handle
from tagsmith.console.queue import BacklogEntry, QueueFilter, backlog, informativeness, order_queue, select
from tagsmith.console.server import ConsoleServer, start_console

__all__ = [
    "BacklogEntry",
    "ConsoleServer",
    "ConsoleServices",
    "QueueFilter",
    "Request",
    "Response",
    "backlog",
    "handle",
    "informativeness",
    "order_queue",
    "select",
    "start_console",
]
