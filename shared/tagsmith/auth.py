"""Per-tenant API tokens. A token names its tenant (``tsk.<tenant>.<secret>``) and only its SHA-256
is stored, under that tenant's prefix, so a token can never authenticate for another tenant.

>>> from tagsmith.storage import MemoryObjectStore
>>> tokens = TokenStore(store=MemoryObjectStore(), bucket="data")
>>> token = tokens.issue("acme", name="ana", role="reviewer")
>>> tokens.authenticate(token).tenant
'acme'
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from tagsmith.errors import NotFoundError, TagsmithError
from tagsmith.keys import tenant_prefix, validate_tenant
from tagsmith.records import utc_now
from tagsmith.storage.base import ObjectStore

ROLES = ("reader", "reviewer", "admin")


class AuthError(TagsmithError):
    """Missing, malformed or unknown credentials."""


@dataclass(frozen=True)
class Principal:
    tenant: str
    name: str
    role: str


class TokenStore:
    def __init__(self, *, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    @staticmethod
    def _key(tenant: str, token: str) -> str:
        return f"{tenant_prefix(tenant)}tokens/{hashlib.sha256(token.encode()).hexdigest()}.json"

    def issue(self, tenant: str, *, name: str, role: str = "reviewer") -> str:
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        token = f"tsk.{validate_tenant(tenant)}.{secrets.token_urlsafe(24)}"
        body = json.dumps({"tenant": tenant, "name": name, "role": role, "created_at": utc_now()}).encode()
        self.store.put(self.bucket, self._key(tenant, token), body, if_none_match=True)
        return token

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("no token: send 'Authorization: Bearer <token>'")
        parts = token.removeprefix("Bearer ").strip().split(".")
        if len(parts) != 3 or parts[0] != "tsk":
            raise AuthError("malformed token: expected tsk.<tenant>.<secret>")
        try:
            tenant = validate_tenant(parts[1])
            body = self.store.get(self.bucket, self._key(tenant, ".".join(parts))).body
        except (NotFoundError, TagsmithError):
            raise AuthError("unknown token") from None
        d = json.loads(body)
        return Principal(tenant=d["tenant"], name=d["name"], role=d["role"])
