"""``tagsmith dashboards import``: load Tagsmith's saved objects into OpenSearch Dashboards."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

from tagsmith.cli.common import JsonOpt, out, run_or_exit
from tagsmith.config import LocalSettings
from tagsmith.errors import InvalidInputError, TagsmithError, TransientError

app = typer.Typer()
group = typer.Typer(help="OpenSearch Dashboards: saved searches and visualisations.")
app.add_typer(group, name="dashboards")


def import_saved_objects(
    url: str, ndjson: bytes, *, auth: str | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """POST ``ndjson`` to ``<url>/api/saved_objects/_import?overwrite=true``; returns OSD's answer.

    ``auth`` is ``user:password`` for basic auth (OpenSearch security plugin), or None.
    """
    from tagsmith.search.dashboards import multipart_body

    body, content_type = multipart_body(ndjson)
    request = urllib.request.Request(
        url.rstrip("/") + "/api/saved_objects/_import?overwrite=true",
        data=body,
        method="POST",
        headers={"osd-xsrf": "true", "content-type": content_type},
    )
    if auth:
        request.add_header("authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        if e.code in (502, 503, 504):
            raise TransientError(f"OpenSearch Dashboards at {url} is unavailable ({e.code}): retry") from e
        raise TagsmithError(f"OpenSearch Dashboards refused the import ({e.code}): {detail}") from e
    except urllib.error.URLError as e:
        raise TransientError(f"cannot reach OpenSearch Dashboards at {url}: {e.reason}") from e


@group.command("import")
def import_(
    url: Annotated[str, typer.Option(help="OpenSearch Dashboards base URL, e.g. http://localhost:5601")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="objects for this tenant's alias only")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the ndjson instead of posting it")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load Tagsmith's saved objects into OpenSearch Dashboards.

    The index pattern, saved searches, visualisations and dashboard (existing ones are replaced).

    Basic auth: set TAGSMITH_DASHBOARDS_AUTH=user:password.
    """
    from tagsmith.search.dashboards import for_tenant, load_saved_objects, to_ndjson

    def go() -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"--url {url!r} must start with http:// or https://")
        objects = load_saved_objects()
        if tenant is not None:
            objects = for_tenant(objects, tenant)
        ndjson = to_ndjson(objects)
        if dry_run:
            print(ndjson.decode(), end="")
            return
        result = import_saved_objects(url, ndjson, auth=LocalSettings.from_env().dashboards_auth)
        if as_json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            out.print(f"imported {result.get('successCount', 0)} of {len(objects)} saved objects into {url}")
        if not result.get("success", False):
            raise TagsmithError(f"import reported errors: {json.dumps(result.get('errors', []))[:500]}")

    run_or_exit(go)
