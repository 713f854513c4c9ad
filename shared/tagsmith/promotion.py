"""Promotion: whether a new model version replaces the active one.

The rule (:func:`decide_promotion`): the new version is promoted unless it is measurably worse than
the active one (:func:`measured_regression`) on evidence neither was trained on: the examples new
since the active version (identified by content hash from its ``examples.json``), which the active
version scores directly and the new one by models trained on everything else; or, when there are
none, both versions' cross-validation of the examples both were trained on
(:func:`shared_cross_validation`, the active version's from the out-of-fold evidence it keeps).
``docs/training.md`` has the reasoning; :mod:`tagsmith.trainer` gathers the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagsmith.records import TagState
from tagsmith.tagmodels import ModelKind, TagModel, route_prediction
from tagsmith.training_report import Promotion

#: A version's example content hashes in training order: (tenant, model id, version) -> hashes.
TrainingOrder = Callable[[str, str, str], "list[str] | None"]


@dataclass
class CrossValidation:
    folds: int
    probabilities: np.ndarray  # (N, T) out-of-fold, columns in the final model's tag order
    applied: list[set[int]]  # per example: tag indices the fold model's routing applied
    predicted: list[set[int]] = field(default_factory=list)  # multi-label: tags at p >= 0.5


def score_cv(
    model: TagModel, cv: CrossValidation, held: list[int], truth: list[set[str]], known: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per example of ``held``: (right decisions, wrongly auto-applied tags) of the new version's
    out-of-fold predictions (exclusive: 0 or 1 right; multi-label: one decision per known tag)."""
    cols = [i for i, t in enumerate(model.tags) if t in known]
    if model.kind is ModelKind.EXCLUSIVE:
        right = [int(model.tags[int(cv.probabilities[i].argmax())] in truth[i]) for i in held]
    else:
        right = [sum((c in cv.predicted[i]) == (model.tags[c] in truth[i]) for c in cols) for i in held]
    wrong = [
        sum(1 for c in cv.applied[i] if model.tags[c] in known and model.tags[c] not in truth[i])
        for i in held
    ]
    return np.asarray(right, dtype=np.int64), np.asarray(wrong, dtype=np.int64)


def as_scoring(model: TagModel, texts: Sequence[str] | None) -> TagModel:
    """``model`` as it can score these examples: without their text, its image half alone."""
    return model if texts is not None else model.image_only()


