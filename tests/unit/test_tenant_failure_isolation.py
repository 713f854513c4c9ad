"""One tenant's unloadable model fails that tenant's messages only; its model files are checked
(size, each array's header against the tags and the encoder width, tag ids) before they are parsed,
and a failure is remembered for a while instead of being paid again on every message."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import Any

import numpy as np
import pytest
from tagsmith.console import Request, handle
from tagsmith.console.api import ConsoleServices
from tagsmith.errors import InvalidInputError
from tagsmith.events import ObjectRef
from tagsmith.keys import model_prefix
from tagsmith.sqsbatch import storage_sqs_batch
from tagsmith.storage import MemoryObjectStore
from tagsmith.wiring import Components

from tests.conftest import ASSETS, DATA
from tests.fakes import COLOURS, solid_jpeg
from tests.unit.test_ingest_service import train_colours, upload


def train(c: Components, tenant: str) -> str:
    from tagsmith.examples import Example
    from tagsmith.trainer import TrainingOptions

    examples = [
        Example(name, f"{name}-{i}.jpg", lambda rgb=rgb, i=i: solid_jpeg(rgb, noise=25, seed=i))
        for name, rgb in COLOURS.items()
        for i in range(6)
    ]
    return c.trainer.train(
        tenant=tenant, model_id="colour", examples=examples, options=TrainingOptions(threshold=0.6)
    ).version


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A .npy v1.0 header declaring ``shape``, padded as NumPy pads it."""
    text = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    pad = 64 - (10 + len(text) + 1) % 64
    body = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def forged_npz(coef_shape: tuple[int, ...], tags: int) -> bytes:
    """weights.npz whose coef header declares ``coef_shape`` (e.g. 10**10 columns) with no data."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("coef.npy", npy_header(coef_shape))
        intercept = io.BytesIO()
        np.save(intercept, np.zeros(tags, np.float32))
        z.writestr("intercept.npy", intercept.getvalue())
    return buf.getvalue()


def break_active_version(c: Components, tenant: str, weights: bytes) -> str:
    version = c.models.active_version(tenant, "colour")
    assert version is not None
    c.store.put(DATA, f"{model_prefix(tenant, 'colour')}versions/{version}/weights.npz", weights)
    c.active_models.invalidate()
    return version


def message(i: int, key: str, etag: str) -> dict[str, Any]:
    body = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": ASSETS}, "object": {"key": key, "eTag": etag, "size": 1}},
            }
        ]
    }
    return {"messageId": f"m{i}", "body": json.dumps(body)}


def test_one_tenants_unloadable_model_fails_only_that_tenants_messages(components: Components) -> None:
    train(components, "acme")
    train(components, "beta")
    version = break_active_version(components, "acme", forged_npz((3, 10**10), 3))
    refs: list[ObjectRef] = []
    for i in range(10):
        tenant = "acme" if i % 3 == 0 else "beta"
        refs.append(upload(components, f"{tenant}/p{i}.jpg", solid_jpeg(COLOURS["red"], seed=i)))
    event = {"Records": [message(i, r.key, r.etag or "") for i, r in enumerate(refs)]}

    response, outcomes = storage_sqs_batch(
        event, ingest=components.ingest.ingest, remove=components.ingest.ingest
    )

    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed == {f"m{i}" for i in range(10) if i % 3 == 0}  # acme's 4 messages, not beta's 6
    assert sorted(o.key for o in outcomes if o.status == "tagged") == sorted(
        r.key for r in refs if r.key.startswith("beta/")
    )
    [broken] = components.active_models.broken("acme")
    assert broken.version == version and "10000000000" in broken.reason


def test_a_broken_version_shows_in_the_console_with_its_reason_beside_the_working_models(
    components: Components,
) -> None:
    train(components, "acme")
    from tagsmith.examples import Example
    from tagsmith.trainer import TrainingOptions

    logos = [
        Example(name, f"{name}-{i}.jpg", lambda rgb=rgb, i=i: solid_jpeg(rgb, noise=25, seed=i))
        for name, rgb in COLOURS.items()
        for i in range(6)
    ]
    components.trainer.train(
        tenant="acme", model_id="logo", examples=logos, options=TrainingOptions(threshold=0.6)
    )
    version = break_active_version(components, "acme", forged_npz((3, 10**10), 3))
    services = ConsoleServices.from_components(components)
    token = services.tokens.issue("acme", name="ana", role="reviewer")
    response = handle(Request.build("GET", "/api/models", {"Authorization": f"Bearer {token}"}), services)
    assert response.status == 200
    body = json.loads(response.body)
    assert [m["id"] for m in body["models"]] == ["logo"]  # the working model is still there
    [broken] = body["broken"]
    assert (broken["id"], broken["version"]) == ("colour", version)
    assert "coef" in broken["error"] and "10000000000" in broken["error"]


class CountingStore(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    def get(self, bucket: str, key: str):  # type: ignore[no-untyped-def]
        self.gets.append(key)
        return super().get(bucket, key)


def test_a_deflate_bomb_is_refused_from_its_headers_and_the_failure_is_cached(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagsmith.tagmodels import ActiveModels, ModelLoadError, ModelStore, checks

    monkeypatch.setattr(checks, "MAX_WEIGHTS_BYTES", 1024 * 1024)  # the same rule, at a test's scale
    train(components, "acme")
    counting = CountingStore()
    for info in components.store.list(DATA):
        counting.put(DATA, info.key, components.store.get(DATA, info.key).body)
    clock = [0.0]
    active = ActiveModels(
        models=ModelStore(store=counting, bucket=DATA), ttl=0.0, failure_ttl=60.0, clock=lambda: clock[0]
    )
    version = components.models.active_version("acme", "colour")
    key = f"{model_prefix('acme', 'colour')}versions/{version}/weights.npz"
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:  # 12 MiB of zeros in ~12 KB
        z.writestr("coef.npy", npy_header((3, 2**20)) + b"\0" * (3 * 2**20 * 4))
        z.writestr("intercept.npy", npy_header((3,)) + b"\0" * 12)
    counting.put(DATA, key, bomb.getvalue())

    for _ in range(5):  # five messages within the failure cache's lifetime
        with pytest.raises(ModelLoadError, match="over"):
            active.require("acme")
    assert counting.gets.count(key) == 1  # checked once, from the zip directory and the headers
    clock[0] = 61.0
    with pytest.raises(ModelLoadError):
        active.require("acme")
    assert counting.gets.count(key) == 2  # checked again once the failure expired


@pytest.mark.parametrize(
    ("arrays", "says"),
    [
        ({"coef": np.zeros((2, 3), np.float32)}, "lacks"),
        (
            {
                "coef": np.zeros((2, 3), np.float32),
                "intercept": np.zeros(2, np.float32),
                "x": np.zeros((2, 2, 2)),
            },
            "not a plain array",
        ),
        (
            {"coef": np.zeros((3, 3), np.float32), "intercept": np.zeros(2, np.float32)},
            "expected (2, <encoder",
        ),
        ({"coef": np.zeros((2, 4), np.float32), "intercept": np.zeros(2, np.float32)}, "encoder gives 3-d"),
        ({"coef": np.zeros((2, 3), np.int64), "intercept": np.zeros(2, np.float32)}, "expected float32"),
        ({"coef": np.zeros((2, 3), np.float32), "intercept": np.zeros(3, np.float32)}, "intercept has shape"),
    ],
)
def test_weights_are_checked_against_the_tags_and_the_encoder_width(
    arrays: dict[str, Any], says: str
) -> None:
    from tagsmith.tagmodels.checks import check_weights

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(InvalidInputError, match=says.replace("(", r"\(")):
        check_weights(buf.getvalue(), tags=2, dim=3)


def test_model_json_with_bad_tag_ids_or_deep_nesting_is_refused(components: Components) -> None:
    from tagsmith.tagmodels.checks import check_model_json

    with pytest.raises(InvalidInputError, match="invalid tag id"):
        check_model_json(json.dumps({"tags": ["ok", "../up"]}).encode())
    with pytest.raises(InvalidInputError, match="twice"):
        check_model_json(json.dumps({"tags": ["a", "a"]}).encode())
    with pytest.raises(InvalidInputError, match="nested too deeply"):
        check_model_json(b"[" * 100_000 + b"]" * 100_000)


def test_a_model_of_this_encoder_with_the_wrong_width_fails_its_tenant_clearly(
    components: Components,
) -> None:
    from tagsmith.tagmodels import ModelLoadError

    train_colours(components)
    version = components.models.active_version("acme", "colour")
    prefix = f"{model_prefix('acme', 'colour')}versions/{version}/"
    buf = io.BytesIO()
    np.savez(buf, coef=np.zeros((3, 7), np.float32), intercept=np.zeros(3, np.float32))
    components.store.put(DATA, prefix + "weights.npz", buf.getvalue())
    components.active_models.invalidate()
    [outcome] = components.ingest.ingest([upload(components, "acme/x.jpg", solid_jpeg(COLOURS["red"]))])
    assert isinstance(outcome, ModelLoadError)
    assert "7-d but encoder fake-hist-v1 gives 48-d" in str(outcome)
