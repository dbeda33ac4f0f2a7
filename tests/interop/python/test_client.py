"""centrifuge-python (real SDK, JSON over WebSocket) against Tidewire: connect,
subscribe, receive what cent publishes, client publish, permission errors."""

import asyncio

import pytest
from cent import BatchRequest, PublishRequest
from centrifuge import ClientState, ReplyError, SubscriptionState, SubscriptionUnsubscribedError

from support import WAIT, SubEvents, subscribe, uniq

# Every JSON type, nesting, non-ASCII text and an escaped newline: the server
# must pass `data` through as raw JSON (and never put a blank line in a frame:
# centrifuge-python parses every line of a frame).
PAYLOAD = {
    "text": "héllo wörld ✓ — 你好",
    "escaped": 'line1\nline2 "quoted" \\ back',
    "int": 42,
    "negative": -7,
    "float": 1.5,
    "yes": True,
    "no": False,
    "nothing": None,
    "list": [1, "two", None, {"deep": [True]}],
    "nested": {"a": {"b": {"c": "d"}}},
}


async def test_connect_with_jwt(clients):
    client, events = clients.new(user=uniq("u"))
    await asyncio.wait_for(client.connect(), WAIT * 2)
    ctx = await events.next("on_connected")
    assert client.state == ClientState.CONNECTED
    assert isinstance(ctx.client, str) and ctx.client
    assert client.client_id == ctx.client


async def test_subscription_before_connect_receives_cent_publish(clients, aapi):
    channel = uniq("news")
    client, events = clients.new()
    sub_events = SubEvents()
    sub = client.new_subscription(channel, events=sub_events)
    await sub.subscribe()  # waits for the connection
    await asyncio.wait_for(client.connect(), WAIT * 2)
    subscribed = await sub_events.next("on_subscribed")
    assert subscribed.channel == channel
    assert sub.state == SubscriptionState.SUBSCRIBED

    result = await aapi.publish(PublishRequest(channel=channel, data=PAYLOAD))
    assert result is not None
    ctx = await sub_events.next("on_publication")
    assert ctx.pub.data == PAYLOAD
    assert ctx.pub.info is None, "a server API publication carries no publisher info"


async def test_burst_of_publications_arrives_complete_and_in_order(clients, aapi):
    # One batch call: the server is likely to write several pushes in one frame,
    # which centrifuge-python parses line by line (no blank lines allowed).
    channel = uniq("ordered")
    client, _ = await clients.connected()
    _, sub_events = await subscribe(client, channel)
    count = 50
    await aapi.batch(BatchRequest(requests=[
        PublishRequest(channel=channel, data={"seq": i}) for i in range(1, count + 1)
    ]))
    got = [(await sub_events.next("on_publication")).pub.data for _ in range(count)]
    assert got == [{"seq": i} for i in range(1, count + 1)]
    assert client.state == ClientState.CONNECTED


async def test_client_publish_reaches_other_subscriber_with_info(clients):
    channel = f"chat:{uniq('room')}"
    user_a, user_b = uniq("alice"), uniq("bob")
    a, _ = await clients.connected(user=user_a)
    b, _ = await clients.connected(user=user_b)
    _, events_a = await subscribe(a, channel)
    # allow_publish_for_subscriber: the publisher must be subscribed too.
    sub_b, events_b = await subscribe(b, channel)

    data = {"from": "bob", "text": "hi alice", "n": [1, 2, 3]}
    await asyncio.wait_for(sub_b.publish(data), WAIT)

    got = await events_a.next("on_publication")
    assert got.pub.data == data
    assert got.pub.info is not None, "a client publication carries the publisher ClientInfo"
    assert got.pub.info.user == user_b
    assert got.pub.info.client == b.client_id
    echo = await events_b.next("on_publication")
    assert echo.pub.data == data, "the publishing subscriber receives its own publication"


async def test_publish_on_readonly_fails_with_103(clients):
    channel = f"readonly:{uniq('x')}"
    client, _ = await clients.connected()
    sub, _ = await subscribe(client, channel)  # subscribing is allowed in readonly
    with pytest.raises(ReplyError) as err:
        await asyncio.wait_for(client.publish(channel, {"nope": True}), WAIT)
    assert err.value.code == 103
    assert client.state == ClientState.CONNECTED
    assert sub.state == SubscriptionState.SUBSCRIBED


async def test_publish_in_chat_without_subscription_fails_with_103(clients):
    # chat allows publishing for subscribers only (allow_publish_for_subscriber).
    client, _ = await clients.connected()
    with pytest.raises(ReplyError) as err:
        await asyncio.wait_for(client.publish(f"chat:{uniq('room')}", {"hi": 1}), WAIT)
    assert err.value.code == 103
    assert client.state == ClientState.CONNECTED


async def test_subscribe_unknown_namespace_fails_with_102(clients):
    client, _ = await clients.connected()
    sub_events = SubEvents()
    sub = client.new_subscription(f"unknownns:{uniq('x')}", events=sub_events)
    await asyncio.wait_for(sub.subscribe(), WAIT)
    ctx = await sub_events.next("on_unsubscribed")
    assert ctx.code == 102
    assert sub.state == SubscriptionState.UNSUBSCRIBED
    with pytest.raises(SubscriptionUnsubscribedError):
        await sub.ready(timeout=WAIT)
    assert client.state == ClientState.CONNECTED

    # The connection still works after the error reply.
    ok, _ = await subscribe(client, uniq("after-error"))
    assert ok.state == SubscriptionState.SUBSCRIBED
