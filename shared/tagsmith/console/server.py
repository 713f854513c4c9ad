"""The console on a local port: a thin :mod:`http.server` adapter around :func:`~tagsmith.console.api.handle`.

Standard library only: the console is a handful of JSON routes and static files, so a web
framework would add a dependency without removing any code.

>>> # server = start_console(services, host="127.0.0.1", port=0); print(server.url); server.stop()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tagsmith.console.api import MAX_BODY, ConsoleServices, Request, Response, handle

log = logging.getLogger(__name__)


#: Seconds a connection may wait between two reads (an idle keep-alive connection, headers or a
#: body sent slowly): without it a client that stops mid-request holds a thread forever.
READ_TIMEOUT = 15.0
#: Seconds the whole body may take, however steadily it drips.
BODY_DEADLINE = 30.0


def content_length(headers: Mapping[str, str]) -> int | Response:
    """The request body's length, or the error response for a length we will not wait for:
    chunked or other transfer codings (411), a length that is not one non-negative whole number
    (400: ``-1`` used to make the server wait for EOF), or one over :data:`MAX_BODY` (413)."""
    if headers.get("transfer-encoding"):
        return Response.error(411, "send the request body with a Content-Length (no Transfer-Encoding)")
    raw = headers.get("content-length")
    if raw is None or raw.strip() == "":
        return 0
    if not raw.strip().isdigit():
        return Response.error(400, f"Content-Length must be one non-negative whole number, got {raw!r}")
    length = int(raw)
    if length > MAX_BODY:
        return Response.error(413, f"request body is over {MAX_BODY} bytes")
    return length


class _Handler(BaseHTTPRequestHandler):
    server_version = "tagsmith-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    services: ConsoleServices  # set on the subclass made per server
    # more routes answered before the console's (the local stack's /v1/search), or None
    routes: Callable[[Request], Response | None] | None = None

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(READ_TIMEOUT)  # every read of this connection, headers included

    def _serve(self) -> None:
        length = content_length({k.lower(): v for k, v in self.headers.items()})
        if isinstance(length, Response):
            self.close_connection = True  # the rest of the stream cannot be trusted to frame a request
            self._send(length)
            return
        body = self._read_body(length)
        if body is None:
            return
        request = Request.build(self.command, self.path, dict(self.headers.items()), body)
        routes = type(self).routes
        routed = routes(request) if routes is not None else None
        self._send(routed or handle(request, self.services))

    def _read_body(self, length: int) -> bytes | None:
        """Exactly ``length`` bytes within :data:`BODY_DEADLINE`, or None (the connection is closed
        after a 408 when the client is too slow or stops)."""
        deadline = time.monotonic() + BODY_DEADLINE
        chunks: list[bytes] = []
        left = length
        try:
            while left > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    self.close_connection = True
                    return None  # the client closed the connection before the whole body came
                chunks.append(chunk)
                left -= len(chunk)
        except (TimeoutError, OSError):
            self.close_connection = True
            log.info("console request body too slow or cut off: closing", extra={"path": self.path})
            with contextlib.suppress(OSError):
                self._send(
                    Response.error(408, f"the request body did not arrive within {BODY_DEADLINE:.0f} s")
                )
            return None
        return b"".join(chunks)

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
