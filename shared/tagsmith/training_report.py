"""The training report: what a marketer reads after training, as JSON and as a self-contained page.

Stored beside the version it describes::

    tenants/<t>/models/<m>/versions/<v>/report.json
    tenants/<t>/models/<m>/versions/<v>/report.html    inline CSS, thumbnails as inline JPEGs

The figures come from cross-validation on the examples (each example is predicted by a model that
did not see it), so they are honest about few-shot data; :func:`per_tag_metrics` and
:func:`confused_pairs` are pure functions over label indices.

>>> per_tag_metrics(("a", "b"), [0, 0, 1, 1], [0, 1, 1, 1])["b"]
{'precision': 0.667, 'recall': 1.0, 'support': 2}
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

REPORT_FORMAT = 1
THUMBNAIL_PX = 96


@dataclass(frozen=True)
class ConfusedPair:
    """Examples of ``tag`` that cross-validation predicted as ``predicted_as``."""

    tag: str
    predicted_as: str
    count: int
    examples: tuple[str, ...]  # sources, most confident mistakes first
    thumbnails: tuple[str, ...] = ()  # data: URIs of small JPEGs, same order as ``examples``


@dataclass(frozen=True)
class Promotion:
    """Whether the new version became active, and why."""

    promoted: bool
    reason: str
    compared_with: str | None = None  # the version that was active
    held_out: int = 0  # unseen examples both versions were scored on
    new_correct: int | None = None
    old_correct: int | None = None
    new_wrongly_applied: int | None = None
    old_wrongly_applied: int | None = None
    forced: bool = False


@dataclass
class TrainingReport:
    tenant: str
    model_id: str
    version: str
    kind: str
    tags: list[str]
    examples_per_tag: dict[str, int]
    cv_accuracy: float | None
    warnings: list[str] = field(default_factory=list)
    embedded: int = 0  # examples run through the encoder for this training
    cached: int = 0  # examples whose embedding came from the cache
    seconds: float = 0.0
    activated: bool = True
    encoder_id: str = ""
    created_at: str = ""
    source: str = ""  # where the examples came from, as the user gave it
    examples: int = 0
    cv_folds: int = 0
    per_tag: dict[str, dict[str, float | int]] = field(default_factory=dict)
    auto_applied: dict[str, float | int | None] = field(default_factory=dict)
    confused: list[ConfusedPair] = field(default_factory=list)
    promotion: Promotion | None = None
    changes: dict[str, Any] = field(
        default_factory=dict
    )  # vs the active version: tags/examples added, removed
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    #: each candidate recipe (encoder) and its cross-validated accuracy on these examples; the
    #: model was trained for ``encoder_id``, the best of them
    recipes: dict[str, float | None] = field(default_factory=dict)
    #: what the thresholds promise (out of fold): target, expected precision with its 95% lower
    #: bound, share of uploads like the examples auto-applied, and what that rests on
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = REPORT_FORMAT
        return d

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1).encode()

    def summary(self) -> dict[str, Any]:
        """The report without thumbnails: what a status file or a JSON CLI line carries."""
        d = self.to_dict()
        for pair in d["confused"]:
            pair.pop("thumbnails", None)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingReport:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["confused"] = [
            ConfusedPair(
                **{**p, "examples": tuple(p["examples"]), "thumbnails": tuple(p.get("thumbnails", ()))}
            )
            for p in d.get("confused", [])
        ]
        if d.get("promotion"):
            d["promotion"] = Promotion(**d["promotion"])
        return cls(**d)


# --- pure metrics -----------------------------------------------------------------------------------
def per_tag_metrics(
    tags: Sequence[str], truth: Sequence[int], predicted: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Precision, recall and support per tag of an exclusive model, from label indices."""
    out = {}
    for i, tag in enumerate(tags):
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t == i and p == i)
        predicted_i = sum(1 for p in predicted if p == i)
        support = sum(1 for t in truth if t == i)
        out[tag] = {
            "precision": round(tp / predicted_i, 3) if predicted_i else 0.0,
            "recall": round(tp / support, 3) if support else 0.0,
            "support": support,
        }
    return out


