"""Helpers for the centrifuge-python / cent interop suite.

The server under test is given by environment variables (see ../README.md):
TIDEWIRE_HTTP, TIDEWIRE_WS, TIDEWIRE_API_KEY, TIDEWIRE_HMAC_SECRET.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from centrifuge import Client, ClientEventHandler, Subscription, SubscriptionEventHandler

# How long any single wait may take before the test fails.
WAIT = 3.0


@dataclass(frozen=True)
class Env:
    http: str
    ws: str
    api_key: str
    secret: str

    @property
    def api_url(self) -> str:
        """What cent's clients take as api_url: the `/api` prefix."""
        return f"{self.http}/api"


def load_env() -> Env:
    missing = [
        name
        for name in ("TIDEWIRE_HTTP", "TIDEWIRE_WS", "TIDEWIRE_API_KEY", "TIDEWIRE_HMAC_SECRET")
        if not os.environ.get(name)
    ]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not set: run this suite through tests/interop.rs "
            "or set the TIDEWIRE_* variables (see tests/interop/README.md)"
        )
    return Env(
        http=os.environ["TIDEWIRE_HTTP"].rstrip("/"),
        ws=os.environ["TIDEWIRE_WS"],
        api_key=os.environ["TIDEWIRE_API_KEY"],
        secret=os.environ["TIDEWIRE_HMAC_SECRET"],
    )


def uniq(prefix: str) -> str:
    """A name nobody else uses in this server's lifetime (channels, users)."""
    return f"{prefix}-{int(time.time() * 1000):x}-{secrets.token_hex(4)}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def hs256(claims: dict, secret: str) -> str:
    """Mint an HS256 JWT with the standard library only."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def connection_token(env: Env, user: str, exp: Optional[int] = None, secret: Optional[str] = None) -> str:
    """A connection token for `user`, valid for an hour unless `exp` is given."""
    now = int(time.time())
    return hs256({"sub": user, "exp": exp if exp is not None else now + 3600, "iat": now},
                 secret if secret is not None else env.secret)


class _Recorder:
    """Records SDK events in order as (name, ctx); `next` awaits the next match."""

    def __init__(self) -> None:
        self.log: List[Tuple[str, Any]] = []
        self._consumed = 0
        self._changed = asyncio.Event()

    def _record(self, name: str, ctx: Any) -> None:
        self.log.append((name, ctx))
        self._changed.set()

    def names(self) -> List[str]:
        return [name for name, _ in self.log]

    async def next(
        self,
        name: str,
        where: Callable[[Any], bool] = lambda ctx: True,
        timeout: float = WAIT,
    ) -> Any:
        """The next event `name` (matching `where`) after the last one returned."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i in range(self._consumed, len(self.log)):
                event, ctx = self.log[i]
                if event == name and where(ctx):
                    self._consumed = i + 1
                    return ctx
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {name}; recorded: {self.log!r}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


class ClientEvents(_Recorder, ClientEventHandler):
    """Client-level events, including server-side subscription events."""

    async def on_connecting(self, ctx):
        self._record("on_connecting", ctx)

    async def on_connected(self, ctx):
        self._record("on_connected", ctx)

    async def on_disconnected(self, ctx):
        self._record("on_disconnected", ctx)

    async def on_error(self, ctx):
        self._record("on_error", ctx)

    async def on_subscribed(self, ctx):
        self._record("on_subscribed", ctx)

    async def on_subscribing(self, ctx):
        self._record("on_subscribing", ctx)

    async def on_unsubscribed(self, ctx):
        self._record("on_unsubscribed", ctx)

    async def on_publication(self, ctx):
        self._record("on_publication", ctx)

    async def on_join(self, ctx):
        self._record("on_join", ctx)

    async def on_leave(self, ctx):
        self._record("on_leave", ctx)


class SubEvents(_Recorder, SubscriptionEventHandler):
    """Events of one client-side subscription."""

    async def on_subscribing(self, ctx):
        self._record("on_subscribing", ctx)

    async def on_subscribed(self, ctx):
        self._record("on_subscribed", ctx)

    async def on_unsubscribed(self, ctx):
        self._record("on_unsubscribed", ctx)

    async def on_publication(self, ctx):
        self._record("on_publication", ctx)

    async def on_join(self, ctx):
        self._record("on_join", ctx)

    async def on_leave(self, ctx):
        self._record("on_leave", ctx)

    async def on_error(self, ctx):
        self._record("on_error", ctx)


async def subscribe(client: Client, channel: str) -> Tuple[Subscription, SubEvents]:
    """A client-side subscription, subscribed; fails the test if not in time."""
    events = SubEvents()
    sub = client.new_subscription(channel, events=events)
    await asyncio.wait_for(sub.subscribe(), WAIT)
    await events.next("on_subscribed")
    return sub, events