def score_model(
    model: TagModel,
    x: np.ndarray,
    truth: list[set[str]],
    known: set[str],
    texts: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per example: (right decisions, wrongly auto-applied tags) of a stored model on embeddings it
    never saw, with its own routing (see :func:`score_cv`)."""
    probs = model.predict(x, texts if model.text is not None else None)
    right, wrong = [], []
    for row, tags in zip(probs, truth, strict=True):
        applied = {a.tag for a in route_prediction(model, row) if a.state is TagState.APPLIED}
        if model.kind is ModelKind.EXCLUSIVE:
            right.append(int(model.tags[int(row.argmax())] in tags))
        else:
            right.append(sum((row[c] >= 0.5) == (t in tags) for c, t in enumerate(model.tags) if t in known))
        wrong.append(sum(1 for t in applied if t in known and t not in tags))
    return np.asarray(right, dtype=np.int64), np.asarray(wrong, dtype=np.int64)


#: A difference between two versions on the same examples counts as measured when it is more than
#: this many standard errors (one-sided 95%): ``(losses - wins) / sqrt(wins + losses)``.
REGRESSION_Z = 1.645


def measured_regression(new: np.ndarray, old: np.ndarray, *, z: float = REGRESSION_Z) -> bool:
    """Whether per-example scores ``new`` are worse than ``old`` beyond noise: the examples where
    they differ are a paired sample; fewer of them going the new version's way than chance allows.

    >>> measured_regression(np.array([1, 1, 1, 0]), np.array([1, 1, 0, 1]))  # one each way: noise
    False
    >>> measured_regression(np.zeros(8, int), np.ones(8, int))
    True
    """
    diff = np.asarray(new, dtype=np.int64) - np.asarray(old, dtype=np.int64)
    wins, losses = int(diff[diff > 0].sum()), int(-diff[diff < 0].sum())
    return bool(losses - wins > z * np.sqrt(max(wins + losses, 1)))


def decide_promotion(
    model: TagModel,
    active: TagModel | None,
    seen: set[str] | None,
    x_active: np.ndarray | None,
    shas: list[str],
    truth: list[set[str]],
    cv: CrossValidation | None,
    *,
    activate: bool,
    force: bool,
    texts: Sequence[str] | None = None,
    new_cv: CrossValidation | None = None,
    training_order: TrainingOrder | None = None,
) -> tuple[Promotion, dict[str, Any]]:
    """Promote or not (module docstring, "Promotion rule"): both versions are scored on the same
    evidence neither was trained on, and a measured regression is never promoted. ``new_cv``:
    the new version's out-of-fold predictions of the examples new since the active version
    (default ``cv``). ``training_order``: the content hashes of a version's examples in the order
    it was trained on (:meth:`ModelStore.training_order`), for the cross-validation both versions
    share; None: none is compared."""
    changes: dict[str, Any] = {}
    if active is not None:
        changes["tags_added"] = sorted(set(model.tags) - set(active.tags))
        changes["tags_removed"] = sorted(set(active.tags) - set(model.tags))
        if seen is not None:
            changes["examples_added"] = len(set(shas) - seen)
            changes["examples_removed"] = len(seen - set(shas))
    if force:
        return Promotion(True, "forced", active.version if active else None, forced=True), changes
    if not activate:
        return Promotion(
            False, "saved without activating, as asked", active.version if active else None
        ), changes
    if active is None:
        return Promotion(True, "first version of this model"), changes
    if x_active is None:
        return Promotion(
            True,
            f"the active version {active.version} uses encoder {active.encoder_id}, which this "
            f"deployment no longer runs",
            active.version,
        ), changes
    if seen is None:
        return Promotion(
            True,
            f"the active version {active.version} has no record of its training examples, "
            "so there is no held-out data to compare on",
            active.version,
        ), changes
    if cv is None:
        return Promotion(
            True,
            "too few examples per tag to cross-validate the new version: nothing to compare",
            active.version,
        ), changes
    known = set(active.tags) & set(model.tags)
    held = [
        i
        for i, (sha, tags) in enumerate(zip(shas, truth, strict=True))
        if sha not in seen and tags <= known and (tags or model.kind is ModelKind.MULTILABEL)
    ]
    unit = "examples" if model.kind is ModelKind.EXCLUSIVE else "tag decisions"
    checks: list[tuple[bool, str, tuple[int, int, int, int], int]] = []
    if held:
        # The examples added since the active version (reviewed uploads, new photos): it never
        # saw them, and the new version scores each by a model trained on everything but it
        # (and a fifth of the other new ones): both trained on all the old examples.
        new_right, new_wrong = score_cv(model, new_cv or cv, held, truth, known)
        old_right, old_wrong = score_model(
            as_scoring(active, texts), x_active[held], [truth[i] for i in held], known,
            [texts[i] for i in held] if texts is not None and active.text is not None else None,
        )  # fmt: skip
        # fewer wrong tags auto-applied is better: compare their negatives
        ok = not measured_regression(new_right, old_right) and not measured_regression(-new_wrong, -old_wrong)
        counts = (int(new_right.sum()), int(old_right.sum()), int(new_wrong.sum()), int(old_wrong.sum()))
        checks.append(
            (ok, f"{len(held)} examples added since it (neither was trained on them)", counts, len(held))
        )
    # Cross-validation of both only where nothing new tells them apart: the series folds of a set
    # with more photos of a series hold out more, so out-of-fold figures of different sets are
    # not comparable.
    shared = (
        None
        if held or training_order is None
        else shared_cross_validation(model, active, shas, truth, cv, training_order)
    )
    if shared is not None:
        # Both versions' out-of-fold predictions on the examples both were trained on: a version
        # that forgot what the active one knew is a regression too.
        rows, (new_right, old_right, new_wrong, old_wrong) = shared
        ok = not measured_regression(new_right, old_right) and not measured_regression(-new_wrong, -old_wrong)
        counts = (int(new_right.sum()), int(old_right.sum()), int(new_wrong.sum()), int(old_wrong.sum()))
        checks.append(
            (ok, f"cross-validation on the {len(rows)} examples both were trained on", counts, len(rows))
        )
    added = f"it adds tags {', '.join(changes['tags_added'])}; " if changes.get("tags_added") else ""
    if not checks:
        return Promotion(
            True,
            f"{added}no examples unseen by the active version and no out-of-fold evidence of it to compare on",
            active.version,
        ), changes
    better = all(ok for ok, *_ in checks)
    parts = [
        f"{'not worse' if ok else 'worse'} on {what}: {c[0]} vs {c[1]} {unit} right, {c[2]} vs {c[3]} tags "
        "wrongly auto-applied"
        for ok, what, c, _ in checks
    ]
    verdict = "not worse than" if better else "worse than"
    reason = f"{added}{verdict} the active version {active.version}: " + "; ".join(parts)
    if not better:
        reason += "; the active version stays (use --force to promote this one anyway)"
    _, _, (nc, oc, nw, ow), n = checks[0]
    return Promotion(better, reason, active.version, n, nc, oc, nw, ow), changes


def shared_cross_validation(
    model: TagModel,
    active: TagModel,
    shas: list[str],
    truth: list[set[str]],
    cv: CrossValidation,
    training_order: TrainingOrder,
) -> tuple[list[int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None:
    """(rows, per example: new right, old right, new wrongly applied, old wrongly applied) on
    the examples both versions were trained on, from each one's out-of-fold evidence; None when
    the active version kept none (exclusive models only)."""
    if model.kind is not ModelKind.EXCLUSIVE or active.evidence is None:
        return None
    order = training_order(active.tenant, active.model_id, active.version)
    if order is None:
        return None
    mine = {sha: i for i, sha in enumerate(shas)}
    evidence = active.evidence
    rows_new, rows_old = [], []
    for j, sha in enumerate(order):
        if j >= len(evidence) or sha not in mine or evidence.unknown[j] or evidence.truth[j] < 0:
            continue
        tag = active.tags[evidence.truth[j]]
        if tag in truth[mine[sha]] and tag in model.tags:
            rows_new.append(mine[sha])
            rows_old.append(j)
    if not rows_new:
        return None
    known = set(active.tags) & set(model.tags)
    new_right, new_wrong = score_cv(model, cv, rows_new, truth, known)
    old_right = evidence.correct[rows_old].astype(np.int64)
    applied = evidence.confidence[rows_old] >= active.thresholds[evidence.tag[rows_old]]
    old_wrong = (applied & ~evidence.correct[rows_old]).astype(np.int64)
    return rows_new, (new_right, old_right, new_wrong, old_wrong)
