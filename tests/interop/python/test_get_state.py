"""centrifuge-python's get_state flow (the app loads its state and stream position,
the SDK subscribes with recover from it and flag bit 2): an empty epoch is any epoch,
as on Centrifugo; and a token `channels` server-side subscription whose own join
arrives after the connect reply."""

import asyncio
import time

from cent import HistoryRequest, PublishRequest
from centrifuge import StreamPosition

from support import WAIT, SubEvents, hs256, uniq


async def publish_all(aapi, channel, datas):
    return [await aapi.publish(PublishRequest(channel=channel, data=d)) for d in datas]


async def test_get_state_with_an_empty_epoch_recovers_from_the_start(clients, aapi):
    channel = f"hist:{uniq('gs')}"
    await publish_all(aapi, channel, [{"n": 1}, {"n": 2}])
    client, _ = await clients.connected()
    asked = []

    async def get_state(ch):
        asked.append(ch)
        return StreamPosition(offset=0, epoch="")

    events = SubEvents()
    sub = client.new_subscription(channel, events=events, recoverable=True, positioned=True, get_state=get_state)
    await asyncio.wait_for(sub.subscribe(), WAIT)
    subscribed = await events.next("on_subscribed")
    assert subscribed.recovered, f"recovered from offset 0 in any epoch: {events.log!r}"
    got = [(await events.next("on_publication")).pub.data for _ in range(2)]
    assert got == [{"n": 1}, {"n": 2}]
    assert asked == [channel], "get_state called once, no 112 loop"
    assert "on_error" not in events.names()


async def test_get_state_with_the_position_read_first(clients, aapi):
    channel = f"hist:{uniq('gs')}"
    await publish_all(aapi, channel, [{"n": 1}])
    client, _ = await clients.connected()

    async def get_state(ch):
        # Read the position first, then "load the data" (here: one more publication
        # lands in between, which the recovery must deliver).
        top = await aapi.history(HistoryRequest(channel=ch, limit=0))
        await aapi.publish(PublishRequest(channel=ch, data={"n": 2}))
        return StreamPosition(offset=top.offset, epoch=top.epoch)

    events = SubEvents()
    sub = client.new_subscription(channel, events=events, recoverable=True, positioned=True, get_state=get_state)
    await asyncio.wait_for(sub.subscribe(), WAIT)
    subscribed = await events.next("on_subscribed")
    assert subscribed.recovered
    assert (await events.next("on_publication")).pub.data == {"n": 2}
    await aapi.publish(PublishRequest(channel=channel, data={"n": 3}))
    assert (await events.next("on_publication")).pub.data == {"n": 3}


async def test_token_channels_own_join_after_the_connect_reply(clients, env):
    channel = f"personal:{uniq('room')}"
    user = uniq("u")
    now = int(time.time())
    token = hs256({"sub": user, "exp": now + 3600, "iat": now, "channels": [channel]}, env.secret)
    client, events = await clients.connected(token=token)
    assert (await events.next("on_subscribed")).channel == channel
    join = await events.next("on_join")
    assert (join.channel, join.info.user) == (channel, user)
    other, _ = await clients.connected(
        token=hs256({"sub": "bob-" + user, "exp": now + 3600, "iat": now, "channels": [channel]}, env.secret)
    )
    assert (await events.next("on_join")).info.user == "bob-" + user
    await other.disconnect()
    assert (await events.next("on_leave")).info.user == "bob-" + user
