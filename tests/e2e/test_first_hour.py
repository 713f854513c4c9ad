"""A new user's first hour, through the CLI against the running local stack, asserting on what they
read: train from a folder of their own photos, upload, look at a record under each of its three
names, search before and after a review, and see a failed training leave nothing behind."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from tagsmith.cli import app
from tagsmith.local import demo
from tagsmith.wiring import build
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TAGS = ("storm-blue-jacket", "sunset-tote", "forest-bottle")


def cli(*args: str) -> tuple[int, str]:
    """Exit code and what the user reads (stdout and stderr), rich's line wrapping undone."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def cli_json(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def photos(root: Path, names: dict[str, tuple[str, int]]) -> Path:
    for name, (tag, seed) in names.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(demo.jpeg(demo.product_photo(tag, seed)))
    return root


def wait_for_record(name: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = CliRunner().invoke(app, ["record", "-t", "shop", name])
        if result.exit_code == 0:
            return dict(json.loads(result.stdout))
        assert "has no record yet" in result.output, result.output  # uploaded, not tagged yet
        time.sleep(0.5)
    raise AssertionError(f"{name} was not tagged within {timeout:.0f} s")


def test_a_new_users_first_hour(local_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGSMITH_HOME", str(local_stack.config.home))  # the CLI finds the stack there
    examples = photos(tmp_path / "examples", {f"{t}/{i}.jpg": (t, i) for t in TAGS for i in range(6)})

    # train from a folder; a reviewer sees every upload first (threshold 1: nothing auto-applied)
    code, out = cli("train", "-t", "shop", "-m", "product", "-e", str(examples), "--threshold", "1.0")
    assert code == 0, out
    assert "trained shop/product version" in out and "3 tags, 18 examples" in out
    assert "uploads: no upload will be tagged automatically yet: every one goes to the review queue" in out
    report = Path(out.split("report: ", 1)[1].split()[0])
    assert report.is_file() and report.read_text().startswith("<!doctype html>")
    assert "next: tagsmith upload -t shop photo.jpg" in out
    assert (
        "tagsmith review list -t shop" in out
        and "tagsmith taxonomy set -t shop -m product labels.json" in out
    )

    # upload a folder of new photos; an empty file among them is refused, the others go
    new = photos(
        tmp_path / "new",
        {"IMG_0001.jpg": (TAGS[0], 200), "IMG_0002.jpg": (TAGS[0], 201), "IMG_0003.jpg": (TAGS[1], 202)},
    )
    (new / "IMG_0004.jpg").write_bytes(b"")
    code, out = cli("upload", "-t", "shop", str(new))
    assert code == 1
    for n in (1, 2, 3):
        assert f"uploaded shop/uploads/IMG_000{n}.jpg" in out
    assert f"refused {new / 'IMG_0004.jpg'} is empty (0 bytes)" in out
    assert "3 uploaded to s3://tagsmith-assets/" in out and "tagsmith record -t shop shop/uploads/" in out

    # one asset, three names: all give the same record
    record = wait_for_record("shop/uploads/IMG_0001.jpg")
    for name in ("s3://tagsmith-assets/shop/uploads/IMG_0001.jpg", "uploads/IMG_0001.jpg"):
        assert wait_for_record(name) == record
    code, out = cli("record", "-t", "shop", "s3://another-bucket/shop/uploads/IMG_0001.jpg")
    assert code == 1 and "is in bucket 'another-bucket', not in the assets bucket 'tagsmith-assets'" in out
    code, out = cli("record", "-t", "shop", "uploads/IMG_0009.jpg")
    assert code == 1 and "no asset shop/uploads/IMG_0009.jpg" in out

    # what the model thought: the photos of jackets wait for review as jackets
    states = {n: wait_for_record(f"uploads/IMG_000{n}.jpg")["tags"] for n in (1, 2, 3)}
    assert all(t["state"] == "review" for tags in states.values() for t in tags), states
    jackets = sorted(n for n, tags in states.items() if any(t["tag"] == TAGS[0] for t in tags))
    assert 1 in jackets, states  # the model knows a storm-blue jacket when it sees one

    # search before any review: nothing is searchable yet, and the CLI says why and what to do
    waiting = f"{len(jackets)} more asset{'s have' if len(jackets) > 1 else ' has'} product/{TAGS[0]} waiting for review"
    # a record is written before its document (and a new tenant's index is made then, seconds
    # under load), and each upload may be in its own invocation: wait for the documents too
    deadline = time.monotonic() + 60
    while True:
        code, out = cli("search", "-t", "shop", "jacket")
        if waiting in out or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == 0 and "0 matches for 'jacket' in shop" in out and waiting in out
    assert "add --include-review to list them too" in out
    code, out = cli("search", "-t", "shop", "jacket", "--include-review")
    assert f"{len(jackets)} match" in out and f"shop/uploads/IMG_0001.jpg product/{TAGS[0]}" in out
    assert "(waiting for review)" in out

    # a reviewer confirms one; the search finds it, and still counts the others
    [item] = [
        i for i in cli_json("review", "list", "-t", "shop") if i["asset_key"] == "shop/uploads/IMG_0001.jpg"
    ]
    code, out = cli("review", "decide", "-t", "shop", item["id"], "--accept", "--reviewer", "ana")
    assert code == 0 and f"shop/uploads/IMG_0001.jpg: {TAGS[0]} (confirmed)" in out
    code, out = cli("search", "-t", "shop", "jacket")
    assert (
        "1 match for 'jacket' in shop" in out
        and f"shop/uploads/IMG_0001.jpg product/{TAGS[0]} (confirmed)" in out
    )
    if len(jackets) > 1:
        assert f"{len(jackets) - 1} more" in out

    # a training that fails says why, once, and leaves no model behind
    (tmp_path / "empty").mkdir()
    code, out = cli("train", "-t", "shop", "-m", "colour", "-e", str(tmp_path / "empty"))
    assert code == 1 and f"the folder {tmp_path / 'empty'} is empty" in out and "nothing was saved" in out
    assert out.count("is empty") == 1
    code, out = cli("train", "-t", "shop", "-m", "colour", "-e", str(tmp_path / "nope"))
    assert code == 1 and f"{tmp_path / 'nope'} does not exist" in out
    assert [m["model"] for m in cli_json("models", "-t", "shop")] == ["product"]
    assert [m["model"] for m in cli_json("status", "-t", "shop")] == ["product"]
    code, out = cli("models", "versions", "-t", "shop", "-m", "colour")
    assert code == 1 and "tenant 'shop' has no model 'colour'" in out
    store = build(local_stack.info.settings()).store
    assert list(store.list(local_stack.info.data_bucket, "tenants/shop/models/colour/")) == []

    # a photo that is not one: the dry run says what is wrong with the file
    code, out = cli("tag", "-t", "shop", str(new / "IMG_0004.jpg"))
    assert code == 2 and "IMG_0004.jpg is empty (0 bytes)" in out and "upload" not in out
