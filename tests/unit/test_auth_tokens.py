"""Tokens: lifetimes, revocation, legacy tokens, tenant isolation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from tagsmith.auth import DEFAULT_LIFETIME, AuthError, TokenStore, parse_lifetime, token_id
from tagsmith.errors import InvalidInputError, NotFoundError
from tagsmith.storage import MemoryObjectStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> TokenStore:
    return TokenStore(store=MemoryObjectStore(), bucket="data", clock=clock)


def test_a_token_works_until_its_lifetime_ends(tokens: TokenStore, clock: Clock) -> None:
    token = tokens.issue("acme", name="ana", lifetime=timedelta(hours=1))
    clock.now += timedelta(minutes=59)
    assert tokens.authenticate(f"Bearer {token}").name == "ana"
    clock.now += timedelta(minutes=1)
    with pytest.raises(AuthError, match="expired on 2026-11-22T10:00:00Z"):
        tokens.authenticate(token)


def test_tokens_expire_after_90_days_unless_told_otherwise(tokens: TokenStore, clock: Clock) -> None:
    token = tokens.issue("acme", name="ana")
    [info] = tokens.list_tokens("acme")
    assert info.expires_at == "2027-02-20T09:00:00Z" and timedelta(days=90) == DEFAULT_LIFETIME
    clock.now += timedelta(days=91)
    with pytest.raises(AuthError, match="expired"):
        tokens.authenticate(token)


def test_a_revoked_token_stops_working_at_once_and_stays_listed(tokens: TokenStore) -> None:
    token = tokens.issue("acme", name="ana")
    other = tokens.issue("acme", name="bo")
    assert tokens.revoke("acme", token_id(token)[:8]).status == "revoked"
    assert tokens.revoke("acme", token_id(token)).status == "already revoked"
    with pytest.raises(AuthError, match="revoked"):
        tokens.authenticate(token)
    assert tokens.authenticate(other).name == "bo"
    statuses = {t.name: t.status(datetime.now(UTC)) for t in tokens.list_tokens("acme")}
    assert statuses == {"ana": "revoked", "bo": "active"}


def test_a_token_of_another_tenant_cannot_be_revoked_through_this_one(tokens: TokenStore) -> None:
    theirs = tokens.issue("globex", name="eve")
    with pytest.raises(NotFoundError):
        tokens.revoke("acme", token_id(theirs))
    assert tokens.authenticate(theirs).tenant == "globex"


def test_legacy_tokens_without_an_expiry_keep_working_and_are_marked(tokens: TokenStore) -> None:
    token = "tsk.acme.legacy-secret-from-before"
    body = {"tenant": "acme", "name": "old", "role": "reviewer", "created_at": "2026-01-01T00:00:00.000Z"}
    tokens.store.put("data", tokens._key("acme", token), json.dumps(body).encode())
    assert tokens.authenticate(token).name == "old"
    [info] = tokens.list_tokens("acme")
    assert info.legacy and info.expires_at is None
    tokens.revoke("acme", info.id)
    with pytest.raises(AuthError, match="revoked"):
        tokens.authenticate(token)


def test_never_expiring_tokens_must_be_asked_for(tokens: TokenStore, clock: Clock) -> None:
    token = tokens.issue("acme", name="ci", role="reader", lifetime=parse_lifetime("never"))
    clock.now += timedelta(days=10_000)
    assert tokens.authenticate(token).role == "reader"
    assert not tokens.list_tokens("acme")[0].legacy


@pytest.mark.parametrize(("text", "expected"), [("30m", timedelta(minutes=30)), ("2w", timedelta(weeks=2))])
def test_parse_lifetime_reads_units(text: str, expected: timedelta) -> None:
    assert parse_lifetime(text) == expected


@pytest.mark.parametrize("text", ["0d", "90", "3y", "-1d", ""])
def test_parse_lifetime_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(InvalidInputError, match="30m, 12h, 90d, 2w"):
        parse_lifetime(text)


@pytest.mark.parametrize("bad", ["abc", "1234567", "zzzzzzzzzz"])
def test_revoke_needs_eight_hex_digits(tokens: TokenStore, bad: str) -> None:
    with pytest.raises(InvalidInputError, match="8 hex digits"):
        tokens.revoke("acme", bad)


def test_the_console_answers_401_naming_the_reason_for_an_expired_or_revoked_token(
    tokens: TokenStore, clock: Clock
) -> None:
    from typing import Any, cast

    from tagsmith.console import ConsoleServices, Request, handle

    services = ConsoleServices(
        store=tokens.store,
        data_bucket="data",
        tokens=tokens,
        **cast(
            dict[str, Any],
            dict.fromkeys(("records", "reviews", "models", "index", "decisions", "corrections")),
        ),
    )

    def me(token: str) -> tuple[int, str]:
        response = handle(Request.build("GET", "/api/me", {"Authorization": f"Bearer {token}"}), services)
        return response.status, json.loads(response.body).get("error", "")

    short = tokens.issue("acme", name="ana", lifetime=timedelta(minutes=5))
    revoked = tokens.issue("acme", name="bo")
    tokens.revoke("acme", token_id(revoked))
    assert me(short)[0] == 200
    clock.now += timedelta(minutes=6)
    assert me(short)[0] == 401 and "expired" in me(short)[1]
    assert me(revoked)[0] == 401 and "revoked" in me(revoked)[1]
