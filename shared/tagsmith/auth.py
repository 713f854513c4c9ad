"""Per-tenant API tokens with a lifetime and revocation.

A token names its tenant (``tsk.<tenant>.<secret>``) and only its SHA-256 is stored, under that
tenant's prefix (``tenants/<t>/tokens/<sha256>.json``), so a token can never authenticate for
another tenant. The stored JSON says who it is for, its role, when it was issued, when it expires
(``expires_at``) and, once revoked, when (``revoked_at``): a revoked token stays listed for audit.

Lifetimes: :meth:`TokenStore.issue` gives a token :data:`DEFAULT_LIFETIME` (90 days) unless told
otherwise; ``lifetime=None`` issues one that never expires, which must be asked for explicitly.
Tokens issued before lifetimes existed have no ``expires_at``: they keep working (nothing breaks on
upgrade), are listed as ``legacy, never expires``, and are retired by revoking them
(``tagsmith review tokens`` / ``tagsmith review revoke``) once their holders have new ones.

A token's *id* is the first 16 hex digits of its SHA-256: safe to show and log, enough to revoke.

>>> from tagsmith.storage import MemoryObjectStore
>>> tokens = TokenStore(store=MemoryObjectStore(), bucket="data")
>>> token = tokens.issue("acme", name="ana", role="reviewer")
>>> tokens.authenticate(token).tenant
'acme'
>>> tokens.revoke("acme", token_id(token)).status
'revoked'
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tagsmith.errors import InvalidInputError, NotFoundError, TagsmithError
from tagsmith.keys import tenant_prefix, validate_tenant
from tagsmith.storage.base import ObjectStore, PreconditionFailedError, create_once

ROLES = ("reader", "reviewer", "admin")
DEFAULT_LIFETIME = timedelta(days=90)
TOKEN_ID = re.compile(r"^[0-9a-f]{8,64}$")


class AuthError(TagsmithError):
    """Missing, malformed, unknown, expired or revoked credentials."""

    code = "unauthenticated"


@dataclass(frozen=True)
class Principal:
    tenant: str
    name: str
    role: str


@dataclass(frozen=True)
class TokenInfo:
    """What is stored about one token (never the token itself)."""

    id: str
    tenant: str
    name: str
    role: str
    created_at: str
    expires_at: str | None  # None: never expires (legacy tokens, or issued with no lifetime)
    revoked_at: str | None = None
    legacy: bool = False  # issued before lifetimes existed

    def status(self, now: datetime) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and _parse(self.expires_at) <= now:
            return "expired"
        return "active"

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "legacy": self.legacy,
            "status": self.status(now),
        }


@dataclass(frozen=True)
class Revocation:
    id: str
    status: str  # "revoked", or "already revoked"


def token_id(token: str) -> str:
    """The short, showable id of a token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def parse_lifetime(text: str) -> timedelta | None:
    """``"90d"``, ``"12h"``, ``"30m"``, ``"2w"`` or ``"never"`` (None) as a lifetime.

    >>> parse_lifetime("12h")
    datetime.timedelta(seconds=43200)
    """
    text = text.strip().lower()
    if text == "never":
        return None
    match = re.fullmatch(r"(\d+)\s*([mhdw])", text)
    if not match or int(match[1]) == 0:
        raise InvalidInputError(
            f"lifetime {text!r} is not understood: use a number and a unit (30m, 12h, 90d, 2w) or 'never'"
        )
    unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TokenStore:
    def __init__(
        self, *, store: ObjectStore, bucket: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.clock = clock

    @staticmethod
    def _prefix(tenant: str) -> str:
        return f"{tenant_prefix(tenant)}tokens/"

    @classmethod
    def _key(cls, tenant: str, token: str) -> str:
        return f"{cls._prefix(tenant)}{hashlib.sha256(token.encode()).hexdigest()}.json"

    def issue(
        self,
        tenant: str,
        *,
        name: str,
        role: str = "reviewer",
        lifetime: timedelta | None = DEFAULT_LIFETIME,
    ) -> str:
        """A new token (returned once; only its hash is kept). ``lifetime=None``: never expires."""
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if lifetime is not None and lifetime <= timedelta(0):
            raise InvalidInputError("a token's lifetime must be positive")
        token = f"tsk.{validate_tenant(tenant)}.{secrets.token_urlsafe(24)}"
        now = self.clock()
        body = {
            "tenant": tenant,
            "name": name,
            "role": role,
            "created_at": _iso(now),
            "expires_at": _iso(now + lifetime) if lifetime is not None else None,
        }
        create_once(self.store, self.bucket, self._key(tenant, token), json.dumps(body).encode())
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
        info = _info(json.loads(body), token_id(".".join(parts)))
        status = info.status(self.clock())
        if status == "revoked":
            raise AuthError(f"token {info.id} was revoked on {info.revoked_at}; ask an admin for a new one")
        if status == "expired":
            raise AuthError(f"token {info.id} expired on {info.expires_at}; ask an admin for a new one")
        return Principal(tenant=info.tenant, name=info.name, role=info.role)

    def list_tokens(self, tenant: str) -> list[TokenInfo]:
        """Every token of the tenant (active, expired, revoked), oldest first."""
        prefix = self._prefix(tenant)
        found = []
        for obj in self.store.list(self.bucket, prefix):
            digest = obj.key[len(prefix) :].removesuffix(".json")
            try:
                found.append(_info(json.loads(self.store.get(self.bucket, obj.key).body), digest[:16]))
            except (NotFoundError, ValueError, KeyError):
                continue
        return sorted(found, key=lambda t: (t.created_at, t.id))

    def revoke(self, tenant: str, token_id_prefix: str) -> Revocation:
        """Revoke the tenant's token whose id starts with ``token_id_prefix`` (8+ hex digits)."""
        wanted = token_id_prefix.strip().lower()
        if not TOKEN_ID.match(wanted):
            raise InvalidInputError(f"token id {token_id_prefix!r}: give at least 8 hex digits of the id")
        prefix = self._prefix(tenant)
        keys = [
            o.key for o in self.store.list(self.bucket, prefix) if o.key[len(prefix) :].startswith(wanted)
        ]
        if not keys:
            raise NotFoundError(
                f"tenant {tenant!r} has no token {wanted!r} ('tagsmith review tokens' lists them)"
            )
        if len(keys) > 1:
            raise InvalidInputError(f"token id {wanted!r} matches {len(keys)} tokens: give more digits")
        for _ in range(5):
            obj = self.store.get(self.bucket, keys[0])
            body = json.loads(obj.body)
            tid = keys[0][len(prefix) :][:16]
            if body.get("revoked_at"):
                return Revocation(tid, "already revoked")
            body["revoked_at"] = _iso(self.clock())
            try:
                self.store.put(self.bucket, keys[0], json.dumps(body).encode(), if_match=obj.info.etag)
            except PreconditionFailedError:
                continue
            return Revocation(tid, "revoked")
        raise AuthError(f"token {wanted} kept changing while being revoked; retry")


def _info(d: dict[str, Any], tid: str) -> TokenInfo:
    return TokenInfo(
        id=tid,
        tenant=d["tenant"],
        name=d["name"],
        role=d["role"],
        created_at=d.get("created_at", ""),
        expires_at=d.get("expires_at"),
        revoked_at=d.get("revoked_at"),
        legacy="expires_at" not in d,
    )
