"""``tagsmith review`` against a local data folder (``--target files``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tagsmith.cli import app
from tagsmith.keys import AssetKey
from tagsmith.local.resources import STACK
from tagsmith.records import TagState
from tagsmith.storage import FileObjectStore, RecordStore
from typer.testing import CliRunner

from tests.e2e.scene import Scene, new_scene


@pytest.fixture(scope="module")
def built() -> Scene:
    return new_scene(blends=3, clean=1)


@pytest.fixture
def home(built: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scene's buckets written to a local data folder, under the local stack's bucket names."""
    disk = FileObjectStore(root=tmp_path / "s3")
    names = {"data": STACK.bucket_name("data"), "assets": STACK.bucket_name("assets")}
    for bucket, name in names.items():
        for info in built.components.store.list(bucket):
            disk.put(name, info.key, built.components.store.get(bucket, info.key).body)
    monkeypatch.setenv("TAGSMITH_HOME", str(tmp_path))
    return tmp_path


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--target", "files"])
    assert result.exit_code == 0, result.output
    return result.output


def test_review_list_then_decide_from_the_command_line(home: Path, built: Scene) -> None:
    items = [json.loads(line) for line in run("review", "list", "-t", "acme", "--json").splitlines()]
    assert len(items) == len(built.pending("acme")) > 0
    assert all(i["asset_key"].startswith("acme/") for i in items)
    first = items[0]
    run("review", "decide", "-t", "acme", first["id"], "--accept", "--reviewer", "ana")
    records = RecordStore(store=FileObjectStore(root=home / "s3"), bucket=STACK.bucket_name("data"))
    got = records.get(AssetKey("acme", first["asset_key"].split("/", 1)[1]))
    assert got is not None
    [tag] = got[0].tags
    assert (tag.tag, tag.state, tag.decided_by) == (first["suggestion"], TagState.CONFIRMED, "ana")
    left = run("review", "list", "-t", "acme", "--json").splitlines()
    assert len(left) == len(items) - 1


def test_review_decide_none_says_so_in_words(home: Path) -> None:
    items = [json.loads(line) for line in run("review", "list", "-t", "acme", "--json").splitlines()]
    out = run("review", "decide", "-t", "acme", items[0]["id"], "--none", "--reviewer", "ana")
    assert f"{items[0]['asset_key']}: none of the model's tags (confirmed)" in " ".join(out.split())
    assert "__none__" not in out


def test_review_list_names_each_asset_by_its_key_and_says_how_to_decide(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagsmith.cli.common import out as console

    monkeypatch.setattr(console, "width", 200)  # a wide terminal: the table folds no cell
    out = " ".join(run("review", "list", "-t", "acme").split())
    first = json.loads(run("review", "list", "-t", "acme", "--json").splitlines()[0])
    assert f"│ {first['id']} │ {first['asset_key']} │" in out
    assert f"decide one: tagsmith review decide -t acme {first['id']} --accept" in out


def test_review_decide_needs_exactly_one_action(home: Path) -> None:
    result = CliRunner().invoke(app, ["review", "decide", "-t", "acme", "abc", "--accept", "--none"])
    assert result.exit_code == 1 and "exactly one" in result.output


def test_review_backlog_and_token(home: Path, built: Scene) -> None:
    rows = [json.loads(line) for line in run("review", "backlog", "-t", "acme", "--json").splitlines()]
    assert sum(r["pending"] for r in rows) == len(built.pending("acme"))
    token = run("review", "token", "-t", "acme", "--name", "ana").strip()
    assert token.startswith("tsk.acme.")
