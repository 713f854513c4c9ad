"""``tagsmith review token / tokens / revoke`` against a local data folder (``--target files``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tagsmith.auth import AuthError, TokenStore
from tagsmith.cli import app
from tagsmith.local.resources import STACK
from tagsmith.storage import FileObjectStore
from typer.testing import CliRunner


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--target", "files"])
    assert result.exit_code == 0, result.output
    return result.output


def test_issue_list_and_revoke_a_token_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGSMITH_HOME", str(tmp_path))
    token = run("review", "token", "-t", "acme", "--name", "ana", "--lifetime", "12h").splitlines()[0]
    tokens = TokenStore(store=FileObjectStore(root=tmp_path / "s3"), bucket=STACK.bucket_name("data"))
    assert tokens.authenticate(token).name == "ana"

    [listed] = [json.loads(line) for line in run("review", "tokens", "-t", "acme", "--json").splitlines()]
    assert (listed["name"], listed["status"], listed["legacy"]) == ("ana", "active", False)
    assert token not in json.dumps(listed)  # only the id is ever shown

    assert "revoked" in run("review", "revoke", "-t", "acme", listed["id"])
    with pytest.raises(AuthError, match="revoked"):
        tokens.authenticate(token)


def test_a_bad_lifetime_is_refused_saying_what_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGSMITH_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["review", "token", "-t", "acme", "--name", "ana", "--lifetime", "soon"])
    assert result.exit_code == 1 and "lifetime 'soon' is not understood" in " ".join(result.output.split())
