"""Bounded work for every input: small requests cannot make the console, search or the training
queue do unbounded work (previews made once, retrains throttled, query and body caps, server
timeouts and Content-Length validation)."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from tagsmith.console import ConsoleServer, Request, Response, handle, start_console
from tagsmith.console import server as console_server
from tagsmith.decisions import CorrectionTracker
from tagsmith.errors import InvalidInputError
from tagsmith.events import ObjectRef
from tagsmith.keys import AssetKey, model_prefix
from tagsmith.search import InMemorySearchIndex, SearchQuery

from tests.e2e.scene import Scene, clone_scene, new_scene


@pytest.fixture(scope="module")
def built() -> Scene:
    return new_scene(blends=2, clean=1)


@pytest.fixture
def scene(built: Scene) -> Scene:
    return clone_scene(built, index=InMemorySearchIndex())


def call(scene: Scene, method: str, target: str, token: str, body: bytes = b"") -> Response:
    return handle(Request.build(method, target, {"Authorization": f"Bearer {token}"}, body), scene.services)


# --- previews ------------------------------------------------------------------------------------
def test_a_huge_png_is_decoded_once_however_often_the_console_shows_it(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tagsmith.encoder as encoder

    c = scene.components
    big = io.BytesIO()
    Image.new("RGB", (4000, 3000), (20, 90, 200)).save(
        big, "PNG"
    )  # a PNG cannot be decoded at a smaller scale
    etag = c.store.put("assets", "acme/huge.png", big.getvalue())
    [outcome] = c.ingest.ingest([ObjectRef("assets", "acme/huge.png", etag, len(big.getvalue()))])
    assert outcome.status == "tagged"
    decodes: list[int] = []
    original = encoder.decode_image

    def counting(data: bytes, **kw: Any) -> Any:
        decodes.append(len(data))
        return original(data, **kw)

    monkeypatch.setattr(encoder, "decode_image", counting)
    for size in (1024, 480, 640):
        r = call(scene, "GET", f"/api/assets/image?key=acme/huge.png&max={size}", scene.reviewer)
        assert r.status == 200 and r.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(r.body)) as im:
            assert max(im.size) == size
    assert decodes == []  # served from the preview ingestion made, never from the original
    # an asset ingested before previews existed: its preview is made once, then served
    record = c.records.get(AssetKey("acme", "huge.png"))[0]
    c.store.delete("data", f"tenants/acme/thumbnails/huge.png/{record.source.etag}/preview.jpg")
    for _ in range(3):
        assert call(scene, "GET", "/api/assets/image?key=acme/huge.png", scene.reviewer).status == 200
    assert len(decodes) == 1


# --- retrains ------------------------------------------------------------------------------------
def test_one_pending_retrain_per_model_and_a_per_tenant_rate(scene: Scene) -> None:
    from tagsmith.retrains import RetrainLimits, RetrainRateError, RetrainThrottle

    c = scene.components
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    throttle = RetrainThrottle(
        store=c.store, data_bucket="data", limits=RetrainLimits(per_hour=2), clock=lambda: now[0]
    )
    tracker = CorrectionTracker(
        store=c.store,
        data_bucket="data",
        models=c.active_models,
        throttle=throttle,
        clock=lambda: now[0].isoformat(),
    )

    def requests() -> list[str]:
        return [i.key for i in c.store.list("data", "tenants/acme/training-requests/") if "reviewed" in i.key]

    def started(key: str) -> None:  # the train handler picked it up
        status = {"state": "training", "request": key, "at": now[0].isoformat()}
        c.store.put("data", model_prefix("acme", "product") + "status.json", json.dumps(status).encode())

    first = tracker.request_retrain("acme", "product")
    for _ in range(5):  # a reviewer keeps clicking "Retrain now"
        again = tracker.request_retrain("acme", "product")
        assert again["coalesced"] and again["key"] == first["key"]
    assert requests() == [first["key"]]  # one request on the shared queue, not six
    started(first["key"])
    now[0] += timedelta(seconds=1)
    second = tracker.request_retrain("acme", "product")
    assert not second["coalesced"]
    started(second["key"])
    now[0] += timedelta(seconds=1)
    with pytest.raises(RetrainRateError) as refused:
        tracker.request_retrain("acme", "product")
    assert 3500 < refused.value.retry_after <= 3600
    assert len(requests()) == 2
    now[0] += timedelta(hours=1)
    assert not tracker.request_retrain("acme", "product")["coalesced"]


def test_the_console_answers_429_with_retry_after_over_the_rate(scene: Scene) -> None:
    from tagsmith.retrains import RetrainLimits, RetrainThrottle

    scene.services.corrections.throttle = RetrainThrottle(
        store=scene.components.store, data_bucket="data", limits=RetrainLimits(per_hour=0)
    )
    r = call(scene, "POST", "/api/models/product/retrain", scene.reviewer)
    assert r.status == 429 and int(r.headers["retry-after"]) >= 1
    assert "retrains in the last hour" in json.loads(r.body)["error"]


# --- queries and bodies --------------------------------------------------------------------------
def test_a_16000_character_query_is_refused_at_once(scene: Scene) -> None:
    with pytest.raises(InvalidInputError, match="at most 512"):
        SearchQuery(text="veste " * 2700)
    started = time.perf_counter()
    r = call(scene, "GET", "/api/search?q=" + "veste+" * 2700, scene.reviewer)
    assert r.status == 400 and "at most 512" in json.loads(r.body)["error"]
    assert time.perf_counter() - started < 1.0
    assert call(scene, "GET", "/api/search?q=" + "a+" * 40, scene.reviewer).status == 400  # 40 words


def test_a_100000_deep_json_body_is_a_400_not_a_500(scene: Scene) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    r = call(scene, "POST", "/api/decisions/bulk-accept", scene.reviewer, deep)
    assert r.status == 400 and "nested too deeply" in json.loads(r.body)["error"]


# --- the console server on a socket --------------------------------------------------------------
@pytest.fixture
def server(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConsoleServer]:
    monkeypatch.setattr(console_server, "READ_TIMEOUT", 0.5, raising=False)
    monkeypatch.setattr(console_server, "BODY_DEADLINE", 1.0, raising=False)
    s = start_console(scene.services, host="127.0.0.1", port=0)
    yield s
    s.stop()


def connect(server: ConsoleServer) -> socket.socket:
    host, port = server.httpd.server_address[:2]
    sock = socket.create_connection((str(host), int(port)), timeout=5)
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_half_sent_request_is_dropped_not_held_forever(server: ConsoleServer) -> None:
    sock = connect(server)
    sock.sendall(b"GET /api/me HTTP/1.1\r\nHost: x\r\n")  # the headers never end
    started = time.monotonic()
    assert read_all(sock) == b""  # the server closes the connection ...
    assert time.monotonic() - started < 4  # ... after its read timeout, not never
    sock.close()


def test_a_negative_content_length_is_refused_instead_of_waiting_for_eof(server: ConsoleServer) -> None:
    sock = connect(server)
    sock.sendall(b"POST /api/decisions/bulk-accept HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400") and b"Content-Length" in answer
    sock.close()


def test_a_body_that_stops_halfway_gets_a_408_and_the_connection_closes(server: ConsoleServer) -> None:
    sock = connect(server)
    sock.sendall(b'POST /api/decisions/bulk-accept HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"item')
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    sock.close()


@pytest.mark.parametrize(
    ("header", "status"), [(b"Transfer-Encoding: chunked", b"411"), (b"Content-Length: 99999999", b"413")]
)
def test_chunked_or_oversized_bodies_are_refused_up_front(
    server: ConsoleServer, header: bytes, status: bytes
) -> None:
    sock = connect(server)
    sock.sendall(b"POST /api/decisions/bulk-accept HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 " + status)
    sock.close()
