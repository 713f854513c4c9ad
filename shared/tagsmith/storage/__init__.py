"""Object storage: the ``ObjectStore`` boundary, its S3 and local-folder adapters, and the stores
built on it (asset records, embedding cache).

>>> from tagsmith.storage import MemoryObjectStore
>>> store = MemoryObjectStore()
>>> etag = store.put("data", "a.txt", b"hi")
>>> store.get("data", "a.txt").body
b'hi'
"""

from tagsmith.storage.base import ObjectInfo, ObjectStore, PreconditionFailedError, StoredObject
from tagsmith.storage.embeddings import EmbeddingCache
from tagsmith.storage.files import FileObjectStore
from tagsmith.storage.memory import MemoryObjectStore
from tagsmith.storage.records import RecordStore
from tagsmith.storage.s3 import S3ObjectStore

__all__ = [
    "EmbeddingCache",
    "FileObjectStore",
    "MemoryObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "PreconditionFailedError",
    "RecordStore",
    "S3ObjectStore",
    "StoredObject",
]
