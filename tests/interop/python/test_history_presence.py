"""History streams, recovery, positioning and presence in the `hist:` namespace
of dev.toml (history_size 100, history_ttl 300s, allow_recovery,
allow_positioning, presence, join_leave, history and presence for subscribers):
centrifuge-python's subscription, history and presence calls, and cent's
publish/history/history_remove/presence/presence_stats."""

import asyncio

import pytest
from cent import (
    Disconnect,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRemoveResult,
    HistoryRequest,
    HistoryResult,
    PresenceRequest,
    PresenceResult,
    PresenceStatsRequest,
    PresenceStatsResult,
    PublishRequest,
    PublishResult,
)
from cent import StreamPosition as ApiStreamPosition
from centrifuge import Client, ClientState, ReplyError, StreamPosition, SubscriptionState

from support import WAIT, ClientEvents, SubEvents, connection_token, uniq


def hist_channel(prefix: str) -> str:
    return f"hist:{uniq(prefix)}"


async def publish_all(aapi, channel, datas):
    """Publish one after another with cent; the PublishResults in order."""
    return [await aapi.publish(PublishRequest(channel=channel, data=data)) for data in datas]


async def positioned_sub(client, channel, **options):
    """A recoverable, positioned subscription, subscribed."""
    events = SubEvents()
    sub = client.new_subscription(channel, events=events, recoverable=True, positioned=True, **options)
    await asyncio.wait_for(sub.subscribe(), WAIT)
    ctx = await events.next("on_subscribed")
    return sub, events, ctx


def offsets_and_data(pubs):
    return [(p.offset, p.data) for p in pubs]


async def test_sdk_subscription_history_and_presence(clients, aapi):
    channel = hist_channel("sdk-hist")
    user_a, user_b = uniq("alice"), uniq("bob")
    a, _ = await clients.connected(user=user_a)
    b, _ = await clients.connected(user=user_b)

    sub, events, subscribed = await positioned_sub(a, channel)
    assert subscribed.recoverable is True and subscribed.positioned is True, subscribed
    assert subscribed.was_recovering is False and subscribed.recovered is False
    assert subscribed.stream_position is not None, subscribed
    assert subscribed.stream_position.offset == 0, "a new stream starts at offset 0"
    epoch = subscribed.stream_position.epoch
    assert isinstance(epoch, str) and epoch, subscribed
    sub_b, _, _ = await positioned_sub(b, channel)

    datas = [{"n": i, "text": f"message {i}", "list": [i, None, True]} for i in range(1, 7)]
    results = await publish_all(aapi, channel, datas)
    assert [r.offset for r in results] == [1, 2, 3, 4, 5, 6]
    assert {r.epoch for r in results} == {epoch}, "publishing keeps the stream the subscription saw"
    got = [(await events.next("on_publication")).pub for _ in datas]
    assert offsets_and_data(got) == list(enumerate(datas, start=1))

    def pubs(*offsets):
        return [(o, datas[o - 1]) for o in offsets]

    everything = await sub.history(limit=10)
    assert offsets_and_data(everything.publications) == pubs(1, 2, 3, 4, 5, 6)
    assert (everything.epoch, everything.offset) == (epoch, 6)
    assert all(p.info is None for p in everything.publications), "server API publications carry no info"

    newest = await sub.history(limit=3, reverse=True)
    assert offsets_and_data(newest.publications) == pubs(6, 5, 4)
    assert (newest.epoch, newest.offset) == (epoch, 6)

    since = await sub.history(limit=10, since=StreamPosition(offset=2, epoch=epoch))
    assert offsets_and_data(since.publications) == pubs(3, 4, 5, 6)
    assert (since.epoch, since.offset) == (epoch, 6)

    since_limited = await sub.history(limit=2, since=StreamPosition(offset=3, epoch=epoch))
    assert offsets_and_data(since_limited.publications) == pubs(4, 5)

    # centrifuge-python always sends limit (0 here): the position only.
    position = await a.history(channel)
    assert (position.publications, position.epoch, position.offset) == ([], epoch, 6)

    with pytest.raises(ReplyError) as err:
        await sub.history(limit=10, since=StreamPosition(offset=2, epoch=epoch + "-not"))
    assert err.value.code == 112, "a position in another epoch is unrecoverable"

    presence = await sub.presence()
    assert set(presence.clients) == {a.client_id, b.client_id}
    assert (presence.clients[a.client_id].client, presence.clients[a.client_id].user) == (a.client_id, user_a)
    assert (presence.clients[b.client_id].client, presence.clients[b.client_id].user) == (b.client_id, user_b)
    assert set((await b.presence(channel)).clients) == {a.client_id, b.client_id}

    stats = await sub.presence_stats()
    assert (stats.num_clients, stats.num_users) == (2, 2)

    await asyncio.wait_for(sub_b.unsubscribe(), WAIT)
    # centrifuge-python's unsubscribe() returns once the command is queued, before the
    # server has it, and presence is then asked over the other connection: poll (bounded)
    # until the server has processed b's unsubscribe.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    after_leave = await sub.presence()
    while set(after_leave.clients) != {a.client_id} and loop.time() < deadline:
        await asyncio.sleep(0.02)
        after_leave = await sub.presence()
    assert set(after_leave.clients) == {a.client_id}
    stats = await a.presence_stats(channel)
    assert (stats.num_clients, stats.num_users) == (1, 1)
    assert a.state == ClientState.CONNECTED and sub.state == SubscriptionState.SUBSCRIBED


