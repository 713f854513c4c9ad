"""A webhook receiver on loopback for tests and the fault run: checks every signature, counts
retries (a webhook-id seen again), keeps per asset the highest revision and drops the rest, and
can be told to be down, to answer 500 for a share of calls, or to be slow."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tagsmith.outbound.webhooks import verify


@dataclass
class Received:
    event: dict[str, Any]
    attempt: int
    at: float  # time.time() when it was accepted


@dataclass
class Receiver:
    secrets: dict[str, str]  # tenant -> signing secret
    fail_share: float = 0.0  # share of calls answered 500
    delay: float = 0.0  # seconds before answering
    seed: int = 7
    accepted: list[Received] = field(default_factory=list)  # 2xx answers, duplicates included
    bad_signatures: int = 0
    failures_sent: int = 0
    stale: int = 0  # deliveries whose revision was not higher than one already seen
    latest: dict[str, int] = field(default_factory=dict)  # key -> highest revision
    state: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> latest event
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def start(self, port: int = 0) -> Receiver:
        rng = random.Random(self.seed)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.delay:
                    time.sleep(receiver.delay)
                event = json.loads(body)
                secret = receiver.secrets.get(event.get("tenant", ""), "")
                with receiver._lock:
                    if not verify(secret, dict(self.headers), body):
                        receiver.bad_signatures += 1
                        status = 401
                    elif rng.random() < receiver.fail_share:
                        receiver.failures_sent += 1
                        status = 500
                    else:
                        status = 204
                        receiver.accepted.append(
                            Received(event, int(self.headers.get("tagsmith-attempt", 1)), time.time())
                        )
                        if event["revision"] > receiver.latest.get(event["key"], 0):
                            receiver.latest[event["key"]] = event["revision"]
                            receiver.state[event["key"]] = event
                        else:
                            receiver.stale += 1
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def down(self) -> int:
        """Stop listening (callers get "connection refused"); returns the port for :meth:`up`."""
        assert self._server is not None
        port = int(self._server.server_address[1])
        self.stop()
        return port

    def up(self, port: int) -> None:
        self.start(port)

    def revisions(self, key: str) -> list[int]:
        """Distinct revisions received for ``key``, in arrival order."""
        with self._lock:
            return list(dict.fromkeys(r.event["revision"] for r in self.accepted if r.event["key"] == key))
