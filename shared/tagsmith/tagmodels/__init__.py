"""Tag models: data format, training, routing, storage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tagsmith.tagmodels.model import ModelKind, TagModel
from tagsmith.tagmodels.routing import route_prediction
from tagsmith.tagmodels.store import ActiveModels, BrokenModel, ModelLoadError, ModelStore

if TYPE_CHECKING:
    from tagsmith.tagmodels.training import LinearHead, fit_linear_head, l2_normalise

# Fitting brings scikit-learn and SciPy (about 1 s to import on 2 cores): loaded on first use, so
# reading models (the console, the CLI's record and review commands) does not pay for it.
_TRAINING = ("LinearHead", "fit_linear_head", "l2_normalise")


def __getattr__(name: str) -> Any:
    if name in _TRAINING:
        from tagsmith.tagmodels import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ActiveModels",
    "BrokenModel",
    "LinearHead",
    "ModelKind",
    "ModelLoadError",
    "ModelStore",
    "TagModel",
    "fit_linear_head",
    "l2_normalise",
    "route_prediction",
]
