"""Tag models: data format, training, routing, storage."""

from tagsmith.tagmodels.model import ModelKind, TagModel
from tagsmith.tagmodels.routing import route_prediction
from tagsmith.tagmodels.store import ActiveModels, BrokenModel, ModelLoadError, ModelStore
from tagsmith.tagmodels.training import LinearHead, fit_linear_head, l2_normalise

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
