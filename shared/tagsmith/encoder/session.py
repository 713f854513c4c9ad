"""The encoder boundary (:class:`Encoder`), its ONNX description (:class:`EncoderSpec`) and the
onnxruntime-backed implementation (:class:`OnnxEncoder`)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from tagsmith.encoder.lite0 import (
    LITE0_DIM,
    LITE0_ENCODER_ID,
    LITE0_INPUT_SIZE,
    LITE0_MEAN,
    LITE0_STD,
    ensure_lite0_onnx,
    ensure_lite_taps_onnx,
)
from tagsmith.encoder.transforms import to_model_input

if TYPE_CHECKING:
    import onnxruntime

__all__ = [
    "CANDIDATE_RECIPES",
    "DEFAULT_RECIPE",
    "MULTI_STAGE_OUTPUTS",
    "RECIPES",
    "SECOND_ORDER_OUTPUTS",
    "Encoder",
    "EncoderSpec",
    "FeatureEncoder",
    "FeatureRecipe",
    "OnnxEncoder",
    "baseline_encoder",
    "default_encoder",
    "feature_encoder",
    "lite0_spec",
    "ridge_alpha_for",
]

# More intra-op threads than this rarely speeds up a small CNN and starves whatever runs beside it.
_MAX_DEFAULT_THREADS = 8


@runtime_checkable
class Encoder(Protocol):
    """Turns images into L2-normalised embedding rows.

    ``encoder_id`` names the model *and* its preprocessing; embeddings with different ids must
    never be compared.
    """

    @property
    def encoder_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(len(images), dim) float32 rows of unit length."""
        ...


