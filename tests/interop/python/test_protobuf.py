"""centrifuge-python with use_protobuf=True (Protobuf over WebSocket, subprotocol
centrifuge-protobuf) against Tidewire: connect, subscribe, publish, history, presence,
join/leave, recovery, server-side subscriptions, token errors; a JSON and a Protobuf
client on one channel; binary data published through the API.

With Protobuf the SDK hands payloads over as bytes and publishes bytes."""

import asyncio
import base64
import json
import time

from cent import Disconnect, DisconnectRequest, PublishRequest, SubscribeRequest, UnsubscribeRequest
from centrifuge import Client, ClientState

from support import WAIT, ClientEvents, SubEvents, connection_token, hs256, subscribe, uniq


def hist_channel(prefix: str) -> str:
    return f"hist:{uniq(prefix)}"


async def pb_connected(clients, user=None, **options):
    return await clients.connected(user=user, use_protobuf=True, **options)


async def sub_with(client, channel, **options):
    events = SubEvents()
    sub = client.new_subscription(channel, events=events, **options)
    await asyncio.wait_for(sub.subscribe(), WAIT)
    ctx = await events.next("on_subscribed")
    return sub, events, ctx


async def test_protobuf_publish_history_presence_and_join_leave(clients, aapi):
    channel = hist_channel("pb")
    user_a, user_b = uniq("alice"), uniq("bob")
    a, _ = await pb_connected(clients, user=user_a)
    b, _ = await pb_connected(clients, user=user_b)
    sub_a, events_a, subscribed = await sub_with(a, channel, recoverable=True, positioned=True, join_leave=True)
    epoch = subscribed.stream_position.epoch
    assert epoch

    # JSON through the API arrives as its JSON text; b64data as the raw bytes.
    r1 = await aapi.publish(PublishRequest(channel=channel, data={"via": "api"}))
    p1 = (await events_a.next("on_publication")).pub
    assert isinstance(p1.data, bytes)
    assert json.loads(p1.data) == {"via": "api"}
    assert (p1.offset, r1.epoch) == (1, epoch)
    raw = bytes([0, 255, 10, 128])
    await aapi.publish(PublishRequest(channel=channel, data=None, b64data=base64.b64encode(raw).decode()))
    assert (await events_a.next("on_publication")).pub.data == raw

    sub_b, _, _ = await sub_with(b, channel)
    join = await events_a.next("on_join", lambda ctx: ctx.info.client == b.client_id)
    assert join.info.user == user_b
    await asyncio.wait_for(sub_b.publish(b"\x01\x02\x03"), WAIT)
    own = await events_a.next("on_publication", lambda ctx: ctx.pub.info is not None)
    assert (own.pub.data, own.pub.info.user, own.pub.info.client) == (b"\x01\x02\x03", user_b, b.client_id)

    history = await sub_a.history(limit=10)
    assert [p.offset for p in history.publications] == [1, 2, 3]
    assert history.publications[1].data == raw
    assert (history.epoch, history.offset) == (epoch, 3)

    presence = await sub_a.presence()
    assert set(presence.clients) == {a.client_id, b.client_id}
    assert presence.clients[b.client_id].user == user_b
    stats = await sub_a.presence_stats()
    assert (stats.num_clients, stats.num_users) == (2, 2)

    await asyncio.wait_for(sub_b.unsubscribe(), WAIT)
    leave = await events_a.next("on_leave", lambda ctx: ctx.info.client == b.client_id)
    assert leave.info.user == user_b


