"""cent (the official Python HTTP API client, sync `Client` on requests and
`AsyncClient` on aiohttp) against Tidewire's server API. cent posts
`{api_url}/{method}` with X-API-Key and validates replies with pydantic models."""

import asyncio

import pytest
from cent import (
    BatchRequest,
    BatchResult,
    BroadcastRequest,
    BroadcastResult,
    CentApiResponseError,
    CentUnauthorizedError,
    ChannelsRequest,
    ChannelsResult,
    InfoRequest,
    InfoResult,
    PublishRequest,
    PublishResult,
)
from cent import AsyncClient as CentAsyncClient

from conftest import make_sync_api
from support import WAIT, subscribe, uniq


def call(fn, *args):
    """Run a sync cent call off the event loop, with a timeout."""
    return asyncio.wait_for(asyncio.to_thread(fn, *args), WAIT * 2)


async def test_publish(clients, api):
    channel = uniq("api-pub")
    client, _ = await clients.connected()
    _, events = await subscribe(client, channel)
    result = await call(api.publish, PublishRequest(channel=channel, data={"via": "publish"}))
    assert isinstance(result, PublishResult)
    assert (await events.next("on_publication")).pub.data == {"via": "publish"}


async def test_publish_unknown_namespace_is_api_error_102(api):
    with pytest.raises(CentApiResponseError) as err:
        await call(api.publish, PublishRequest(channel=f"unknownns:{uniq('x')}", data={}))
    assert err.value.code == 102


async def test_broadcast(clients, api):
    channels = [uniq("bc-a"), uniq("bc-b"), f"chat:{uniq('bc-c')}"]
    client, _ = await clients.connected()
    subs = [await subscribe(client, ch) for ch in channels]
    data = {"via": "broadcast", "list": [1, 2]}
    result = await call(api.broadcast, BroadcastRequest(channels=channels, data=data))
    assert isinstance(result, BroadcastResult)
    assert len(result.responses) == len(channels)
    for response in result.responses:
        assert response.error is None, response
    for _, events in subs:
        assert (await events.next("on_publication")).pub.data == data


async def test_channels(clients, api):
    prefix = uniq("api-ch")
    channel, other = f"{prefix}-one", f"{prefix}-two"
    a, _ = await clients.connected()
    b, _ = await clients.connected()
    await subscribe(a, channel)
    await subscribe(b, channel)
    await subscribe(b, other)

    everything = await call(api.channels, ChannelsRequest())
    assert isinstance(everything, ChannelsResult)
    assert everything.channels[channel].num_clients == 2
    assert everything.channels[other].num_clients == 1

    exact = await call(api.channels, ChannelsRequest(pattern=channel))
    assert set(exact.channels) == {channel}
    assert exact.channels[channel].num_clients == 2

    wildcard = await call(api.channels, ChannelsRequest(pattern=f"{prefix}-*"))
    assert set(wildcard.channels) == {channel, other}


async def test_info(clients, api):
    client, _ = await clients.connected()
    await subscribe(client, uniq("api-info"))
    info = await call(api.info, InfoRequest())
    assert isinstance(info, InfoResult)
    assert len(info.nodes) >= 1
    node = info.nodes[0]
    assert node.uid and isinstance(node.uid, str)
    assert isinstance(node.name, str)
    assert node.num_clients >= 1
    assert node.num_users >= 1
    assert node.num_channels >= 1


async def test_batch(clients, api):
    channel_a, channel_b = uniq("batch-a"), uniq("batch-b")
    client, _ = await clients.connected()
    _, events_a = await subscribe(client, channel_a)
    _, events_b = await subscribe(client, channel_b)

    result = await call(api.batch, BatchRequest(requests=[
        PublishRequest(channel=channel_a, data={"step": 1}),
        BroadcastRequest(channels=[channel_a, channel_b], data={"step": 2}),
        PublishRequest(channel=channel_b, data={"step": 3}),
    ], parallel=False))
    assert isinstance(result, BatchResult)
    assert [type(r) for r in result.replies] == [PublishResult, BroadcastResult, PublishResult]
    assert len(result.replies[1].responses) == 2

    assert [(await events_a.next("on_publication")).pub.data for _ in range(2)] == [
        {"step": 1}, {"step": 2}]
    assert [(await events_b.next("on_publication")).pub.data for _ in range(2)] == [
        {"step": 2}, {"step": 3}]


async def test_wrong_key_raises_unauthorized(clients, env, api):
    channel = uniq("api-401")
    client, _ = await clients.connected()
    _, events = await subscribe(client, channel)

    bad = make_sync_api(env, key="definitely-not-the-key")
    try:
        with pytest.raises(CentUnauthorizedError):
            await call(bad.publish, PublishRequest(channel=channel, data={"leaked": 1}))
    finally:
        bad.close()

    async with CentAsyncClient(env.api_url, "definitely-not-the-key", timeout=WAIT) as abad:
        with pytest.raises(CentUnauthorizedError):
            await abad.publish(PublishRequest(channel=channel, data={"leaked": 2}))

    # The first publication the subscriber sees is the one made with the right key.
    await call(api.publish, PublishRequest(channel=channel, data={"marker": True}))
    assert (await events.next("on_publication")).pub.data == {"marker": True}
