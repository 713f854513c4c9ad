"""A retraining does not read example images it already knows: the active version's
``examples.json`` records each example's source, content version (a file's size and mtime, an S3
ETag) and content hash, and an unchanged example's cached embedding is used without reading it.
A changed example (new version) is read, hashed and embedded again."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

from tagsmith.examples import Example, examples_from_folder, examples_from_prefix
from tagsmith.wiring import Components

from tests.conftest import DATA
from tests.fakes import COLOURS, FakeEncoder, solid_jpeg

TAGS = ("red", "green", "blue")


def counted(examples: list[Example], reads: Counter[str]) -> list[Example]:
    """The examples, each counting its reads in ``reads`` by source."""

    def counting(ex: Example):  # type: ignore[no-untyped-def]
        def load() -> bytes:
            reads[ex.source] += 1
            return ex.load()

        return load

    return [replace(ex, load=counting(ex)) for ex in examples]


def write_folder(root: Path, per_tag: int = 5) -> None:
    for tag in TAGS:
        (root / tag).mkdir(parents=True, exist_ok=True)
        for i in range(per_tag):
            (root / tag / f"{i}.jpg").write_bytes(solid_jpeg(COLOURS[tag], noise=25, seed=i))


def test_retraining_from_a_folder_reads_only_new_and_changed_files(
    components: Components, tmp_path: Path
) -> None:
    write_folder(tmp_path)
    first, _ = examples_from_folder(tmp_path)
    assert all(ex.version for ex in first)
    reads: Counter[str] = Counter()
    components.trainer.train(tenant="acme", model_id="colour", examples=counted(first, reads))
    assert len(reads) == 15  # a first training reads every image
    # WHEN one file is rewritten with other content, one is added, and the model retrained
    changed, added = tmp_path / "red" / "0.jpg", tmp_path / "blue" / "9.jpg"
    changed.write_bytes(solid_jpeg(COLOURS["red"], noise=25, seed=100))
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 1_000_000))
    added.write_bytes(solid_jpeg(COLOURS["blue"], noise=25, seed=101))
    reads.clear()
    second, _ = examples_from_folder(tmp_path)
    report = components.trainer.train(tenant="acme", model_id="colour", examples=counted(second, reads))
    # THEN only those two are read, and both are embedded afresh
    assert set(reads) == {str(changed), str(added)}
    assert (report.embedded, report.cached) == (2, 14)
    encoder: FakeEncoder = components.encoder
    assert encoder.images_embedded == 17 * 3  # each photo and its two augmented views (default)


def test_retraining_from_a_prefix_rereads_an_object_whose_etag_changed(components: Components) -> None:
    store, bucket = components.store, DATA
    for tag in TAGS:
        for i in range(5):
            store.put(bucket, f"examples/{tag}/{i}.jpg", solid_jpeg(COLOURS[tag], noise=25, seed=i))
    reads: Counter[str] = Counter()
    first, _ = examples_from_prefix(store, bucket, "examples")
    components.trainer.train(tenant="acme", model_id="colour", examples=counted(first, reads))
    assert len(reads) == 15
    # WHEN one object is overwritten and the model retrained from the same prefix
    store.put(bucket, "examples/green/3.jpg", solid_jpeg(COLOURS["green"], noise=25, seed=200))
    reads.clear()
    second, _ = examples_from_prefix(store, bucket, "examples")
    report = components.trainer.train(tenant="acme", model_id="colour", examples=counted(second, reads))
    # THEN only that object is read again, and its new content is what is trained on
    assert set(reads) == {f"s3://{bucket}/examples/green/3.jpg"}
    assert (report.embedded, report.cached) == (1, 14)
    recorded = components.models.example_hashes("acme", "colour", report.version)
    etag = store.head(bucket, "examples/green/3.jpg")
    assert etag is not None

    new_sha = hashlib.sha256(store.get(bucket, "examples/green/3.jpg").body).hexdigest()
    assert recorded[(f"s3://{bucket}/examples/green/3.jpg", etag.etag)] == new_sha