def multilabel_metrics(
    tags: Sequence[str], truth: Sequence[set[int]], predicted: Sequence[set[int]]
) -> dict[str, dict[str, Any]]:
    """Precision, recall and support per tag of a multi-label model, from sets of label indices."""
    out = {}
    for i, tag in enumerate(tags):
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if i in t and i in p)
        predicted_i = sum(1 for p in predicted if i in p)
        support = sum(1 for t in truth if i in t)
        out[tag] = {
            "precision": round(tp / predicted_i, 3) if predicted_i else 0.0,
            "recall": round(tp / support, 3) if support else 0.0,
            "support": support,
        }
    return out


def confused_pairs(
    tags: Sequence[str],
    mistakes: Sequence[tuple[int, int, float, str]],
    *,
    limit: int = 8,
    examples_per_pair: int = 3,
) -> list[ConfusedPair]:
    """The most frequent (true tag, predicted tag) mistakes, each with its most confident examples.

    ``mistakes`` holds ``(true index, predicted index, confidence, source)`` per wrong prediction.
    """
    counts = Counter((t, p) for t, p, _, _ in mistakes)
    pairs = []
    for (t, p), n in sorted(counts.items(), key=lambda kv: (-kv[1], tags[kv[0][0]], tags[kv[0][1]]))[:limit]:
        worst = sorted((m for m in mistakes if m[0] == t and m[1] == p), key=lambda m: -m[2])[
            :examples_per_pair
        ]
        pairs.append(ConfusedPair(tags[t], tags[p], n, tuple(m[3] for m in worst)))
    return pairs


