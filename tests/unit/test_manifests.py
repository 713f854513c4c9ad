"""Manifests: CSV, JSON lines, SageMaker Ground Truth and Rekognition Custom Labels, with paths
resolved beside the manifest and errors that name the line to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tagsmith.errors import TrainingInputError
from tagsmith.manifests import combine, examples_from_manifest, load_examples, parse_manifest, tag_id_for
from tagsmith.storage import MemoryObjectStore

from tests.fakes import COLOURS, solid_jpeg

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"


def write_images(folder: Path) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for tag, rgb in COLOURS.items():
        for i in range(3):
            (folder / "images" / f"{tag}-{i}.jpg").write_bytes(solid_jpeg(rgb, noise=20, seed=i))


@pytest.mark.parametrize("name", ["examples.csv", "examples.jsonl"])
def test_local_manifest_resolves_relative_paths_beside_the_manifest(tmp_path: Path, name: str) -> None:
    # GIVEN a manifest copied next to its images, and a working directory elsewhere
    (tmp_path / name).write_bytes((MANIFESTS / name).read_bytes())
    write_images(tmp_path)
    got = load_examples(str(tmp_path / name))
    assert len(got.examples) == 9
    first = got.examples[0]
    assert (first.tags, first.source) == (("red",), str(tmp_path / "images" / "red-0.jpg"))
    assert first.load() == (tmp_path / "images" / "red-0.jpg").read_bytes()


def test_csv_splits_several_tags_and_accepts_alternative_column_names() -> None:
    rows = parse_manifest(b"Image,Labels\nx.jpg,outdoor;people\ny.jpg,product|people\n", name="m.csv").rows
    assert [(r.ref, r.tags) for r in rows] == [
        ("x.jpg", ("outdoor", "people")),
        ("y.jpg", ("product", "people")),
    ]


def test_csv_without_a_header_names_the_columns_it_expects() -> None:
    with pytest.raises(TrainingInputError, match="header naming a path column") as e:
        parse_manifest(b"a.jpg,red\nb.jpg,blue\n", name="labels.csv")
    assert "labels.csv" in str(e.value) and "a.jpg, red" in str(e.value)


def test_jsonl_with_a_broken_line_names_the_line() -> None:
    with pytest.raises(TrainingInputError, match=r"labels\.jsonl line 2 is not valid JSON"):
        parse_manifest(b'{"path": "a.jpg", "tag": "red"}\n{"path": "b.jpg", "tag": \n', name="labels.jsonl")


def test_jsonl_line_without_a_path_names_the_line() -> None:
    with pytest.raises(TrainingInputError, match="line 1: expected"):
        parse_manifest(b'{"file_name": "a.jpg", "tag": "red"}\n', name="labels.jsonl")


def test_ground_truth_classification_manifest_gives_tags_labels_and_skips_failed_lines() -> None:
    parsed = parse_manifest(
        (MANIFESTS / "groundtruth-classification.manifest").read_bytes(), name="out.manifest"
    )
    assert len(parsed.rows) == 12
    assert parsed.rows[0].ref == "s3://tagsmith-assets/acme/labeling/fruit/IMG_0001.jpg"
    assert {r.tags for r in parsed.rows} == {("red-apple",), ("green-apple",), ("Blueberries",)}
    assert parsed.labels == {"red-apple": "Red apple", "green-apple": "Green apple"}
    [warning] = parsed.warnings
    assert "labelling failed" in warning and "IMG_0099.jpg" in warning and "access denied" in warning


def test_ground_truth_multilabel_manifest_reads_class_maps_and_keeps_negatives() -> None:
    parsed = parse_manifest((MANIFESTS / "groundtruth-multilabel.manifest").read_bytes(), name="out.manifest")
    tags = [r.tags for r in parsed.rows]
    assert tags[1] == ("outdoor", "people") and tags[6] == ("outdoor", "people", "product")
    assert tags[-1] == ()  # labelled "none of these": a negative example


def test_rekognition_manifest_takes_every_classification_attribute_and_ignores_boxes() -> None:
    parsed = parse_manifest(
        (MANIFESTS / "rekognition-custom-labels.manifest").read_bytes(), name="train.manifest"
    )
    assert [r.tags for r in parsed.rows] == [("Red",)] * 3 + [("Green",)] * 3 + [("Blue",)] * 3
    assert any("object-detection" in w and "shelf.png" in w for w in parsed.warnings)


def test_rekognition_line_with_two_labels_gives_a_multilabel_example() -> None:
    line = {
        "source-ref": "s3://b/acme/x.png",
        "ds_Beach": 1,
        "ds_Beach-metadata": {"class-name": "Beach", "type": "groundtruth/image-classification"},
        "ds_Sunset": 1,
        "ds_Sunset-metadata": {"class-name": "Sunset", "type": "groundtruth/image-classification"},
    }
    [row] = parse_manifest(json.dumps(line).encode(), name="x.manifest").rows
    assert row.tags == ("Beach", "Sunset")


def test_ground_truth_label_attribute_that_is_missing_names_the_ones_present() -> None:
    data = (MANIFESTS / "groundtruth-classification.manifest").read_bytes()
    with pytest.raises(TrainingInputError, match="no label attribute 'product'") as e:
        parse_manifest(data, name="out.manifest", label_attribute="product")
    assert "fruit-type" in str(e.value)


def test_ground_truth_label_outside_its_class_map_names_the_line() -> None:
    line = {
        "source-ref": "s3://b/acme/x.png",
        "scene": [4],
        "scene-metadata": {"class-map": {"0": "a"}, "type": "groundtruth/image-classification-multilabel"},
    }
    with pytest.raises(TrainingInputError, match=r"x\.manifest line 1: label '4' is not in its class-map"):
        parse_manifest(json.dumps(line).encode(), name="x.manifest")


def test_s3_manifest_resolves_relative_keys_and_yields_a_taxonomy_of_class_names() -> None:
    store = MemoryObjectStore()
    store.put(
        "assets", "acme/labels/out.manifest", (MANIFESTS / "groundtruth-classification.manifest").read_bytes()
    )
    store.put("assets", "acme/labels/rel.csv", b"path,tag\nimgs/a.jpg,red\n../b.jpg,blue\n")
    got = examples_from_manifest("s3://assets/acme/labels/out.manifest", store=store)
    assert got.taxonomy is not None and got.taxonomy.get("red-apple").labels == {"en": "Red apple"}
    rel = examples_from_manifest("s3://assets/acme/labels/rel.csv", store=store)
    assert [e.source for e in rel.examples] == [
        "s3://assets/acme/labels/imgs/a.jpg",
        "s3://assets/acme/b.jpg",
    ]


def test_s3_manifest_naming_another_tenants_objects_is_refused_listing_them() -> None:
    store = MemoryObjectStore()
    store.put("assets", "acme/m.csv", b"path,tag\nacme-ok.jpg,red\ns3://assets/globex/secret.jpg,blue\n")
    with pytest.raises(TrainingInputError, match="outside this tenant") as e:
        examples_from_manifest(
            "s3://assets/acme/m.csv", store=store, s3_allowed=lambda b, k: k.startswith("acme/")
        )
    assert "s3://assets/globex/secret.jpg" in str(e.value) and "line 3" in str(e.value)


def test_missing_manifest_names_it(tmp_path: Path) -> None:
    with pytest.raises(TrainingInputError, match=r"manifest .*nope.csv does not exist"):
        load_examples(str(tmp_path / "nope.csv"))


def test_load_examples_refuses_a_file_that_is_not_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"x")
    with pytest.raises(TrainingInputError, match=r"photo\.jpg is a file, not a folder of tag folders"):
        load_examples(str(tmp_path / "photo.jpg"))


def test_load_examples_says_a_missing_folder_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(TrainingInputError, match=r"nope does not exist: give a folder with one sub-folder"):
        load_examples(str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, r"the folder .* is empty: expected one sub-folder per tag"),
        ({"a.jpg": b"x", "b.png": b"x"}, r"the photos in .* \(2\) are not in tag folders"),
        ({"hat/notes.txt": b"x", "cap/": b""}, r"the tag folders in .* \(cap, hat\) hold no photos"),
    ],
)
def test_load_examples_says_why_a_folder_gives_no_example(
    tmp_path: Path, layout: dict[str, bytes], message: str
) -> None:
    root = tmp_path / "examples"
    root.mkdir()
    for name, body in layout.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(body)
    with pytest.raises(TrainingInputError, match=message):
        load_examples(str(root))


def test_load_examples_from_an_empty_prefix_says_what_layout_it_expects() -> None:
    with pytest.raises(
        TrainingInputError, match=r"no images under s3://b/acme/ex/: expected one sub-folder per tag"
    ):
        load_examples("s3://b/acme/ex/", store=MemoryObjectStore())


def test_combine_merges_examples_warnings_and_taxonomies() -> None:
    store = MemoryObjectStore()
    store.put("assets", "acme/out.manifest", (MANIFESTS / "groundtruth-classification.manifest").read_bytes())
    a = examples_from_manifest("s3://assets/acme/out.manifest", store=store)
    both = combine([a, a])
    assert len(both.examples) == 24 and len(both.warnings) == 2
    assert both.taxonomy is not None and set(both.taxonomy.ids) == {"red-apple", "green-apple"}


@pytest.mark.parametrize(
    ("name", "tag"),
    [("Golden Retriever", "golden-retriever"), ("Crème brûlée", "creme-brulee"), ("SKU_12.b", "SKU_12.b")],
)
def test_tag_id_for_class_names(name: str, tag: str) -> None:
    assert tag_id_for(name) == tag
