"""Fixtures for the Python interop suite: real centrifuge-python clients and
real cent API clients against the Tidewire server named by TIDEWIRE_*."""

from __future__ import annotations

import asyncio
import socket
from typing import List, Optional, Tuple
from urllib.parse import urlsplit

import pytest
import requests
from cent import AsyncClient as CentAsyncClient
from cent import Client as CentClient
from centrifuge import Client, ClientState

from support import WAIT, ClientEvents, Env, connection_token, load_env, uniq


@pytest.fixture(scope="session")
def env() -> Env:
    env = load_env()
    # Fail every test at once, instead of one timeout each, when nothing listens.
    parts = urlsplit(env.ws)
    try:
        socket.create_connection((parts.hostname, parts.port or 80), timeout=WAIT).close()
    except OSError as e:
        pytest.exit(f"no server at {env.ws}: {e}", returncode=1)
    return env


class Clients:
    """Makes centrifuge-python clients; disconnects all of them after the test."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self._made: List[Client] = []

    def new(
        self,
        user: Optional[str] = None,
        token: Optional[str] = None,
        **options,
    ) -> Tuple[Client, ClientEvents]:
        if token is None:
            token = connection_token(self.env, user or uniq("u"))
        events = ClientEvents()
        client = Client(
            self.env.ws,
            events=events,
            token=token,
            timeout=WAIT,
            min_reconnect_delay=0.05,
            max_reconnect_delay=0.5,
            # Loopback only: never route through a proxy from the environment.
            proxy=None,
            **options,
        )
        self._made.append(client)
        return client, events

    async def connected(self, user: Optional[str] = None, **options) -> Tuple[Client, ClientEvents]:
        """A new client, connected; fails the test if it does not connect in time."""
        client, events = self.new(user=user, **options)
        # connect() returns once the first attempt is over: connected or failed.
        await asyncio.wait_for(client.connect(), WAIT * 2)
        assert client.state == ClientState.CONNECTED, f"not connected: {events.log!r}"
        await events.next("on_connected")
        return client, events

    async def close(self) -> None:
        for client in self._made:
            try:
                await asyncio.wait_for(client.disconnect(), WAIT)
            except Exception:  # noqa: BLE001 - the test already has its verdict
                pass
        # Let the SDK's background close of each socket run before the loop ends.
        await asyncio.sleep(0.05)


@pytest.fixture
async def clients(env: Env):
    made = Clients(env)
    yield made
    await made.close()


@pytest.fixture
async def aapi(env: Env):
    """cent.AsyncClient (aiohttp)."""
    client = CentAsyncClient(env.api_url, env.api_key, timeout=WAIT)
    yield client
    await client.close()


def make_sync_api(env: Env, key: Optional[str] = None) -> CentClient:
    session = requests.Session()
    # Loopback only: never route through a proxy from the environment.
    session.trust_env = False
    return CentClient(env.api_url, key if key is not None else env.api_key, timeout=WAIT, session=session)


@pytest.fixture
def api(env: Env):
    """cent.Client (sync, requests). Call it through asyncio.to_thread in async tests."""
    client = make_sync_api(env)
    yield client
    client.close()
