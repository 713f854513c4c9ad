"""``tagsmith dashboards import`` against a fake OpenSearch Dashboards on loopback (the real one
does not run here: see docs/search.md)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from tagsmith.cli.dashboards import import_saved_objects
from tagsmith.errors import TagsmithError, TransientError
from tagsmith.search.dashboards import for_tenant, load_saved_objects, to_ndjson


class FakeDashboards(BaseHTTPRequestHandler):
    """Records the import request and answers like OpenSearch Dashboards."""

    requests: ClassVar[list[dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        FakeDashboards.requests.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        )
        payload = json.dumps({"success": self.status == 200, "successCount": 9}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def dashboards_url() -> Iterator[str]:
    FakeDashboards.requests, FakeDashboards.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), FakeDashboards)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_import_posts_the_ndjson_with_the_xsrf_header_and_overwrite(dashboards_url: str) -> None:
    ndjson = to_ndjson(for_tenant(load_saved_objects(), "acme"))

    result = import_saved_objects(dashboards_url, ndjson, auth="admin:secret")

    [request] = FakeDashboards.requests
    assert result["success"] is True
    assert request["path"] == "/api/saved_objects/_import?overwrite=true"
    assert request["headers"]["osd-xsrf"] == "true"
    assert request["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert request["headers"]["authorization"] == "Basic YWRtaW46c2VjcmV0"
    assert ndjson in request["body"] and b'name="file"; filename="tagsmith.ndjson"' in request["body"]


def test_import_refusal_is_an_error_that_says_so(dashboards_url: str) -> None:
    FakeDashboards.status = 400

    with pytest.raises(TagsmithError, match="refused the import \\(400\\)"):
        import_saved_objects(dashboards_url, b"{}\n")


def test_import_of_an_unreachable_dashboards_is_transient() -> None:
    with pytest.raises(TransientError, match="cannot reach"):
        import_saved_objects("http://127.0.0.1:9", b"{}\n", timeout=2)
