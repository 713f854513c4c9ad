"""A populated console scene shared by the console's API tests, browser tests and screenshots.

Two tenants, each with a trained model (the demo products: jacket, tote, bottle), clean photos that
were tagged automatically and ambiguous ones (two products blended) waiting for review, built with
the real training and ingest services. Tokens: an ``acme`` reviewer and reader, a ``beta`` reviewer.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from tagsmith.auth import TokenStore
from tagsmith.config import Settings
from tagsmith.console import ConsoleServices
from tagsmith.events import ObjectRef
from tagsmith.examples import Example
from tagsmith.local import demo
from tagsmith.review import ReviewItem
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import MemoryObjectStore
from tagsmith.trainer import TrainingOptions
from tagsmith.wiring import Components, build

BLENDS = [
    ("storm-blue-jacket", "sunset-tote"),
    ("sunset-tote", "forest-bottle"),
    ("forest-bottle", "storm-blue-jacket"),
    ("storm-blue-jacket", "forest-bottle"),
    ("sunset-tote", "storm-blue-jacket"),
    ("forest-bottle", "sunset-tote"),
]


#: How long a browser assertion waits for the page to settle (Playwright's default is 5 s): the
#: suite shares 2 cores with local stacks and other tests, where a search round trip has been slower.
EXPECT_TIMEOUT_MS = 15_000


def expect(locator: Any) -> Any:
    """Playwright's ``expect`` waiting :data:`EXPECT_TIMEOUT_MS` (imported here: only the browser
    tests need Playwright)."""
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    return pw_expect(locator)


@dataclass
class Scene:
    components: Components
    services: ConsoleServices
    reviewer: str  # acme reviewer token (name "ana")
    reader: str  # acme read-only token
    other: str  # beta reviewer token

    def pending(self, tenant: str = "acme") -> list[ReviewItem]:
        """Pending items in the console's order (most informative first)."""
        from tagsmith.console import order_queue

        return order_queue(self.components.reviews.pending(tenant))


def train_products(c: Components, tenant: str, *, threshold: float) -> str:
    bucket = c.settings.data_bucket
    base = f"tenants/{tenant}/examples/{demo.MODEL}/"
    examples = []
    for tag, images in demo.training_set(per_tag=6).items():
        for i, data in enumerate(images):
            c.store.put(bucket, f"{base}{tag}/{i:02d}.jpg", data)
            examples.append(Example(tag, f"{base}{tag}/{i:02d}.jpg", lambda data=data: data))
    request = {
        "model": demo.MODEL,
        "examples": f"s3://{bucket}/{base}",
        "kind": "exclusive",
        "threshold": threshold,
    }
    c.store.put(bucket, f"tenants/{tenant}/training-requests/first.train.json", json.dumps(request).encode())
    from tagsmith.taxonomy import Taxonomy

    report = c.trainer.train(
        tenant=tenant,
        model_id=demo.MODEL,
        examples=examples,
        taxonomy=Taxonomy.from_json(demo.taxonomy_json()),
        options=TrainingOptions(threshold=threshold, allow_near_duplicates=True),
    )
    return report.version


def upload_photos(c: Components, tenant: str, *, blends: int, clean: int) -> None:
    bucket = c.settings.assets_bucket
    files: dict[str, bytes] = {}
    for n in range(blends):
        a, b = BLENDS[n % len(BLENDS)]
        files[f"shelf/{a.split('-')[-1]}-or-{b.split('-')[-1]}-{n:02d}.jpg"] = demo.jpeg(
            demo.blend_photo(a, b, 40 + n)
        )
    for n in range(clean):
        tag = demo.TAGS[n % len(demo.TAGS)]
        files[f"catalogue/{tag}-{n:02d}.jpg"] = demo.jpeg(demo.product_photo(tag, 300 + n))
    refs = []
    for path, data in files.items():
        key = f"{tenant}/{path}"
        etag = c.store.put(bucket, key, data, content_type="image/jpeg")
        refs.append(ObjectRef(bucket, key, etag, len(data)))
    for outcome in c.ingest.ingest(refs):
        assert not isinstance(outcome, Exception), outcome


def with_retrain_every(c: Components, every: int) -> Components:
    """``c`` with the deployment's retrain policy set to ``every`` corrections (a settings value)."""
    c.settings = dataclasses.replace(c.settings, retrain_every=every)
    return c


def build_scene(
    c: Components, *, blends: int = 6, clean: int = 3, threshold: float = 0.9, retrain_every: int = 25
) -> Scene:
    for tenant in ("acme", "beta"):
        train_products(c, tenant, threshold=threshold)
        upload_photos(
            c, tenant, blends=blends if tenant == "acme" else 2, clean=clean if tenant == "acme" else 1
        )
    tokens = TokenStore(store=c.store, bucket=c.settings.data_bucket)
    return Scene(
        components=c,
        services=ConsoleServices.from_components(with_retrain_every(c, retrain_every)),
        reviewer=tokens.issue("acme", name="ana", role="reviewer"),
        reader=tokens.issue("acme", name="rita", role="reader"),
        other=tokens.issue("beta", name="bo", role="reviewer"),
    )


def copy_store(store: MemoryObjectStore) -> MemoryObjectStore:
    """A copy of a memory store's objects (they are immutable), so one built scene serves many tests."""
    copy = MemoryObjectStore()
    for bucket in {b for b, _ in store._objects}:
        for info in store.list(bucket):
            obj = store.get(bucket, info.key)
            copy.put(bucket, info.key, obj.body, content_type=info.content_type)
    return copy


def clone_scene(scene: Scene, *, index: Any, retrain_every: int = 25) -> Scene:
    """The scene on a fresh copy of its store, projected into ``index`` (e.g. an OpenSearch clone)."""
    source = scene.components
    store = copy_store(source.store)  # type: ignore[arg-type]
    c = build(source.settings, store=store, index=index, encoder=source.encoder)
    for tenant in ("acme", "beta"):
        models = c.active_models.for_tenant(tenant)
        c.index.rebuild(tenant, list(c.records.iter_tenant(tenant)), {m.model_id: m.taxonomy for m in models})
    return Scene(
        components=c,
        services=ConsoleServices.from_components(with_retrain_every(c, retrain_every)),
        reviewer=scene.reviewer,
        reader=scene.reader,
        other=scene.other,
    )


def new_scene(*, encoder: Any = None, **kw: Any) -> Scene:
    """A scene over in-memory adapters and (unless one is given) the fast fake encoder."""
    from tests.fakes import FakeEncoder

    c = build(
        Settings(data_bucket="data", assets_bucket="assets"),
        store=MemoryObjectStore(),
        index=InMemorySearchIndex(),
        encoder=encoder or FakeEncoder(),
    )
    return build_scene(c, **kw)
