"""Server API actions (through cent.AsyncClient) on live centrifuge-python
connections: server-side subscribe, unsubscribe and disconnect."""

from cent import (
    ChannelsRequest,
    Disconnect,
    DisconnectRequest,
    PublishRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from centrifuge import ClientState, SubscriptionState

from support import subscribe, uniq


async def test_server_subscribe_then_unsubscribe(clients, aapi):
    user = uniq("u")
    channel, other = uniq("server-sub"), uniq("server-sub-other")
    client, events = await clients.connected(user=user)

    await aapi.subscribe(SubscribeRequest(user=user, channel=channel))
    subscribed = await events.next("on_subscribed")
    assert subscribed.channel == channel

    await aapi.publish(PublishRequest(channel=channel, data={"n": 1}))
    pub = await events.next("on_publication")
    assert pub.channel == channel
    assert pub.pub.data == {"n": 1}

    await aapi.unsubscribe(UnsubscribeRequest(user=user, channel=channel))
    unsubscribed = await events.next("on_unsubscribed")
    assert unsubscribed.channel == channel
    # The server dropped the subscription itself (the SDK would also ignore stray
    # publications of a channel it was unsubscribed from).
    channels = await aapi.channels(ChannelsRequest(pattern=channel))
    assert channel not in channels.channels

    # Publish on the old channel, then on a new server-side channel: if the old
    # subscription were still alive its publication would arrive first.
    await aapi.publish(PublishRequest(channel=channel, data={"n": 2, "must_not_arrive": True}))
    await aapi.subscribe(SubscribeRequest(user=user, channel=other))
    await events.next("on_subscribed", lambda ctx: ctx.channel == other)
    await aapi.publish(PublishRequest(channel=other, data={"n": 3}))
    nxt = await events.next("on_publication")
    assert nxt.channel == other, f"no publication of {channel} after unsubscribe"
    assert nxt.pub.data == {"n": 3}
    assert client.state == ClientState.CONNECTED


async def test_server_disconnect_terminal_code(clients, aapi):
    user = uniq("u")
    client, events = await clients.connected(user=user)
    await aapi.disconnect(DisconnectRequest(user=user, disconnect=Disconnect(code=4501, reason="bye")))
    ctx = await events.next("on_disconnected")
    assert (ctx.code, ctx.reason) == (4501, "bye")
    assert client.state == ClientState.DISCONNECTED
    assert events.names().count("on_connected") == 1


async def test_server_disconnect_reconnect_code(clients, aapi):
    user = uniq("u")
    channel = uniq("resub")
    client, events = await clients.connected(user=user)
    first = client.client_id
    sub, sub_events = await subscribe(client, channel)

    await aapi.disconnect(DisconnectRequest(user=user, disconnect=Disconnect(code=4001, reason="come back")))
    connecting = await events.next("on_connecting", lambda ctx: ctx.code != 0)
    assert (connecting.code, connecting.reason) == (4001, "come back")
    await events.next("on_connected")
    assert client.state == ClientState.CONNECTED
    assert client.client_id != first, "a new connection gets a new client id"

    await sub_events.next("on_subscribed")  # resubscribed by the SDK
    assert sub.state == SubscriptionState.SUBSCRIBED
    await aapi.publish(PublishRequest(channel=channel, data={"after": "reconnect"}))
    assert (await sub_events.next("on_publication")).pub.data == {"after": "reconnect"}
    assert "on_disconnected" not in events.names()
