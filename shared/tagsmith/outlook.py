"""What a trained model will do with uploads, in the words a person reads after ``tagsmith train``.

:func:`upload_outlook` is the one place that turns a model's figures into that outlook: it reads
what training measured and stored with the model (``TagModel.metrics["calibration"]``: the share
of held-out examples cross-validation auto-applied a tag to, how many of those tags were right, a
95% lower bound on that precision and how many predictions it rests on; models trained before the
calibration kept those figures carry ``auto_applied_coverage`` / ``auto_applied_precision``) and the
precision its thresholds were calibrated for. It derives nothing itself, so a change to how
calibration measures these figures shows here as it is.

>>> from tagsmith.tagmodels import TagModel
>>> from dataclasses import replace
>>> m = replace(TagModel.example(), metrics={"auto_applied_coverage": 0.4, "auto_applied_precision": 0.99})
>>> upload_outlook(m).sentence()
'about 40% of uploads will be tagged automatically (99% of those tags right in cross-validation); the rest go to the review queue'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UploadOutlook:
    """``auto_apply_share``: expected share of uploads that get a tag with no review (None: not
    measured, too few examples to cross-validate); ``precision``: share of those tags expected
    right (None when nothing was auto-applied); ``target_precision``: what the per-tag thresholds
    were calibrated for."""

    auto_apply_share: float | None
    precision: float | None
    target_precision: float | None
    examples_per_tag: int | None = None  # the smallest tag's count: what limits calibration
    precision_lower: float | None = None  # 95% lower bound of ``precision`` (Clopper-Pearson)
    applied: int | None = None  # the out-of-fold predictions auto-applied: what the bound rests on

    def to_dict(self) -> dict[str, Any]:
        return {
            "auto_apply_share": self.auto_apply_share,
            "precision": self.precision,
            "precision_lower": self.precision_lower,
            "applied": self.applied,
            "target_precision": self.target_precision,
        }

    def sentence(self) -> str:
        """One line: what happens to uploads."""
        if self.auto_apply_share is None:
            return (
                "too few examples to measure how many uploads will be tagged automatically; "
                "expect most to go to the review queue"
            )
        if self.auto_apply_share == 0:
            target = f"{self.target_precision:.0%}" if self.target_precision else "often enough"
            few = f"with {self.examples_per_tag} examples per tag, " if self.examples_per_tag else ""
            return (
                "no upload will be tagged automatically yet: every one goes to the review queue "
                f"({few}no confidence level was right {target} of the time, the bar for skipping review; "
                "each reviewed upload becomes an example for the next training)"
            )
        right = f" ({self.precision:.0%} of those tags right in cross-validation" if self.precision else ""
        if right and self.precision_lower is not None and self.applied:
            right += (
                f"; at least {self.precision_lower:.0%} with 95% confidence, from {self.applied} predictions"
            )
        right += ")" if right else ""
        if self.auto_apply_share >= 0.995:
            return (
                f"nearly every upload will be tagged automatically{right}; any other goes to the review queue"
            )
        return (
            f"about {self.auto_apply_share:.0%} of uploads will be tagged automatically{right}; "
            "the rest go to the review queue"
        )


def upload_outlook(model: Any) -> UploadOutlook:
    """The outlook of a :class:`~tagsmith.tagmodels.TagModel` from the figures it stores (of no
    model, None: nothing is known)."""
    if model is None:
        return UploadOutlook(None, None, None)
    metrics = model.metrics or {}
    counts = [int(n) for n in (getattr(model, "examples_per_tag", None) or {}).values()]
    calibration = metrics.get("calibration") or {}
    if calibration.get("cv_coverage") is not None:
        return UploadOutlook(
            auto_apply_share=_fraction(calibration.get("cv_coverage")),
            precision=_fraction(calibration.get("cv_precision")),
            target_precision=_fraction(getattr(model, "target_precision", None)),
            examples_per_tag=min(counts) if counts else None,
            precision_lower=_fraction(calibration.get("cv_precision_lower")),
            applied=int(calibration.get("cv_applied") or 0) or None,
        )
    return UploadOutlook(
        auto_apply_share=_fraction(metrics.get("auto_applied_coverage")),
        precision=_fraction(metrics.get("auto_applied_precision")),
        target_precision=_fraction(getattr(model, "target_precision", None)),
        examples_per_tag=min(counts) if counts else None,
    )


def _fraction(value: Any) -> float | None:
    return None if value is None else float(value)
