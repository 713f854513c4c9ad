"""Bounds checks on a model version's files, before anything is parsed or decompressed.

A model is data a bucket holds, so its files are input like any upload: a ``weights.npz`` whose
``.npy`` header declares shape ``(1, 10**10)`` used to make NumPy try to allocate 40 GB (a 500 on
every request), and a deflate bomb was decompressed again on every load. These checks read only
sizes, the zip directory and each array's header (a few hundred bytes, through the decompressor),
and refuse, with :class:`~tagsmith.errors.InvalidInputError` saying what is wrong:

* files over :data:`MAX_MODEL_JSON_BYTES` / :data:`MAX_WEIGHTS_BYTES`;
* tags that are not unique valid tag ids, or more than :data:`MAX_TAGS`;
* an archive without the model's arrays, with more than :data:`MAX_MEMBERS` members, or whose
  declared uncompressed sizes disagree with the array headers (what a bomb or a truncated file
  looks like);
* head arrays whose dtype is not float32/float64 or whose shape does not match the tags, the
  encoder width (when the caller knows it) and the text features' width; any other array (the
  calibration evidence, ``evidence_*``) must be a plain numeric or boolean array of at most two
  dimensions, within the same size bound.

:class:`~tagsmith.tagmodels.store.ModelStore` runs them on every load; a failure is cached briefly
by :class:`~tagsmith.tagmodels.store.ActiveModels` so a broken version costs one check, not one
per request.

>>> import io, numpy as np
>>> buf = io.BytesIO(); np.savez(buf, coef=np.zeros((2, 3), np.float32), intercept=np.zeros(2, np.float32))
>>> check_weights(buf.getvalue(), tags=2, dim=3)
{'coef': (2, 3), 'intercept': (2,)}
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from typing import Any

import numpy as np

from tagsmith.errors import InvalidInputError, InvalidKeyError
from tagsmith.keys import validate_tag_id

MAX_MODEL_JSON_BYTES = 8 * 1024 * 1024
MAX_WEIGHTS_BYTES = 256 * 1024 * 1024  # compressed or not; 1,000 tags x 3,136-d float32 is 12.5 MB
MAX_TAGS = 10_000
MAX_DIM = 65_536  # encoder or text feature width
MAX_MEMBERS = 64
_ALLOWED_DTYPES = (np.dtype("<f4"), np.dtype("<f8"))
_OTHER_DTYPE_KINDS = frozenset("biuf")  # bool, ints, floats: never objects
_IMAGE_ARRAYS = ("coef", "intercept")
_TEXT_ARRAYS = ("text_coef", "text_intercept")


def check_model_json(body: bytes, *, where: str = "model.json") -> dict[str, Any]:
    """``model.json`` parsed, after its size, nesting and tags were checked."""
    if len(body) > MAX_MODEL_JSON_BYTES:
        raise InvalidInputError(
            f"{where} is {len(body):,} bytes, over the {MAX_MODEL_JSON_BYTES:,}-byte limit"
        )
    try:
        meta = json.loads(body)
    except RecursionError:
        raise InvalidInputError(f"{where} is nested too deeply to be a model") from None
    except ValueError as e:
        raise InvalidInputError(f"{where} is not JSON: {e}") from e
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{where} must be a JSON object")
    tags = meta.get("tags")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        raise InvalidInputError(f"{where}: 'tags' must be a non-empty list of tag ids")
    if len(tags) > MAX_TAGS:
        raise InvalidInputError(f"{where} declares {len(tags):,} tags, over the limit of {MAX_TAGS:,}")
    if len(set(tags)) != len(tags):
        raise InvalidInputError(f"{where} lists a tag twice")
    try:
        for tag in tags:
            validate_tag_id(tag)
    except InvalidKeyError as e:
        raise InvalidInputError(f"{where}: {e}") from e
    return meta


def text_dim(meta: dict[str, Any]) -> int | None:
    """The text features' width a model.json declares (None: an image-only model)."""
    text = (meta.get("features") or {}).get("text") if isinstance(meta.get("features"), dict) else None
    if text is None:
        return None
    dim = text.get("dim") if isinstance(text, dict) else None
    if not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise InvalidInputError(f"model.json: text feature width {dim!r} must be a whole number 1-{MAX_DIM}")
    return dim