def thumbnail_data_uri(image: Image.Image, size: int = THUMBNAIL_PX) -> str:
    """A small JPEG of ``image`` as a ``data:`` URI, so the HTML page needs no other file."""
    im = image.convert("RGB")
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- HTML -------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2330;padding:0 1rem}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:2rem 0 .6rem;border-bottom:1px solid #dde2ea;padding-bottom:.2rem}
.muted{color:#5d6677}.ok{color:#17703a}.bad{color:#a3261b}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid #eef1f5}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:.55rem;background:#4b7bec;border-radius:2px;vertical-align:middle;margin-right:.4rem}
.low{background:#e17055}.warn{background:#fff6e0;border-left:4px solid #f0a500;padding:.4rem .7rem;margin:.3rem 0;white-space:pre-wrap}
.pair{display:flex;gap:1rem;align-items:center;margin:.6rem 0;padding:.5rem;border:1px solid #eef1f5;border-radius:6px}
.pair img{width:96px;height:96px;object-fit:cover;border-radius:4px;background:#eee}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #dde2ea;border-radius:6px;padding:.5rem .8rem;min-width:8rem}
.card b{display:block;font-size:1.3rem}
"""


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _bar(x: float) -> str:
    cls = "bar low" if x < 0.8 else "bar"
    return f'<span class="{cls}" style="width:{max(2, round(x * 80))}px"></span>{x:.0%}'


def render_html(report: TrainingReport) -> str:
    """The report as one self-contained HTML page (no scripts, no external files)."""
    e = html.escape
    r = report
    promo = r.promotion
    if promo is None:
        verdict = '<span class="muted">saved, not evaluated for promotion</span>'
    elif promo.promoted:
        verdict = f'<span class="ok">active</span> — {e(promo.reason)}'
    else:
        verdict = f'<span class="bad">not promoted</span> — {e(promo.reason)}'
    cards = [
        ("tags", str(len(r.tags))),
        ("examples", str(r.examples)),
        ("cross-validated accuracy", _pct(r.cv_accuracy)),
        ("embedded / cached", f"{r.embedded} / {r.cached}"),
        ("training time", f"{r.seconds:.1f} s"),
    ]
    cal = r.calibration or {}
    if cal.get("cv_coverage") is not None:
        # what the thresholds promise on uploads like the examples, and what that rests on
        cards.append(("auto-applied share", _pct(cal.get("cv_coverage"))))
        cards.append(("auto-applied precision", _pct(cal.get("cv_precision"))))
        if cal.get("cv_precision_lower") is not None:
            cards.append(
                (
                    f"precision, 95% lower bound ({cal.get('cv_applied')} predictions)",
                    _pct(cal.get("cv_precision_lower")),
                )
            )
        cards.append(("precision target", _pct(cal.get("target_precision"))))
    elif r.auto_applied.get("coverage") is not None:
        cards.append(("auto-applied precision", _pct(r.auto_applied.get("precision"))))  # type: ignore[arg-type]
        cards.append(("auto-applied share", _pct(r.auto_applied.get("coverage"))))  # type: ignore[arg-type]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Training report {e(r.model_id)} {e(r.version)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Model <code>{e(r.model_id)}</code> — version <code>{e(r.version)}</code></h1>",
        f'<p class="muted">tenant {e(r.tenant)} · {e(r.kind)} · encoder {e(r.encoder_id)} · {e(r.created_at)}'
        f" · examples from {e(r.source or 'n/a')}</p>",
        f"<p>{verdict}</p>",
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{e(v)}</b>{e(k)}</div>' for k, v in cards)
        + "</div>",
    ]
    if len(r.recipes) > 1:
        parts.append(
            "<h2>Recipe</h2><p class=muted>each candidate encoder, with and without augmented views, "
            f"cross-validated on the same folds; the model uses <code>{e(r.encoder_id)}</code></p><table>"
            "<tr><th>recipe</th><th class=num>cross-validated accuracy</th></tr>"
            + "".join(f"<tr><td>{e(k)}</td><td class=num>{_pct(v)}</td></tr>" for k, v in r.recipes.items())
            + "</table>"
        )
    if r.warnings:
        parts.append("<h2>Warnings</h2>" + "".join(f'<div class="warn">{e(w)}</div>' for w in r.warnings))
    if promo is not None and promo.compared_with:
        parts.append("<h2>Compared with the active version</h2><table>")
        parts.append("<tr><th></th><th class=num>correct</th><th class=num>wrongly auto-applied</th></tr>")
        parts.append(
            f"<tr><td>new {e(r.version)}</td><td class=num>{promo.new_correct}/{promo.held_out}</td>"
            f"<td class=num>{promo.new_wrongly_applied}</td></tr>"
        )
        parts.append(
            f"<tr><td>active {e(promo.compared_with)}</td><td class=num>{promo.old_correct}/{promo.held_out}</td>"
            f"<td class=num>{promo.old_wrongly_applied}</td></tr></table>"
        )
    if r.changes:
        items = "".join(
            f"<li>{e(k.replace('_', ' '))}: {e(', '.join(map(str, v)) if isinstance(v, list) else str(v))}</li>"
            for k, v in r.changes.items()
            if v
        )
        if items:
            parts.append(f"<h2>Changes since the active version</h2><ul>{items}</ul>")
    parts.append(
        f"<h2>Per tag</h2><p class=muted>{r.cv_folds}-fold cross-validation on the examples: "
        "each example is predicted by a model trained without it.</p>"
    )
    parts.append("<table><tr><th>tag</th><th class=num>examples</th><th>precision</th><th>recall</th></tr>")
    for tag in r.tags:
        m = r.per_tag.get(tag, {})
        prec, rec = m.get("precision"), m.get("recall")
        parts.append(
            f"<tr><td>{e(tag)}</td><td class=num>{r.examples_per_tag.get(tag, 0)}</td>"
            f"<td>{_bar(float(prec)) if prec is not None else 'n/a'}</td><td>{_bar(float(rec)) if rec is not None else 'n/a'}</td></tr>"
        )
    parts.append("</table>")
    if r.confused:
        parts.append("<h2>Most confused</h2>")
        for p in r.confused:
            imgs = "".join(
                f'<img src="{e(uri)}" alt="{e(src)}" title="{e(src)}">'
                for uri, src in zip(p.thumbnails, p.examples, strict=False)
            )
            parts.append(
                f'<div class="pair">{imgs}<div><b>{e(p.tag)}</b> taken for <b>{e(p.predicted_as)}</b> '
                f'{p.count} time{"s" if p.count != 1 else ""}<br><span class="muted">{"<br>".join(e(s) for s in p.examples)}</span></div></div>'
            )
    if r.timings:
        parts.append(
            "<h2>Timings</h2><table>"
            + "".join(f"<tr><td>{e(k)}</td><td class=num>{v:.2f} s</td></tr>" for k, v in r.timings.items())
            + "</table>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