async def test_sdk_join_and_leave(clients):
    channel = hist_channel("sdk-join")
    user_b = uniq("bob")
    a, _ = await clients.connected()
    b, _ = await clients.connected(user=user_b)
    _, events_a, _ = await positioned_sub(a, channel, join_leave=True)

    sub_b, _, _ = await positioned_sub(b, channel)
    join = await events_a.next("on_join", lambda ctx: ctx.info.client == b.client_id)
    assert join.info.user == user_b

    await asyncio.wait_for(sub_b.unsubscribe(), WAIT)
    leave = await events_a.next("on_leave", lambda ctx: ctx.info.client == b.client_id)
    assert leave.info.user == user_b


async def test_sdk_recovery_after_reconnect(env, aapi):
    user = uniq("u")
    channel = hist_channel("sdk-rec")
    events = ClientEvents()
    # A reconnect delay of at least 0.8 s: the publications below are made while
    # the client is certainly away.
    client = Client(
        env.ws,
        events=events,
        token=connection_token(env, user),
        timeout=WAIT,
        min_reconnect_delay=0.8,
        max_reconnect_delay=1.2,
        proxy=None,
    )
    try:
        await asyncio.wait_for(client.connect(), WAIT * 2)
        await events.next("on_connected")
        first = client.client_id
        sub, sub_events, subscribed = await positioned_sub(client, channel)
        epoch = subscribed.stream_position.epoch

        datas = [{"seq": i} for i in range(1, 10)]
        assert [r.offset for r in await publish_all(aapi, channel, datas[:3])] == [1, 2, 3]
        for _ in range(3):
            await sub_events.next("on_publication")

        await aapi.disconnect(DisconnectRequest(user=user, disconnect=Disconnect(code=4001, reason="nudge")))
        assert [r.offset for r in await publish_all(aapi, channel, datas[3:7])] == [4, 5, 6, 7]
        connecting = await events.next("on_connecting", lambda ctx: ctx.code != 0)
        assert (connecting.code, connecting.reason) == (4001, "nudge")
        assert client.state == ClientState.CONNECTING, "published while the client was away"

        await events.next("on_connected")
        assert client.client_id != first
        resubscribed = await sub_events.next("on_subscribed")
        assert resubscribed.was_recovering is True, resubscribed
        assert resubscribed.recovered is True, resubscribed
        assert resubscribed.stream_position.epoch == epoch

        assert [r.offset for r in await publish_all(aapi, channel, datas[7:])] == [8, 9]
        for _ in range(3, len(datas)):
            await sub_events.next("on_publication")
        received = [ctx.pub for name, ctx in sub_events.log if name == "on_publication"]
        assert offsets_and_data(received) == list(enumerate(datas, start=1)), "no gap, no duplicate"
        assert "on_disconnected" not in events.names()
        assert sub.state == SubscriptionState.SUBSCRIBED
    finally:
        try:
            await asyncio.wait_for(client.disconnect(), WAIT)
        except Exception:  # noqa: BLE001 - the test already has its verdict
            pass
        await asyncio.sleep(0.05)


