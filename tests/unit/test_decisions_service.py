"""The decision service over in-memory adapters, the real ingest and training services and a fake
encoder: a human decision is written, indexed, counted, and survives every later machine pass."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from tagsmith.decisions import (
    Action,
    CorrectionTracker,
    DecisionError,
    DecisionService,
    RetrainPolicy,
    corrections_key,
)
from tagsmith.errors import NotFoundError
from tagsmith.events import ObjectRef
from tagsmith.examples import Example
from tagsmith.keys import AssetKey
from tagsmith.records import NONE_TAG, AssetRecord, Source, TagState
from tagsmith.review import ReviewItem, ReviewStatus
from tagsmith.search import SearchQuery
from tagsmith.trainer import TrainingOptions
from tagsmith.trainjobs import TrainingJobs
from tagsmith.wiring import Components

from tests.conftest import ASSETS, DATA
from tests.fakes import COLOURS, solid_jpeg


def train(c: Components, threshold: float = 0.99, extra: int = 0) -> str:
    examples = [
        Example(name, f"{name}-{i}.jpg", lambda rgb=rgb, i=i: solid_jpeg(rgb, noise=25, seed=i))
        for name, rgb in COLOURS.items()
        for i in range(6 + extra)
    ]
    return c.trainer.train(
        tenant="acme", model_id="colour", examples=examples, options=TrainingOptions(threshold=threshold)
    ).version


def blend(a: str, b: str, alpha: float = 0.5) -> bytes:
    im = Image.blend(
        Image.open(io.BytesIO(solid_jpeg(COLOURS[a]))), Image.open(io.BytesIO(solid_jpeg(COLOURS[b]))), alpha
    )
    buf = io.BytesIO()
    im.save(buf, "JPEG")
    return buf.getvalue()


def upload(c: Components, key: str, body: bytes) -> ObjectRef:
    etag = c.store.put(ASSETS, key, body)
    return ObjectRef(ASSETS, key, etag, len(body))


def service(c: Components, every: int = 0) -> DecisionService:
    tracker = CorrectionTracker(
        store=c.store,
        data_bucket=DATA,
        models=c.active_models,
        policy=RetrainPolicy(every),
    )
    return DecisionService(
        records=c.records, reviews=c.reviews, models=c.active_models, index=c.index, corrections=tracker
    )


def record(c: Components, path: str) -> AssetRecord:
    got = c.records.get(AssetKey("acme", path))
    assert got is not None
    return got[0]


def item_for(c: Components, path: str) -> ReviewItem:
    return next(i for i in c.reviews.iter_tenant("acme") if i.asset_path == path)


@pytest.fixture
def queued(components: Components) -> dict[str, ObjectRef]:
    """Three uncertain photos, each with a pending review item."""
    train(components)
    refs = {
        "a.jpg": upload(components, "acme/a.jpg", blend("red", "blue", 0.4)),
        "b.jpg": upload(components, "acme/b.jpg", blend("green", "blue", 0.5)),
        "c.jpg": upload(components, "acme/c.jpg", blend("red", "green", 0.6)),
    }
    components.ingest.ingest(list(refs.values()))
    assert len(components.reviews.pending("acme")) == 3
    return refs


def test_accept_writes_provenance_closes_the_item_and_reindexes(components: Components, queued: dict) -> None:
    item = item_for(components, "a.jpg")
    outcome = service(components).decide("acme", item.id, "accept", reviewer="ana")
    [tag] = record(components, "a.jpg").tags
    assert (tag.tag, tag.state, tag.source, tag.decided_by) == (
        item.suggestion,
        TagState.CONFIRMED,
        Source.HUMAN,
        "ana",
    )
    assert tag.decided_at is not None
    assert outcome.changed and outcome.item_status == "decided"
    stored = components.reviews.get("acme", item.id)
    assert stored is not None and (stored.status, stored.decided_by) == (ReviewStatus.DECIDED, "ana")
    assert stored.decision == {"action": "accept", "tag": None, "stale": []}
    page = components.index.search("acme", SearchQuery(tags=[f"colour/{item.suggestion}"], source="human"))
    assert [h.asset_key for h in page.hits] == ["acme/a.jpg"]
    assert item.id not in {i.id for i in components.reviews.pending("acme")}


def test_decisions_stand_after_reingesting_with_a_retrained_model(
    components: Components, queued: dict
) -> None:
    svc = service(components)
    a, b, c = (item_for(components, p) for p in ("a.jpg", "b.jpg", "c.jpg"))
    wrong = next(t for t in COLOURS if t != c.suggestion)
    svc.decide("acme", a.id, Action.REJECT, reviewer="ana")
    svc.decide("acme", b.id, Action.NONE, reviewer="ana")
    svc.decide("acme", c.id, Action.PICK, tag=wrong, reviewer="ana")
    before = {p: record(components, p).tags for p in queued}

    new_version = train(components, threshold=0.3, extra=2)  # retrained, far more eager to apply tags
    components.active_models.invalidate()
    outcomes = components.ingest.ingest(list(queued.values()))  # reprocessing / backfill of the same objects

    assert [o.status for o in outcomes] == ["tagged"] * 3  # the new model really ran
    assert all(record(components, p).models == {"colour": new_version} for p in queued)
    assert record(components, "b.jpg").tags == before["b.jpg"]  # "none of these" silences the model
    assert record(components, "c.jpg").tags == before["c.jpg"]  # the picked tag stays, alone
    rejected = (a.suggestion, TagState.REJECTED)
    assert rejected in [(t.tag, t.state) for t in record(components, "a.jpg").tags]
    assert all(
        t.tag != a.suggestion or t.state is TagState.REJECTED for t in record(components, "a.jpg").tags
    )  # never re-applied
    assert [i.asset_path for i in components.reviews.pending("acme")] in ([], ["a.jpg"])
    page = components.index.search("acme", SearchQuery(tags=[f"colour/{wrong}"]))
    assert "acme/c.jpg" in [h.asset_key for h in page.hits]
    assert NONE_TAG not in json.dumps(page.to_dict()["facets"])


def test_deciding_twice_changes_nothing_the_second_time(components: Components, queued: dict) -> None:
    svc = service(components, every=100)
    item = item_for(components, "a.jpg")
    first = svc.decide("acme", item.id, "accept", reviewer="ana")
    revision = record(components, "a.jpg").revision
    second = svc.decide("acme", item.id, "accept", reviewer="bo")
    assert (first.changed, second.changed) == (True, False)
    assert record(components, "a.jpg").revision == revision
    assert record(components, "a.jpg").tags[0].decided_by == "ana"
    counts = json.loads(components.store.get(DATA, corrections_key("acme", "colour")).body)
    assert counts["total"] == 1


def test_a_stale_decision_is_applied_and_recorded(components: Components, queued: dict) -> None:
    item = item_for(components, "a.jpg")
    new_body = blend("red", "blue", 0.45)  # the asset is replaced after the item was made
    components.ingest.ingest([upload(components, "acme/a.jpg", new_body)])
    stale_item = components.reviews.get("acme", item.id)
    assert stale_item is not None
    components.reviews.put(item)  # the reviewer's screen still shows the old question
    outcome = service(components).decide("acme", item.id, "accept", reviewer="ana")
    assert outcome.stale and "asset changed" in outcome.stale[0]
    assert record(components, "a.jpg").tags[0].state is TagState.CONFIRMED  # humans win
    stored = components.reviews.get("acme", item.id)
    assert stored is not None and stored.decision is not None and stored.decision["stale"] == outcome.stale


def test_another_tenants_item_cannot_be_decided(components: Components, queued: dict) -> None:
    item = item_for(components, "a.jpg")
    with pytest.raises(NotFoundError):
        service(components).decide("beta", item.id, "accept", reviewer="mallory")
    assert record(components, "a.jpg").tags[0].state is TagState.REVIEW


def test_picking_a_tag_the_model_does_not_know_is_refused(components: Components, queued: dict) -> None:
    item = item_for(components, "a.jpg")
    with pytest.raises(DecisionError, match="pick one of blue, green, red"):
        service(components).decide("acme", item.id, "pick", tag="purple", reviewer="ana")
    with pytest.raises(DecisionError, match="unknown action"):
        service(components).decide("acme", item.id, "maybe", reviewer="ana")


def test_bulk_accept_decides_matching_items_and_reports_the_rest(
    components: Components, queued: dict
) -> None:
    items = [item_for(components, p) for p in ("a.jpg", "b.jpg", "c.jpg")]
    tag = items[0].suggestion
    results = service(components).bulk_accept(
        "acme", [i.id for i in items] + ["nope"], reviewer="ana", tag=tag
    )
    assert len(results) == 4
    for item, result in zip(items, results, strict=False):
        if item.suggestion == tag:
            assert not isinstance(result, Exception) and result.changed
        else:
            assert isinstance(result, DecisionError)
    assert isinstance(results[-1], NotFoundError)


def test_corrections_trigger_a_retrain_on_the_reviewed_examples(components: Components, queued: dict) -> None:
    examples = f"s3://{DATA}/tenants/acme/examples/colour/"
    components.store.put(
        DATA,
        "tenants/acme/training-requests/first.train.json",
        json.dumps({"model": "colour", "examples": examples}).encode(),
    )
    for name, rgb in COLOURS.items():
        for i in range(5):
            components.store.put(
                DATA, f"tenants/acme/examples/colour/{name}/{i}.jpg", solid_jpeg(rgb, noise=20, seed=i)
            )
    svc = service(components, every=2)
    a, b = item_for(components, "a.jpg"), item_for(components, "b.jpg")
    assert svc.decide("acme", a.id, "accept", reviewer="ana").retrain is None
    assert svc.decide("acme", a.id, "reject", reviewer="ana").retrain is None  # no example: not counted
    outcome = svc.decide("acme", b.id, "pick", tag="green", reviewer="ana")

    assert outcome.retrain is not None
    key = outcome.retrain["key"]
    assert key == "tenants/acme/training-requests/colour-reviewed-000002.train.json"
    request = json.loads(components.store.get(DATA, key).body)
    # the retrain starts from what the active version learnt from (whatever that came from), plus answers
    assert (request["previous_examples"], request["corrections"], request["kind"]) == (
        True,
        True,
        "exclusive",
    )
    assert "examples" not in request
    assert "threshold" not in request  # the retrain calibrates its thresholds, never a flat one
    state = json.loads(components.store.get(DATA, corrections_key("acme", "colour")).body)
    assert (state["total"], state["since_request"]) == (2, 0)
    baseline = state["requests"][-1]["baseline"]
    assert baseline == request["baseline"]
    assert baseline["examples"] == 18 and baseline["cv_accuracy"] is not None

    jobs = TrainingJobs(
        store=components.store,
        data_bucket=DATA,
        trainer=components.trainer,
        records=components.records,
        assets_bucket=ASSETS,
    )
    assert jobs.run(key)["state"] == "trained"
    status = jobs.status("acme", "colour")
    assert status is not None
    # the active version's 18 examples and the one answer that gives an example (a.jpg was rejected in the end)
    assert sum(status["report"]["examples_per_tag"].values()) == 18 + 1
