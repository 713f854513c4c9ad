"""`tagsmith import` against the running local stack, asserting on what the user reads and on the
records: a folder (a bad file refused, the others tagged), the same import again (all skipped),
another bucket (copied server-side), objects that were in the assets bucket before any event, and
the errors of bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from tagsmith.cli import app
from tagsmith.keys import parse_asset_key
from tagsmith.local import demo
from tagsmith.wiring import build
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def summary_of(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_import_a_folder_again_another_bucket_and_the_assets_bucket(
    local_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGSMITH_HOME", str(local_stack.config.home))  # the CLI finds the stack there
    library = tmp_path / "library"
    photos = {"IMG_1.jpg": 1, "IMG_2.jpg": 2, "2019/summer/IMG_3.jpg": 3, "2019/IMG 4.jpg": 4}
    for name, seed in photos.items():
        (library / name).parent.mkdir(parents=True, exist_ok=True)
        (library / name).write_bytes(demo.jpeg(demo.product_photo("sunset-tote", seed)))
    (library / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (library / "notes.txt").write_text("not a photo: left out")
    c = build(local_stack.info.settings())

    # WHEN the folder is imported
    code, out = cli("import", "-t", "shop", str(library), "--prefix", "archive", "--timeout", "120")

    # THEN the bad file is refused with its reason, and the four photos are uploaded and recorded
    assert code == 1, out
    assert f"refused {library / 'broken.jpg'} is not a photo Tagsmith can read" in out
    assert "5 photos and videos from" in out and "s3://tagsmith-assets/shop/archive/" in out
    assert "4 uploaded, 0 already in the bucket (their events sent), 0 already imported (skipped)" in out
    assert "4 tagged" in out and "0 failed, 0 not tagged yet" in out
    assert "1 not sent: run the same command again" in out
    for name in photos:
        record, _ = c.records.get(parse_asset_key(f"shop/archive/{name}")) or (None, None)
        assert record is not None, name
        assert record.source.etag == hashlib.md5((library / name).read_bytes()).hexdigest()

    # WHEN the same import runs again (the broken file removed): nothing is sent twice
    (library / "broken.jpg").unlink()
    code, out = cli("import", "-t", "shop", str(library), "--prefix", "archive")
    assert code == 0, out
    assert "0 uploaded, 0 already in the bucket (their events sent), 4 already imported (skipped)" in out
    assert "4 tagged" in out

    # WHEN another bucket's prefix is imported: copied server-side, then tagged
    s3 = boto3.client("s3", endpoint_url=local_stack.info.endpoint_url, region_name="us-east-1")
    s3.create_bucket(Bucket="old-library")
    for i in (5, 6):
        body = demo.jpeg(demo.product_photo("forest-bottle", i))
        s3.put_object(Bucket="old-library", Key=f"2018/IMG_{i}.jpg", Body=body)
    s3.put_object(Bucket="old-library", Key="2018-other/IMG_7.jpg", Body=b"x")  # not in the folder
    code, summary = summary_of("import", "-t", "shop", "s3://old-library/2018", "--no-wait")
    assert code == 0, summary  # sent: the stack tags them on its own
    assert (summary["sent"], summary["skipped"]) == (2, 0)
    # the same command again waits for them and sends nothing twice
    code, summary = summary_of("import", "-t", "shop", "s3://old-library/2018", "--timeout", "120")
    assert code == 0, summary
    assert (summary["sent"], summary["tagged"], summary["waiting"]) == (0, 2, 0)
    copied = c.records.get(parse_asset_key("shop/uploads/IMG_5.jpg"))
    assert copied is not None and copied[0].source.bucket == "tagsmith-assets"

    # WHEN objects were put in the assets bucket while nothing listened (no event, no record)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in (8, 9):
        body = demo.jpeg(demo.product_photo("sunset-tote", i))
        backend.put_object("tagsmith-assets", f"shop/before/IMG_{i}.jpg", body, disable_notification=True)
    assert c.records.get(parse_asset_key("shop/before/IMG_8.jpg")) is None
    code, summary = summary_of("import", "-t", "shop", "s3://tagsmith-assets/shop/before", "--timeout", "120")
    assert code == 0, summary
    assert (summary["sent"], summary["announced"], summary["tagged"]) == (0, 2, 2)
    assert c.records.get(parse_asset_key("shop/before/IMG_8.jpg")) is not None

    # bad input: each error says what was wrong, and nothing is sent
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [
        ((str(tmp_path / "nowhere"),), f"{tmp_path / 'nowhere'} does not exist"),
        ((str(empty),), f"{empty} holds no photos or videos"),
        (("s3://no-such-bucket/x",), "bucket 'no-such-bucket' does not exist"),
        (("s3://tagsmith-assets/other/x",), "is outside tenant 'shop''s prefix"),
        (("s3://tagsmith-data/tenants/shop/",), "is Tagsmith's data bucket (records, models), not a library"),
        ((str(library), "--prefix", "../escape"), "has an empty, '.' or '..' path segment"),
    ]:
        code, out = cli("import", "-t", "shop", *args)
        assert code == 1 and message in out, (args, out)

    # no stack running: said so, before anything is sent
    monkeypatch.setenv("TAGSMITH_HOME", str(tmp_path / "no-stack"))
    code, out = cli("import", "-t", "shop", str(library))
    assert code == 1 and "import needs a running stack (`make run`) or --target aws" in out
