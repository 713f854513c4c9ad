"""The console inside the local stack (``make run``): start it, hand out a demo reviewer token.

Its port is :attr:`tagsmith.config.LocalSettings.console_port` (``TAGSMITH_CONSOLE_PORT``, a busy
port falls back to any free one); corrections per retrain come from the deployment's settings
(:attr:`tagsmith.config.Settings.retrain_every`), as for every entry point.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagsmith.auth import AuthError, TokenStore
from tagsmith.config import LocalSettings
from tagsmith.console.api import ConsoleServices, Request, Response
from tagsmith.console.server import ConsoleServer, start_console

log = logging.getLogger(__name__)


@dataclass
class LocalConsole:
    server: ConsoleServer
    tenant: str
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def banner(self) -> list[str]:
        return [
            f"Review console:     {self.url}/review#token={self.token}",
            f"                    (reviewer token for '{self.tenant}': {self.token})",
            f'Search API:         curl -H "Authorization: Bearer {self.token}" "{self.url}/v1/search?q=jacket"',
        ]

    def stop(self) -> None:
        self.server.stop()


def _port(host: str, wanted: int) -> int:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, wanted))
        except OSError:
            log.warning("console port %d is busy; using a free port instead", wanted)
            return 0
    return wanted


def demo_token(tokens: TokenStore, tenant: str, saved: Path) -> str:
    """The reviewer token saved in ``saved`` if it still authenticates, else a new one (saved)."""
    if saved.is_file():
        token = saved.read_text().strip()
        try:
            if tokens.authenticate(token).tenant == tenant:
                return token
        except AuthError:
            pass
    token = tokens.issue(tenant, name="demo-reviewer", role="reviewer")
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(token + "\n")
    saved.chmod(0o600)
    return token


def start_local_console(
    components: Any,
    *,
    home: Path,
    tenant: str,
    host: str = "127.0.0.1",
    routes: Callable[[Request], Response | None] | None = None,
) -> LocalConsole:
    """The console on ``TAGSMITH_CONSOLE_PORT``; ``routes`` (the local HTTP API) are served beside it."""
    services = ConsoleServices.from_components(components)
    token = demo_token(services.tokens, tenant, Path(home) / "console-token.txt")
    server = start_console(
        services,
        host=host,
        port=_port(host, LocalSettings.from_env().console_port),
        routes=routes,
    )
    return LocalConsole(server=server, tenant=tenant, token=token)
