"""The small pieces of a new user's first hour: asset names, the upload outlook, local files
checked before they are tagged or uploaded, and progress bars that only a terminal sees."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from tagsmith.cli.assets import read_local_media
from tagsmith.cli.progress import ProgressEncoder, progress_bar
from tagsmith.errors import InvalidKeyError, TagsmithError
from tagsmith.keys import asset_named
from tagsmith.outlook import upload_outlook
from tagsmith.tagmodels import TagModel

from tests.fakes import FakeEncoder


@pytest.mark.parametrize(
    "name",
    [
        "s3://assets/shop/uploads/hat 1.jpg",
        "shop/uploads/hat 1.jpg",
        "uploads/hat 1.jpg",
        " /uploads/hat 1.jpg ",
    ],
)
def test_every_spelling_of_an_asset_names_the_same_one(name: str) -> None:
    asset = asset_named("shop", name, assets_bucket="assets")
    assert (asset.tenant, asset.path, asset.key) == ("shop", "uploads/hat 1.jpg", "shop/uploads/hat 1.jpg")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("s3://data/shop/uploads/a.jpg", "in bucket 'data', not in the assets bucket 'assets'"),
        ("s3://assets/acme/uploads/a.jpg", "belongs to tenant 'acme', not to 'shop'"),
        ("shop/", "names no asset"),
        ("uploads/../secret.jpg", "'..' path segment"),
    ],
)
def test_a_name_outside_the_tenant_or_bucket_is_refused(name: str, message: str) -> None:
    with pytest.raises(InvalidKeyError, match=message):
        asset_named("shop", name, assets_bucket="assets")


def outlook_of(**metrics: float | None) -> str:
    model = replace(TagModel.example(), metrics=metrics, examples_per_tag={"a": 8, "b": 12})
    return upload_outlook(model).sentence()


def test_the_outlook_reads_the_models_own_figures() -> None:
    assert outlook_of(auto_applied_coverage=0.37, auto_applied_precision=0.991) == (
        "about 37% of uploads will be tagged automatically (99% of those tags right in cross-validation); "
        "the rest go to the review queue"
    )
    none = outlook_of(auto_applied_coverage=0.0, auto_applied_precision=None)
    assert none.startswith("no upload will be tagged automatically yet: every one goes to the review queue")
    assert "with 8 examples per tag, no confidence level was right 98% of the time" in none
    assert outlook_of().startswith("too few examples to measure")
    assert upload_outlook(None).to_dict() == {
        "auto_apply_share": None,
        "precision": None,
        "precision_lower": None,
        "applied": None,
        "target_precision": None,
    }


def jpeg(size: int = 64) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty (0 bytes)"),
        (
            b"hello, not a photo\n",
            "is not a photo Tagsmith can read: not a supported image (19 bytes; it looks like plain text)",
        ),
        (jpeg(256)[:4000], "is not a photo Tagsmith can read: image/jpeg image is truncated or corrupt"),
    ],
)
def test_a_local_file_that_is_not_a_photo_says_what_is_wrong_with_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(TagsmithError) as e:
        read_local_media(path)
    assert message in str(e.value) and "upload" not in str(e.value)


def test_local_media_checks(tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(jpeg())
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00" + b"\x00" * 64)
    assert read_local_media(tmp_path / "ok.jpg") == jpeg()
    assert read_local_media(tmp_path / "clip.mp4").startswith(b"\x00\x00\x00\x18ftyp")
    with pytest.raises(TagsmithError, match="is a video: `tagsmith tag` reads photos"):
        read_local_media(tmp_path / "clip.mp4", videos=False)
    with pytest.raises(TagsmithError, match="does not exist"):
        read_local_media(tmp_path / "nope.jpg")
    with pytest.raises(TagsmithError, match="is a folder"):
        read_local_media(tmp_path)


def test_the_progress_encoder_reports_every_batch_and_embeds_the_same() -> None:
    inner = FakeEncoder()
    seen: list[int] = []
    wrapped = ProgressEncoder(inner, seen.append)
    images = [Image.new("RGB", (32, 32), (i * 7 % 255, 30, 30)) for i in range(40)]

    got = wrapped.embed(images)

    np.testing.assert_allclose(got, inner.embed(images))
    assert seen == [16, 16, 8] and wrapped.encoder_id == inner.encoder_id and wrapped.dim == inner.dim


def test_progress_bars_show_on_a_terminal_only() -> None:
    shown = Console(file=io.StringIO(), force_terminal=True, width=100)
    piped = Console(file=io.StringIO(), force_terminal=False, width=100)
    redirected = Console(file=io.StringIO(), force_terminal=True, width=100)
    for console, results in ((shown, shown), (piped, shown), (redirected, piped)):
        with progress_bar(console=console, results=results) as bar:
            task = bar.add_task("uploading", total=3)
            bar.advance(task, 3)
    assert "uploading" in shown.file.getvalue()  # type: ignore[attr-defined]
    assert piped.file.getvalue() == ""  # type: ignore[attr-defined]
    assert redirected.file.getvalue() == ""  # type: ignore[attr-defined]  # results go to a file


class FakeBackfills:
    """A backfill that completes a third of its 30 assets per status call."""

    def __init__(self) -> None:
        self.calls = 0

    def status(self, tenant: str, backfill_id: str) -> Any:
        self.calls += 1
        done = min(30, 10 * self.calls)
        d = {
            "id": backfill_id,
            "tenant": tenant,
            "state": "complete" if done == 30 else "running",
            "listed": 30,
            "done": done,
            "failed": 0,
            "pending": 30 - done,
            "errors": 0,
        }
        return SimpleNamespace(complete=done == 30, to_dict=lambda: d)


def test_backfill_wait_shows_a_bar_on_a_terminal_and_a_line_per_change_elsewhere(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tagsmith.cli import backfill

    monkeypatch.setattr(backfill.time, "sleep", lambda s: None)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    monkeypatch.setattr("tagsmith.cli.progress.err", terminal)
    monkeypatch.setattr("tagsmith.cli.progress.out", terminal)
    svc = FakeBackfills()
    final = backfill._wait(svc, "acme", "b1", svc.status("acme", "b1"), as_json=False)
    assert final.complete and "backfill b1" in terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "30/30" in terminal.file.getvalue() or "20/30" in terminal.file.getvalue()  # type: ignore[attr-defined]

    monkeypatch.setattr("tagsmith.cli.progress.err", Console(file=io.StringIO(), force_terminal=False))
    svc = FakeBackfills()
    backfill._wait(svc, "acme", "b1", svc.status("acme", "b1"), as_json=False)
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert [line for line in lines if "done" in line][:2] == [
        "backfill b1 of acme: running listed 30, done 10, failed 0, pending 20",
        "backfill b1 of acme: running listed 30, done 20, failed 0, pending 10",
    ]


def test_reindex_progress_counts_the_records_of_the_first_pass_only(components: Any) -> None:
    from tagsmith.cli.searching import _RecordsWithProgress
    from tagsmith.keys import AssetKey, record_key
    from tagsmith.records import AssetRecord, AssetStatus, SourceObject

    for i in range(5):
        record = AssetRecord(
            "acme", f"{i}.jpg", SourceObject("assets", f"acme/{i}.jpg", "e", 1), AssetStatus.TAGGED
        )
        components.store.put(
            components.settings.data_bucket, record_key(AssetKey("acme", record.path)), record.to_json()
        )
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    with progress_bar(console=terminal, results=terminal) as bar:
        counted = _RecordsWithProgress(components, bar)
        assert len(list(counted.iter_tenant("acme"))) == 5
        assert len(list(counted.iter_tenant("acme"))) == 5  # the catch-up pass
        [task] = bar.tasks
        assert (task.description, task.completed, task.total) == ("reindexing acme", 5, 5)