@dataclass(frozen=True)
class EncoderSpec:
    """How to run one ONNX image encoder: file, input size, normalisation, tensor names, width.

    ``mean`` and ``std`` are per RGB channel in 0..255 units (the model sees ``(x - mean) / std``).
    An operator can describe another model (CLIP, DINOv2, ...) in a JSON file::

        {"id": "dinov2-small-v1", "onnx_path": "dinov2_small.onnx", "input_size": 224,
         "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
         "input_name": "pixel_values", "output_name": "pooler_output", "dim": 384}

    Example::

        >>> spec = EncoderSpec.from_json_file(Path("/opt/models/dinov2.json"))  # doctest: +SKIP
        >>> encoder = OnnxEncoder(spec)  # doctest: +SKIP
    """

    id: str
    onnx_path: Path
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_name: str
    output_name: str
    dim: int

    def __post_init__(self) -> None:
        # Normalise types so that specs built from JSON lists compare equal to hand-built ones.
        object.__setattr__(self, "onnx_path", Path(self.onnx_path))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        problems = []
        if not self.id:
            problems.append("id is empty")
        if self.input_size <= 0:
            problems.append(f"input_size must be positive, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            problems.append("mean and std need one value per RGB channel")
        if any(s <= 0 for s in self.std):
            problems.append(f"std must be positive, got {self.std}")
        if self.dim <= 0:
            problems.append(f"dim must be positive, got {self.dim}")
        if problems:
            raise ValueError(f"invalid encoder spec {self.id!r}: {'; '.join(problems)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "onnx_path": str(self.onnx_path),
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "input_name": self.input_name,
            "output_name": self.output_name,
            "dim": self.dim,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: Path | None = None) -> EncoderSpec:
        """Build from a dict; a relative ``onnx_path`` is taken relative to ``base_dir``."""
        expected = set(cls.__dataclass_fields__)
        unknown, missing = set(data) - expected, expected - set(data)
        if unknown or missing:
            raise ValueError(f"encoder spec: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        onnx_path = Path(data["onnx_path"])
        if base_dir is not None and not onnx_path.is_absolute():
            onnx_path = base_dir / onnx_path
        return cls(
            id=str(data["id"]),
            onnx_path=onnx_path,
            input_size=int(data["input_size"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            input_name=str(data["input_name"]),
            output_name=str(data["output_name"]),
            dim=int(data["dim"]),
        )

    @classmethod
    def from_json_file(cls, path: Path) -> EncoderSpec:
        """Read a spec; a relative ``onnx_path`` is resolved against the JSON file's folder."""
        path = Path(path)
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), base_dir=path.parent)

    def to_json_file(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def lite0_spec(onnx_path: Path) -> EncoderSpec:
    """The spec of the built-in EfficientNet-Lite0 graph at ``onnx_path``."""
    return EncoderSpec(
        id=LITE0_ENCODER_ID,
        onnx_path=onnx_path,
        input_size=LITE0_INPUT_SIZE,
        mean=LITE0_MEAN,
        std=LITE0_STD,
        input_name="image",
        output_name="embedding",
        dim=LITE0_DIM,
    )


class OnnxEncoder:
    """An :class:`Encoder` running an ONNX graph on onnxruntime's CPU provider.

    The session is created on first use (so constructing one at import time costs nothing) and
    then reused; it is safe to call :meth:`embed` from several threads.

    Example::

        >>> encoder = OnnxEncoder(spec, batch_size=16)  # doctest: +SKIP
        >>> vectors = encoder.embed([decode_image(data).image for data in blobs])  # doctest: +SKIP
        >>> vectors.shape == (len(blobs), spec.dim)  # doctest: +SKIP
        True
    """

    def __init__(
        self, spec: EncoderSpec, *, batch_size: int = 16, threads: int | None = None, spin: bool = False
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if threads is not None and threads <= 0:
            raise ValueError(f"threads must be positive, got {threads}")
        self.spec = spec
        self.batch_size = batch_size
        self.threads = threads if threads is not None else min(os.cpu_count() or 1, _MAX_DEFAULT_THREADS)
        # onnxruntime's worker threads spin (busy-wait) for work between and after runs unless told
        # not to: on 2 cores shared with ingestion's own CPU (decode, previews, JSON) and on a Lambda
        # function's 1-2 vCPUs, that spinning takes a core the rest of the batch needs. Measured in
        # one run of `benchmarks.ingest --before spinning` (load 7-10, docs/benchmarks.md): ingest
        # 11.9 -> 22.0 img/s, decode+embed alone 16.0 -> 21.3, their ratio 0.82 -> 0.91.
        self.spin = spin
        self._session: onnxruntime.InferenceSession | None = None
        self._lock = threading.Lock()

    @property
    def encoder_id(self) -> str:
        return self.spec.id

    @property
    def dim(self) -> int:
        return self.spec.dim

    def _get_session(self) -> onnxruntime.InferenceSession:
        with self._lock:
            if self._session is None:
                self._session = self._create_session()
            return self._session

    def _create_session(self) -> onnxruntime.InferenceSession:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        # One graph branch at a time: a CNN is a chain, and a second pool would only contend.
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        if not self.spec.onnx_path.is_file():
            raise FileNotFoundError(f"encoder {self.spec.id}: ONNX file {self.spec.onnx_path} does not exist")
        session = onnxruntime.InferenceSession(
            str(self.spec.onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = {i.name for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        if self.spec.input_name not in inputs or self.spec.output_name not in outputs:
            raise ValueError(
                f"encoder {self.spec.id}: graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}, "
                f"spec names input {self.spec.input_name!r} and output {self.spec.output_name!r}"
            )
        return session

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed ``images`` (any size or mode) into (N, dim) float32 L2-normalised rows."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        if not images:
            return out
        session = self._get_session()
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = to_model_input(chunk, size=self.spec.input_size, mean=self.spec.mean, std=self.spec.std)
            (raw,) = session.run([self.spec.output_name], {self.spec.input_name: batch})
            features = np.asarray(raw, dtype=np.float32).reshape(len(chunk), -1)
            if features.shape[1] != self.dim:
                raise ValueError(
                    f"encoder {self.spec.id}: graph output has {features.shape[1]} values per image, "
                    f"spec says dim={self.dim}"
                )
            out[start : start + len(chunk)] = features
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        # An all-zero feature vector stays zero instead of becoming NaN.
        out /= np.maximum(norms, np.float32(1e-12))
        return out


@dataclass(frozen=True)
class FeatureRecipe:
    """How a built-in encoder turns a photo into an embedding.

    The graph is EfficientNet-``variant`` run at ``input_size`` px; each graph output in
    ``outputs`` is L2-normalised, then they are concatenated (``dims`` gives their widths) and the
    whole row normalised again. With ``flip`` the mirrored photo is embedded too and the two rows
    averaged (twice the cost). ``crop`` < 1 keeps only that central share of the photo's shorter
    side (a zoom at no extra cost). ``id`` must change whenever any of this changes: stored embeddings
    and tag models are keyed by it. The figures behind each recipe are in ``docs/benchmarks.md``.

    ``ridge_alpha``: the ridge penalty tag heads use on these features (``None``: the head's
    default). The best penalty depends on the features' geometry: more unit-length parts spread a
    row's length over more directions and want a smaller one.
    """

    id: str
    variant: str
    input_size: int
    outputs: tuple[str, ...]
    dims: tuple[int, ...]
    flip: bool = False
    crop: float = 1.0
    ridge_alpha: float | None = None

    def __post_init__(self) -> None:
        if not self.outputs or len(self.outputs) != len(self.dims):
            raise ValueError(
                f"recipe {self.id!r}: one dim per output needed, got {self.outputs} / {self.dims}"
            )
        if not 0.0 < self.crop <= 1.0:
            raise ValueError(f"recipe {self.id!r}: crop must be in (0, 1], got {self.crop}")
        if self.ridge_alpha is not None and not self.ridge_alpha > 0.0:
            raise ValueError(f"recipe {self.id!r}: ridge_alpha must be > 0, got {self.ridge_alpha}")

    @property
    def dim(self) -> int:
        return sum(self.dims)


#: The last three stages' pooled outputs beside the embedding (mid-level print and texture).
MULTI_STAGE_OUTPUTS = ("embedding", "stage7", "stage6", "stage5")
#: ... and stage 5's second-order pooling (which patterns occur together; ``lite0.GRAM_STAGE``).
SECOND_ORDER_OUTPUTS = (*MULTI_STAGE_OUTPUTS, "stage5_gram")

#: The built-in recipes, by id. The baseline ``effnet-lite0-v1`` is :func:`lite0_spec`'s graph.
RECIPES: dict[str, FeatureRecipe] = {
    r.id: r
    for r in (
        FeatureRecipe("effnet-lite0-320-s7-v1", "lite0", 320, ("embedding", "stage7"), (1280, 320)),
        FeatureRecipe("effnet-lite2-260-s7-v1", "lite2", 260, ("embedding", "stage7"), (1280, 352)),
        FeatureRecipe(
            "effnet-lite2-260-s7-flip-v1", "lite2", 260, ("embedding", "stage7"), (1280, 352), flip=True
        ),
        # The default's graph on the central 70% of the photo (+2.5 / +5.2 / +1.8 points top-1 at
        # k=5 / 10 / 30 on the grocery set, same cost; docs/benchmarks.md, session 2).
        FeatureRecipe(
            "effnet-lite2-260-s7-c70-v1", "lite2", 260, ("embedding", "stage7"), (1280, 352), crop=0.7
        ),
        # ... with stages 6 and 5 pooled too: the same network pass, 1960-d (session 3).
        FeatureRecipe(
            "effnet-lite2-260-s567-c70-v1",
            "lite2",
            260,
            MULTI_STAGE_OUTPUTS,
            (1280, 352, 208, 120),
            crop=0.7,
        ),
        # ... and stage 5's second-order pooling: still the same pass, 3136-d (session 3).
        FeatureRecipe(
            "effnet-lite2-260-s567g-c70-v1",
            "lite2",
            260,
            SECOND_ORDER_OUTPUTS,
            (1280, 352, 208, 120, 1176),
            crop=0.7,
            ridge_alpha=0.1,
        ),
        # The same features on the full frame: clothing, furniture, anything whose photos show the
        # whole object (on the clothing dev set 66.5% top-1 at k=10 against 62.2% zoomed; on
        # grocery 74.2% against 81.3%): the trainer picks per model (docs/benchmarks.md).
        FeatureRecipe(
            "effnet-lite2-260-s567g-v1",
            "lite2",
            260,
            SECOND_ORDER_OUTPUTS,
            (1280, 352, 208, 120, 1176),
            ridge_alpha=0.1,
        ),
        # s567 at 330 px: finer print, about twice the ingest cost.
        FeatureRecipe(
            "effnet-lite2-330-s567-c70-v1",
            "lite2",
            330,
            MULTI_STAGE_OUTPUTS,
            (1280, 352, 208, 120),
            crop=0.7,
        ),
    )
}
#: What :func:`default_encoder` runs: the best accuracy per unit of ingest cost measured
#: (EfficientNet-Lite2 at its native 260 px; the 1280-d embedding joined by the pooled outputs of
#: the last three stages and the second-order pooling of stage 5, 3136-d), on the central 70% of
#: the photo. Caution (docs/benchmarks.md):
#: the 70% was chosen on the benchmark's own test photos (60% and 70% score alike;
#: 80% keeps most of the gain), and packshots framed edge to edge can lose what is near their
#: borders; ``TAGSMITH_ENCODER_RECIPE=effnet-lite2-260-s7-v1`` selects the first un-zoomed recipe
#: (models are per encoder: retrain after switching, docs/training.md).
DEFAULT_RECIPE = RECIPES["effnet-lite2-260-s567g-c70-v1"]
#: The recipes the trainer chooses between per model, by cross-validation on the tenant's own
#: examples (:func:`tagsmith.trainer.choose_recipe`): the zoom wins on shop photos of packaged
#: products (+3 to +7 points top-1 on grocery), the full frame on clothing shot at home (+5). One
#: network pass each (the same graph, another crop); ingest runs only the encoders the tenant's
#: active models chose. The first is the one a model gets without evidence for another.
CANDIDATE_RECIPES = (DEFAULT_RECIPE.id, "effnet-lite2-260-s567g-v1")


def ridge_alpha_for(encoder_id: str) -> float | None:
    """The ridge penalty a built-in recipe's features are fitted with, or ``None`` (the head's
    default, e.g. for an operator's own encoder).

    Example::

        >>> ridge_alpha_for(DEFAULT_RECIPE.id), ridge_alpha_for("my-clip-encoder") is None
        (0.1, True)
    """
    recipe = RECIPES.get(encoder_id)
    return recipe.ridge_alpha if recipe is not None else None


class FeatureEncoder(OnnxEncoder):
    """An :class:`Encoder` that combines several outputs of one graph (see :class:`FeatureRecipe`).

    Example::

        >>> encoder = feature_encoder(Path("/tmp/tagsmith-cache"), DEFAULT_RECIPE)  # doctest: +SKIP
        >>> encoder.embed([image]).shape  # doctest: +SKIP
        (1, 3136)
    """

    def __init__(
        self, onnx_path: Path, recipe: FeatureRecipe, *, batch_size: int = 16, threads: int | None = None
    ) -> None:
        spec = EncoderSpec(
            id=recipe.id,
            onnx_path=onnx_path,
            input_size=recipe.input_size,
            mean=LITE0_MEAN,
            std=LITE0_STD,
            input_name="image",
            output_name=recipe.outputs[0],
            dim=recipe.dim,
        )
        super().__init__(spec, batch_size=batch_size, threads=threads)
        self.recipe = recipe

    def _create_session(self) -> onnxruntime.InferenceSession:
        session = super()._create_session()
        missing = set(self.recipe.outputs) - {o.name for o in session.get_outputs()}
        if missing:
            raise ValueError(
                f"encoder {self.spec.id}: graph {self.spec.onnx_path} lacks outputs {sorted(missing)}"
            )
        return session

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = self._embed_view(images)
        if self.recipe.flip and len(images):
            mirrored = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in images]
            out += self._embed_view(mirrored)
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
        return out

    def _embed_view(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = np.empty((len(images), self.dim), dtype=np.float32)
        if not images:
            return out
        session = self._get_session()
        names = list(self.recipe.outputs)
        bounds = np.cumsum((0, *self.recipe.dims))
        spec = self.spec
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = to_model_input(
                chunk, size=spec.input_size, mean=spec.mean, std=spec.std, crop=self.recipe.crop
            )
            for i, raw in enumerate(session.run(names, {spec.input_name: batch})):
                part = np.asarray(raw, dtype=np.float32).reshape(len(chunk), -1)
                if part.shape[1] != self.recipe.dims[i]:
                    raise ValueError(
                        f"encoder {spec.id}: output {names[i]} has {part.shape[1]} values, recipe says {self.recipe.dims[i]}"
                    )
                part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), np.float32(1e-12))
                out[start : start + len(chunk), bounds[i] : bounds[i + 1]] = part
        # Each part has unit length, so the row's length is sqrt(number of parts).
        out /= np.float32(np.sqrt(len(names)))
        return out


def feature_encoder(
    cache_dir: Path, recipe: FeatureRecipe | str, *, batch_size: int = 16, threads: int | None = None
) -> FeatureEncoder:
    """The encoder of a built-in ``recipe`` (or its id), building its graph into ``cache_dir`` if needed."""
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"unknown encoder recipe {recipe!r}; known: {sorted(RECIPES)}")
        recipe = RECIPES[recipe]
    path = ensure_lite_taps_onnx(cache_dir, variant=recipe.variant, input_size=recipe.input_size)
    return FeatureEncoder(path, recipe, batch_size=batch_size, threads=threads)


def default_encoder(cache_dir: Path, *, batch_size: int = 16, threads: int | None = None) -> OnnxEncoder:
    """The product's encoder (:data:`DEFAULT_RECIPE`), building its ONNX graph into ``cache_dir`` if needed.

    Example::

        >>> encoder = default_encoder(Path("tagsmith-cache"))
        >>> encoder.encoder_id, encoder.dim
        ('effnet-lite2-260-s567g-c70-v1', 3136)
    """
    return feature_encoder(cache_dir, DEFAULT_RECIPE, batch_size=batch_size, threads=threads)


def baseline_encoder(cache_dir: Path, *, batch_size: int = 16, threads: int | None = None) -> OnnxEncoder:
    """The first encoder, EfficientNet-Lite0 at 224 px, last layer only (``effnet-lite0-v1``)."""
    return OnnxEncoder(lite0_spec(ensure_lite0_onnx(cache_dir)), batch_size=batch_size, threads=threads)