async def test_api_publish_history_and_history_remove(clients, aapi):
    channel = hist_channel("api-hist")
    client, _ = await clients.connected()
    _, events, subscribed = await positioned_sub(client, channel)

    datas = [{"k": i} for i in range(1, 6)]
    results = await publish_all(aapi, channel, datas)
    assert all(isinstance(r, PublishResult) for r in results)
    assert [r.offset for r in results] == [1, 2, 3, 4, 5]
    epoch = results[0].epoch
    assert isinstance(epoch, str) and epoch
    assert {r.epoch for r in results} == {epoch}
    assert epoch == subscribed.stream_position.epoch
    got = [(await events.next("on_publication")).pub for _ in datas]
    assert offsets_and_data(got) == list(enumerate(datas, start=1))

    def pubs(*offsets):
        return [(o, datas[o - 1]) for o in offsets]

    full = await aapi.history(HistoryRequest(channel=channel, limit=10))
    assert isinstance(full, HistoryResult)
    assert offsets_and_data(full.publications) == pubs(1, 2, 3, 4, 5)
    assert (full.epoch, full.offset) == (epoch, 5)
    assert all(p.info is None for p in full.publications)

    newest = await aapi.history(HistoryRequest(channel=channel, limit=2, reverse=True))
    assert offsets_and_data(newest.publications) == pubs(5, 4)

    since = await aapi.history(HistoryRequest(channel=channel, limit=10,
                                              since=ApiStreamPosition(offset=3, epoch=epoch)))
    assert offsets_and_data(since.publications) == pubs(4, 5)
    assert (since.epoch, since.offset) == (epoch, 5)

    everything = await aapi.history(HistoryRequest(channel=channel, limit=-1))
    assert offsets_and_data(everything.publications) == pubs(1, 2, 3, 4, 5)

    # No limit (cent drops None): the position only.
    position = await aapi.history(HistoryRequest(channel=channel))
    assert (position.publications, position.epoch, position.offset) == ([], epoch, 5)

    removed = await aapi.history_remove(HistoryRemoveRequest(channel=channel))
    assert isinstance(removed, HistoryRemoveResult)
    emptied = await aapi.history(HistoryRequest(channel=channel, limit=10))
    assert emptied.publications == []
    assert (emptied.epoch, emptied.offset) == (epoch, 5), "history_remove keeps the stream position"

    # The stream goes on from there, for history and for the subscriber.
    nxt = await aapi.publish(PublishRequest(channel=channel, data={"k": 6}))
    assert (nxt.offset, nxt.epoch) == (6, epoch)
    live = (await events.next("on_publication")).pub
    assert (live.offset, live.data) == (6, {"k": 6})
    again = await aapi.history(HistoryRequest(channel=channel, limit=10))
    assert offsets_and_data(again.publications) == [(6, {"k": 6})]


async def test_api_presence_and_presence_stats(clients, aapi):
    channel = hist_channel("api-presence")
    user = uniq("u")
    # Two connections of one user: two clients, one user.
    a, _ = await clients.connected(user=user)
    b, _ = await clients.connected(user=user)
    await positioned_sub(a, channel)
    await positioned_sub(b, channel)

    presence = await aapi.presence(PresenceRequest(channel=channel))
    assert isinstance(presence, PresenceResult)
    assert set(presence.presence) == {a.client_id, b.client_id}
    for client_id, info in presence.presence.items():
        assert (info.client, info.user) == (client_id, user)

    stats = await aapi.presence_stats(PresenceStatsRequest(channel=channel))
    assert isinstance(stats, PresenceStatsResult)
    assert (stats.num_clients, stats.num_users) == (2, 1)

    # Disconnected clients leave presence.
    await aapi.disconnect(DisconnectRequest(user=user, disconnect=Disconnect(code=4501, reason="bye")))
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        stats = await aapi.presence_stats(PresenceStatsRequest(channel=channel))
        if stats.num_clients == 0 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert (stats.num_clients, stats.num_users) == (0, 0)
    assert (await aapi.presence(PresenceRequest(channel=channel))).presence == {}


async def test_api_publish_idempotency_key(clients, aapi):
    channel = hist_channel("api-idem")
    client, _ = await clients.connected()
    _, events, _ = await positioned_sub(client, channel)
    key = uniq("idem")

    first = await aapi.publish(PublishRequest(channel=channel, data={"once": True}, idempotency_key=key))
    repeated = await aapi.publish(PublishRequest(channel=channel, data={"once": True}, idempotency_key=key))
    assert first.offset == 1 and first.epoch
    assert (repeated.offset, repeated.epoch) == (first.offset, first.epoch), "same result for the same key"

    marker = await aapi.publish(PublishRequest(channel=channel, data={"marker": True}))
    assert marker.offset == 2, "the repeat made no publication"
    got = [(await events.next("on_publication")).pub for _ in range(2)]
    assert offsets_and_data(got) == [(1, {"once": True}), (2, {"marker": True})], "delivered once"
    history = await aapi.history(HistoryRequest(channel=channel, limit=10))
    assert offsets_and_data(history.publications) == [(1, {"once": True}), (2, {"marker": True})]