def check_weights(
    body: bytes, *, tags: int, dim: int | None = None, text: int | None = None, where: str = "weights.npz"
) -> dict[str, tuple[int, ...]]:
    """The declared shape of each array of ``weights.npz``, checked against ``tags``, the encoder
    width ``dim`` (None: any width up to :data:`MAX_DIM`) and the text features' width ``text``
    (None: the model has no text half). Nothing beyond the headers is decompressed."""
    if len(body) > MAX_WEIGHTS_BYTES:
        raise InvalidInputError(f"{where} is {len(body):,} bytes, over the {MAX_WEIGHTS_BYTES:,}-byte limit")
    expected = (*_IMAGE_ARRAYS, *(_TEXT_ARRAYS if text is not None else ()))
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, ValueError) as e:
        raise InvalidInputError(f"{where} is not an .npz archive: {e}") from e
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        missing = [f"{n}.npy" for n in expected if f"{n}.npy" not in members]
        if missing:
            raise InvalidInputError(f"{where} lacks {missing}: holds {sorted(members)[:10]}")
        if len(members) > MAX_MEMBERS or any(not n.endswith(".npy") or "/" in n for n in members):
            raise InvalidInputError(
                f"{where} holds {len(members)} members; expected at most {MAX_MEMBERS} .npy arrays"
            )
        declared = sum(info.file_size for info in members.values())
        if declared > MAX_WEIGHTS_BYTES:
            raise InvalidInputError(
                f"{where} would decompress to {declared:,} bytes, over {MAX_WEIGHTS_BYTES:,}"
            )
        shapes = {name: _array_header(archive, members[f"{name}.npy"], where) for name in expected}
        for name in sorted(set(members) - {f"{n}.npy" for n in expected}):
            _array_header(archive, members[name], where, head=False)
    _check_shapes(shapes, tags=tags, dim=dim, text=text, where=where)
    return {name: shape for name, (shape, _size) in shapes.items()}


def _array_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, *, head: bool = True
) -> tuple[tuple[int, ...], int]:
    """(shape, total bytes the member must hold) from one ``.npy`` header; ``head``: an array of the
    linear head (float32/64), else any other stored array (numeric or boolean, at most 2-d)."""
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise InvalidInputError(f"{where}: {info.filename} has .npy format {version}")
            header = f.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise InvalidInputError(f"{where}: {info.filename} has no valid .npy header: {e}") from e
    if head and (dtype not in _ALLOWED_DTYPES or fortran):
        raise InvalidInputError(f"{where}: {info.filename} is {dtype} (fortran={fortran}), expected float32")
    if not head and (dtype.kind not in _OTHER_DTYPE_KINDS or dtype.hasobject or len(shape) > 2):
        raise InvalidInputError(f"{where}: {info.filename} is {dtype} of shape {shape}: not a plain array")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise InvalidInputError(f"{where}: {info.filename} declares shape {shape}")
    size = header + math.prod(shape) * dtype.itemsize
    if size != info.file_size:
        raise InvalidInputError(
            f"{where}: {info.filename} declares shape {shape} ({size:,} bytes) but the archive says "
            f"{info.file_size:,} bytes: a truncated or forged file"
        )
    return tuple(int(n) for n in shape), size


def _check_shapes(
    shapes: dict[str, tuple[tuple[int, ...], int]],
    *,
    tags: int,
    dim: int | None,
    text: int | None,
    where: str,
) -> None:
    coef = shapes["coef"][0]
    if len(coef) != 2 or coef[0] != tags or not 1 <= coef[1] <= MAX_DIM:
        raise InvalidInputError(f"{where}: coef has shape {coef}, expected ({tags}, <encoder width>)")
    if dim is not None and coef[1] != dim:
        raise InvalidInputError(f"{where}: coef is {coef[1]}-d but this deployment's encoder gives {dim}-d")
    wanted: dict[str, tuple[int, ...]] = {"intercept": (tags,)}
    if text is not None:
        wanted |= {"text_coef": (tags, text), "text_intercept": (tags,)}
    for name, shape in wanted.items():
        if shapes[name][0] != shape:
            raise InvalidInputError(f"{where}: {name} has shape {shapes[name][0]}, expected {shape}")
