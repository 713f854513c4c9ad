"""The console's queue order: margin sampling, whatever the item's threshold."""

from __future__ import annotations

from tagsmith.console import informativeness, order_queue
from tagsmith.records import Alternative
from tagsmith.review import ReviewItem

NEVER = 1.000001  # the threshold of a tag whose calibration never reached the target precision


def item(name: str, confidence: float, threshold: float, *alternatives: float) -> ReviewItem:
    alts = tuple(Alternative(f"other{i}", c) for i, c in enumerate(alternatives))
    return ReviewItem(name, "acme", f"{name}.jpg", "sku", "v1", "milk", confidence, threshold, alts)


def test_a_near_certain_item_under_a_never_threshold_comes_last() -> None:
    # confidence 1.0 against a threshold of 1.000001 is "close to the threshold", but a reviewer
    # answering it teaches the model nothing: the tie between two tags comes first
    sure = item("sure", 1.0, NEVER)
    torn = item("torn", 0.48, NEVER, 0.45)
    leaning = item("leaning", 0.7, 0.9, 0.2)
    assert [i.id for i in order_queue([sure, leaning, torn])] == ["torn", "leaning", "sure"]
    assert informativeness(sure) == 0.0
    assert informativeness(torn) == 0.97


def test_without_alternatives_the_margin_is_the_confidence_itself() -> None:
    # exclusive items list runners-up only above 1%, multi-label items never do: both rank by margin
    assert informativeness(item("a", 0.3, 0.9)) == 0.7
    assert informativeness(item("b", 0.9, 0.5)) == 0.1
