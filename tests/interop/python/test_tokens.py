"""Connection token failures as centrifuge-python reports them.

expired token: the connect reply is error 109. The SDK reports it through
  on_error(ErrorContext(code=13 "connect error", error=ReplyError(code=109))),
  retries; without get_token it then reports on_error(code=12 "bad configuration")
  and ends with on_disconnected(code=1, reason="unauthorized").
bad signature: the server closes the WebSocket with 3500 "invalid token";
  terminal, so on_disconnected(code=3500).
"""

import asyncio
import time

from centrifuge import ClientState, ReplyError

from support import WAIT, connection_token, uniq


def hour_ago() -> int:
    return int(time.time()) - 3600


async def test_expired_token_gives_109_then_unauthorized(clients, env):
    client, events = clients.new(token=connection_token(env, uniq("u"), exp=hour_ago()))
    await asyncio.wait_for(client.connect(), WAIT * 2)

    err = await events.next("on_error")
    assert err.code == 13, err  # CONNECT_ERROR
    assert isinstance(err.error, ReplyError)
    assert err.error.code == 109
    disconnected = await events.next("on_disconnected")
    assert (disconnected.code, disconnected.reason) == (1, "unauthorized")
    assert client.state == ClientState.DISCONNECTED
    assert "on_connected" not in events.names()


async def test_expired_token_with_get_token_reconnects(clients, env):
    user = uniq("u")
    calls = []

    async def get_token() -> str:
        calls.append(1)
        return connection_token(env, user)

    client, events = clients.new(
        token=connection_token(env, user, exp=hour_ago()), get_token=get_token
    )
    await asyncio.wait_for(client.connect(), WAIT * 2)
    err = await events.next("on_error")
    assert err.error.code == 109
    await events.next("on_connected")
    assert client.state == ClientState.CONNECTED
    assert len(calls) == 1


async def test_wrong_secret_disconnects_with_3500(clients, env):
    token = connection_token(env, uniq("u"), secret="not-the-server-secret")
    client, events = clients.new(token=token)
    await asyncio.wait_for(client.connect(), WAIT * 2)
    ctx = await events.next("on_disconnected")
    assert ctx.code == 3500
    assert ctx.reason == "invalid token"
    assert client.state == ClientState.DISCONNECTED
    assert "on_connected" not in events.names()


async def test_garbage_token_disconnects_with_3500(clients):
    client, events = clients.new(token="not-a-jwt")
    await asyncio.wait_for(client.connect(), WAIT * 2)
    ctx = await events.next("on_disconnected")
    assert ctx.code == 3500
    assert "on_connected" not in events.names()
