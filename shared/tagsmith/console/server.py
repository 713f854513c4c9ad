"""The console on a local port: a thin :mod:`http.server` adapter around :func:`~tagsmith.console.api.handle`.

Standard library only: the console is a handful of JSON routes and static files, so a web
framework would add a dependency without removing any code.

>>> # server = start_console(services, host="127.0.0.1", port=0); print(server.url); server.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tagsmith.console.api import MAX_BODY, ConsoleServices, Request, Response, handle

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server_version = "tagsmith-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    services: ConsoleServices  # set on the subclass made per server
    # more routes answered before the console's (the local stack's /v1/search), or None
    routes: Callable[[Request], Response | None] | None = None

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self._send(Response.error(413, f"request body is over {MAX_BODY} bytes"))
            return
        body = self.rfile.read(length) if length else b""
        request = Request.build(self.command, self.path, dict(self.headers.items()), body)
        routes = type(self).routes
        routed = routes(request) if routes is not None else None
        self._send(routed or handle(request, self.services))

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: object) -> None:
        log.debug("console %s", format % args)


@dataclass
class ConsoleServer:
    httpd: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}" if isinstance(host, str) else f"http://{host.decode()}:{port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_console(
    services: ConsoleServices,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    routes: Callable[[Request], Response | None] | None = None,
) -> ConsoleServer:
    """Serve the console on ``host:port`` (0: any free port) in a daemon thread; ``routes`` answers
    the requests it knows before the console does (None: it does not know this one)."""
    handler = type(
        "ConsoleHandler",
        (_Handler,),
        {"services": services, "routes": staticmethod(routes) if routes else None},
    )
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="console", daemon=True)
    thread.start()
    return ConsoleServer(httpd, thread)
