"""Promotion is a compare-and-swap on ``active.json``: a concurrent promotion is detected, never
silently overwritten (two trainings of one model at once used to race, the last one winning)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from tagsmith.config import Settings
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import MemoryObjectStore
from tagsmith.tagmodels import LinearHead, ModelKind
from tagsmith.tagmodels.store import PromotionConflictError
from tagsmith.trainer import TrainingOptions, TrainingService
from tagsmith.wiring import Components, build

from tests.conftest import DATA
from tests.fakes import FakeEncoder
from tests.unit.test_trainer_versions import examples

ACTIVE_KEY = "tenants/acme/models/colour/active.json"


def active_json(components: Components) -> dict[str, str]:
    return dict(json.loads(components.store.get(DATA, ACTIVE_KEY).body))


def test_activate_refuses_when_the_expected_version_is_no_longer_active(components: Components) -> None:
    # GIVEN version one active, and a version two saved without activating
    first = components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    second = components.trainer.train(
        tenant="acme",
        model_id="colour",
        examples=examples(5, seed=7),
        options=TrainingOptions(activate=False),
    )
    # WHEN a promotion decided while no version was active lands
    with pytest.raises(PromotionConflictError) as caught:
        components.models.activate("acme", "colour", second.version, expected=None)
    # THEN it is refused, naming the version that is active, and nothing moved
    assert caught.value.active == first.version
    assert f"version {first.version} is active now" in str(caught.value)
    assert components.models.active_version("acme", "colour") == first.version
    # while the same promotion decided against version one goes through
    components.models.activate("acme", "colour", second.version, expected=first.version)
    assert active_json(components)["previous"] == first.version


class InterleavingStore(MemoryObjectStore):
    """Runs ``before`` once, just before the first write of ``key``: another writer between this
    writer's read and its write."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.before: Callable[[], None] | None = None

    def put(self, bucket: str, key: str, body: bytes, **kwargs: object) -> str:  # type: ignore[override]
        if key == self.key and self.before is not None:
            before, self.before = self.before, None
            before()
        return super().put(bucket, key, body, **kwargs)  # type: ignore[arg-type]


def test_activate_detects_a_write_between_its_read_and_its_write(settings: Settings) -> None:
    store = InterleavingStore(ACTIVE_KEY)
    components = build(settings, store=store, index=InMemorySearchIndex(), encoder=FakeEncoder())
    first = components.trainer.train(
        tenant="acme", model_id="colour", examples=examples(5), options=TrainingOptions(activate=False)
    )
    second = components.trainer.train(
        tenant="acme",
        model_id="colour",
        examples=examples(5, seed=7),
        options=TrainingOptions(activate=False),
    )
    # WHEN version two is promoted "whatever is active", and version one lands in between
    store.before = lambda: components.models.activate("acme", "colour", first.version)
    with pytest.raises(PromotionConflictError) as caught:
        components.models.activate("acme", "colour", second.version)
    # THEN the later write is refused instead of overwriting the earlier one
    assert caught.value.active == first.version
    assert "changed while it was being written" in str(caught.value)
    assert components.models.active_version("acme", "colour") == first.version


class RacedService(TrainingService):
    """Runs ``during_fit`` once while fitting: a second training of the same model at the same time."""

    during_fit: Callable[[], object] | None = None

    def _fit(self, x: np.ndarray, labels: Sequence[object], kind: ModelKind, **kw: Any) -> LinearHead:  # type: ignore[override]
        if self.during_fit is not None:
            during, self.during_fit = self.during_fit, None
            during()
        return super()._fit(x, labels, kind, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("already_active", [False, True])
def test_two_trainings_at_once_the_later_promotion_is_reported_not_applied(
    components: Components, already_active: bool
) -> None:
    before = None
    if already_active:
        before = components.trainer.train(tenant="acme", model_id="colour", examples=examples(5)).version
    slow = RacedService(tagger=components.tagger, models=components.models)
    won = []
    slow.during_fit = lambda: won.append(
        components.trainer.train(tenant="acme", model_id="colour", examples=examples(5, seed=30))
    )
    # WHEN a training that read the active version is overtaken by another one that promotes first
    lost = slow.train(tenant="acme", model_id="colour", examples=examples(6, seed=60))
    # THEN the overtaking version stays active, the slow one is saved but not activated, and says why
    winner = won[0].version
    assert won[0].promotion is not None and won[0].promotion.promoted
    assert components.models.active_version("acme", "colour") == winner
    assert active_json(components)["previous"] == before
    assert lost.promotion is not None and not lost.promotion.promoted and not lost.activated
    assert f"version {winner} is active now" in lost.promotion.reason
    assert any(f"version {winner} is active now" in w for w in lost.warnings)
    stored = json.loads(components.models.version_file("acme", "colour", lost.version, "report.json") or b"")
    assert stored["activated"] is False and stored["promotion"]["promoted"] is False
    assert lost.version in components.models.versions("acme", "colour")
