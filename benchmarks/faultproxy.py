"""A fault-injecting HTTP proxy for ``make faults``: it sits between the local stack's clients
(handlers, the console, the uploader) and moto or osmem.

* ``error_rate``: that share of S3 requests get a 500 ``InternalError`` (or 503 ``SlowDown``), half
  of them *before* the request reaches moto (nothing happened) and half *after* it (the write
  happened, the acknowledgement was lost: the client retries and S3 sees the same write twice).
  SQS requests pass untouched (the stack's queues are what the test observes).
* :meth:`FaultProxy.cut`: every request answers 503 for a while (the search server is down).

aiohttp (already installed with aiobotocore) serves and forwards, so chunked and keep-alive
requests pass through as they are.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import ClientError, ClientSession, ClientTimeout, web

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
)
S3_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>injected by make faults</Message></Error>"
)


@dataclass
class ProxyStats:
    requests: int = 0
    injected_before: int = 0
    injected_after: int = 0
    cut: int = 0
    upstream_down: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``, injecting faults (see the module docstring)."""

    def __init__(
        self,
        *,
        upstream: str,
        error_rate: float = 0.0,
        seed: int = 14,
        observe: Callable[[web.Request, float], None] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.observe = observe  # called with each forwarded request and its seconds upstream
        self.error_rate = error_rate
        self.stats = ProxyStats()
        self._random = random.Random(seed)
        self._cut_until = 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- control --------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fault proxy did not start")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self, seconds: float) -> None:
        """Every request answers 503 for ``seconds`` from now."""
        self._cut_until = time.monotonic() + seconds

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    # --- serving --------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()
        self._loop.close()

    async def _serve(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=120), auto_decompress=False)
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_cleanup.append(lambda _app: self._session.close())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self._ready.set()

    def _is_s3(self, request: web.Request) -> bool:
        target = request.headers.get("x-amz-target", "")
        return not target.startswith("AmazonSQS") and not (
            request.method == "POST" and request.path == "/" and "x-amz-target" not in request.headers
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        if time.monotonic() < self._cut_until:
            self.stats.cut += 1
            return web.Response(status=503, text='{"error": "the search server is down (make faults)"}')
        body = await request.read()
        inject = self.error_rate > 0 and self._is_s3(request) and self._random.random() < self.error_rate
        before = inject and self._random.random() < 0.5
        if before:
            self.stats.injected_before += 1
            return web.Response(status=500, body=S3_ERROR, content_type="application/xml")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            started = time.perf_counter()
            response = await self._forward(request, headers, body, inject)
            if self.observe is not None:
                self.observe(request, time.perf_counter() - started)
            return response
        except (TimeoutError, ClientError):  # the upstream is down (killed, restarting)
            self.stats.upstream_down += 1
            return web.Response(status=502, text="upstream unreachable (make faults)")

    async def _forward(
        self, request: web.Request, headers: dict[str, str], body: bytes, inject: bool
    ) -> web.StreamResponse:
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            payload = await upstream.read()
            if inject:  # it happened upstream; the acknowledgement is what gets lost
                self.stats.injected_after += 1
                return web.Response(status=500, body=S3_ERROR, content_type="application/xml")
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            response = web.Response(status=upstream.status, body=payload, headers=out)
            if request.method == "HEAD" and "Content-Length" in upstream.headers:
                response.headers["Content-Length"] = upstream.headers["Content-Length"]
            return response