async def test_protobuf_recovery_after_reconnect(env, aapi):
    user = uniq("u")
    channel = hist_channel("pbrec")
    events = ClientEvents()
    client = Client(
        env.ws,
        events=events,
        token=connection_token(env, user),
        use_protobuf=True,
        timeout=WAIT,
        min_reconnect_delay=0.8,
        max_reconnect_delay=1.2,
        proxy=None,
    )
    try:
        await asyncio.wait_for(client.connect(), WAIT * 2)
        await events.next("on_connected")
        _, sub_events, subscribed = await sub_with(client, channel, recoverable=True, positioned=True)
        epoch = subscribed.stream_position.epoch
        await aapi.publish(PublishRequest(channel=channel, data={"seq": 1}))
        await sub_events.next("on_publication")
        await aapi.disconnect(DisconnectRequest(user=user, disconnect=Disconnect(code=4001, reason="nudge")))
        for seq in (2, 3, 4):
            await aapi.publish(PublishRequest(channel=channel, data={"seq": seq}))
        connecting = await events.next("on_connecting", lambda ctx: ctx.code != 0)
        assert connecting.code == 4001
        await events.next("on_connected")
        again = await sub_events.next("on_subscribed")
        assert (again.was_recovering, again.recovered, again.stream_position.epoch) == (True, True, epoch)
        got = [(await sub_events.next("on_publication")).pub for _ in range(3)]
        assert [(p.offset, json.loads(p.data)) for p in got] == [(s, {"seq": s}) for s in (2, 3, 4)]
    finally:
        try:
            await asyncio.wait_for(client.disconnect(), WAIT)
        except Exception:  # noqa: BLE001 - the test already has its verdict
            pass
        await asyncio.sleep(0.05)


async def test_protobuf_server_side_subscriptions(clients, aapi, env):
    user = uniq("u")
    channel = uniq("pbserver")
    client, events = await pb_connected(clients, user=user)
    await aapi.subscribe(SubscribeRequest(user=user, channel=channel))
    assert (await events.next("on_subscribed")).channel == channel
    await aapi.publish(PublishRequest(channel=channel, data={"n": 1}))
    pub = await events.next("on_publication")
    assert (pub.channel, json.loads(pub.pub.data)) == (channel, {"n": 1})
    await aapi.unsubscribe(UnsubscribeRequest(user=user, channel=channel))
    assert (await events.next("on_unsubscribed")).channel == channel

    # A token channels claim: subscribed server-side at connect.
    claimed = uniq("pbclaim")
    token = hs256({"sub": user, "exp": int(time.time()) + 3600, "channels": [claimed]}, env.secret)
    other, other_events = await pb_connected(clients, token=token)
    assert (await other_events.next("on_subscribed")).channel == claimed
    await aapi.publish(PublishRequest(channel=claimed, data="claim"))
    assert json.loads((await other_events.next("on_publication")).pub.data) == "claim"
    assert other.state == ClientState.CONNECTED


async def test_protobuf_token_errors(clients, env):
    expired = connection_token(env, uniq("u"), exp=int(time.time()) - 3600)
    client, events = clients.new(token=expired, use_protobuf=True)
    await asyncio.wait_for(client.connect(), WAIT * 2)
    err = await events.next("on_error")
    assert err.error.code == 109
    disconnected = await events.next("on_disconnected")
    assert (disconnected.code, disconnected.reason) == (1, "unauthorized")

    bad = connection_token(env, uniq("u"), secret="not-the-server-secret")
    client, events = clients.new(token=bad, use_protobuf=True)
    await asyncio.wait_for(client.connect(), WAIT * 2)
    assert (await events.next("on_disconnected")).code == 3500


async def test_json_and_protobuf_clients_on_one_channel(clients, aapi):
    channel = f"chat:{uniq('mixed')}"
    pb, _ = await pb_connected(clients)
    js, js_events = await clients.connected()
    _, pb_sub = await subscribe(pb, channel)
    js_sub_obj, js_sub = await subscribe(js, channel)
    payload = {"text": "héllo ✓", "list": [1, None, {"deep": True}]}
    await aapi.publish(PublishRequest(channel=channel, data=payload))
    assert (await js_sub.next("on_publication")).pub.data == payload
    assert json.loads((await pb_sub.next("on_publication")).pub.data) == payload

    await asyncio.wait_for(js_sub_obj.publish({"from": "json"}), WAIT)
    assert json.loads((await pb_sub.next("on_publication")).pub.data) == {"from": "json"}

    # Bytes that are not JSON: the Protobuf client gets them, the JSON one is closed 3506.
    await aapi.publish(PublishRequest(channel=channel, data=None, b64data=base64.b64encode(b"\xde\xad").decode()))
    assert (await pb_sub.next("on_publication")).pub.data == b"\xde\xad"
    gone = await js_events.next("on_disconnected")
    assert gone.code == 3506, gone
