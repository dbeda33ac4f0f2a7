//! Field numbers against the reference's table, codec round trips, and malformed input.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::protocol::{HistoryResult, PresenceResult, PresenceStats, UnsubscribeReason};

fn delimited<M: prost::Message>(msgs: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        put_delimited(&mut out, m);
    }
    out
}

fn decode_all(frame: &[u8]) -> Result<Vec<Command>, DecodeError> {
    let mut out = Vec::new();
    decode_commands(frame, &mut out).map(|()| out)
}

/// The replies of a frame the server wrote.
fn replies(frame: &[u8]) -> Vec<wire::Reply> {
    messages(frame).map(|m| wire::Reply::decode(m.expect("delimited")).expect("a reply")).collect()
}

#[test]
fn field_numbers_are_the_references() {
    // Command.id = 1 (varint), Command.subscribe = 5, SubscribeRequest.channel = 1.
    let cmd = wire::Command {
        id: 1,
        subscribe: Some(wire::SubscribeRequest { channel: "c".into(), ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(cmd.encode_to_vec(), [0x08, 1, (5 << 3) | 2, 3, (1 << 3) | 2, 1, b'c']);
    // Reply.push = 4, Push.channel = 2, Push.pub = 4, Publication.data = 4, offset = 6.
    let p = Publication { channel: "c".into(), data: Bytes::from_static(b"x"), offset: 2, ..Default::default() };
    let body = encode_publication(&p);
    assert_eq!(body, [12, (4 << 3) | 2, 10, (2 << 3) | 2, 1, b'c', (4 << 3) | 2, 5, (4 << 3) | 2, 1, b'x', 6 << 3, 2]);
    // Publication.score is sint64 (zigzag): -1 encodes as 1.
    let w = wire::Publication { score: -1, ..Default::default() };
    assert_eq!(w.encode_to_vec(), [13 << 3, 1]);
    // HistoryRequest.limit = 7, since = 8, reverse = 9; StreamPosition offset = 1, epoch = 2.
    let h = wire::HistoryRequest { limit: 1, since: Some(wire::StreamPosition { offset: 3, epoch: "e".into() }), reverse: true, ..Default::default() };
    assert_eq!(h.encode_to_vec(), [7 << 3, 1, (8 << 3) | 2, 5, 1 << 3, 3, (2 << 3) | 2, 1, b'e', 9 << 3, 1]);
    // Unsubscribe push: code = 2, reason = 3.
    let u = push_to_wire(&Push::Unsubscribe { channel: String::new(), reason: UnsubscribeReason::Server });
    assert_eq!(&u.unsubscribe.expect("unsubscribe").encode_to_vec()[..3], [2 << 3, 0xd0, 0x0f]);
    // EmulationRequest: node = 1, session = 2, data = 3.
    let e = wire::EmulationRequest { node: "n".into(), session: "s".into(), data: Bytes::from_static(&[0]) };
    assert_eq!(e.encode_to_vec(), [(1 << 3) | 2, 1, b'n', (2 << 3) | 2, 1, b's', (3 << 3) | 2, 1, 0]);
}

#[test]
fn a_frame_carries_several_commands_in_order() {
    let frame = delimited(&[
        wire::Command {
            id: 1,
            connect: Some(wire::ConnectRequest { token: "t".into(), name: "js".into(), ..Default::default() }),
            ..Default::default()
        },
        wire::Command {
            id: 2,
            subscribe: Some(wire::SubscribeRequest {
                channel: "a".into(),
                recover: true,
                epoch: "e".into(),
                offset: 9,
                flag: 1,
                ..Default::default()
            }),
            ..Default::default()
        },
        wire::Command { id: 3, ping: Some(wire::PingRequest {}), ..Default::default() },
    ]);
    let cmds = decode_all(&frame).expect("decodes");
    assert_eq!(cmds.len(), 3);
    assert!(matches!(&cmds[0].body, CommandBody::Connect(r) if r.token == "t" && r.name == "js" && r.data.is_none()));
    assert!(matches!(&cmds[1].body, CommandBody::Subscribe(s) if s.recover && s.offset == 9 && s.epoch == "e" && s.flag == 1));
    assert_eq!(cmds[2], Command { id: 3, body: CommandBody::Ping });
}

#[test]
fn an_empty_message_is_the_pong_and_the_ping() {
    assert_eq!(decode_all(&[0]).expect("pong"), [Command { id: 0, body: CommandBody::Empty }]);
    assert_eq!(PING, delimited(&[wire::Reply::default()]));
    // A method-less command with an id is unknown (a clear error reply, not a pong).
    let frame = delimited(&[wire::Command { id: 4, ..Default::default() }]);
    assert_eq!(decode_all(&frame).expect("decodes")[0].body, CommandBody::Unknown);
}

#[test]
fn binary_payloads_pass_untouched() {
    let data = Bytes::from_static(&[0, 0xff, b'\n', 0x80]);
    let frame = delimited(&[wire::Command {
        id: 5,
        publish: Some(wire::PublishRequest { channel: "c".into(), data: data.clone(), ..Default::default() }),
        ..Default::default()
    }]);
    let cmds = decode_all(&frame).expect("decodes");
    assert!(matches!(&cmds[0].body, CommandBody::Publish(p) if p.data.as_ref() == Some(&data)));
    let p = Arc::new(Publication { channel: "c".into(), data: data.clone(), ..Default::default() });
    let reply = &replies(&encode_publication(&p))[0];
    assert_eq!(reply.push.as_ref().and_then(|p| p.r#pub.as_ref()).map(|p| &p.data), Some(&data));
}

#[test]
fn malformed_input_is_a_typed_error() {
    // A varint that never ends, and one longer than 5 bytes.
    assert!(matches!(decode_all(&[0x80]), Err(DecodeError::Truncated)));
    assert!(matches!(decode_all(&[0xff; 8]), Err(DecodeError::Truncated)));
    // A length past the end of the frame.
    assert!(matches!(decode_all(&[5, 0x08, 1]), Err(DecodeError::Truncated)));
    // Wrong wire type: Command.id (varint) sent length-delimited.
    assert!(matches!(decode_all(&[2, (1 << 3) | 2, 0]), Err(DecodeError::Malformed(_))));
    // A truncated field inside a whole message: subscribe says 9 bytes, has 1.
    assert!(matches!(decode_all(&[3, (5 << 3) | 2, 9, 0]), Err(DecodeError::Malformed(_))));
    // Invalid UTF-8 in a string.
    assert!(matches!(decode_all(&[6, (5 << 3) | 2, 4, (1 << 3) | 2, 2, 0xff, 0xfe]), Err(DecodeError::Malformed(_))));
    // Nothing at all.
    assert!(matches!(decode_all(&[]), Err(DecodeError::Empty)));
    // The commands before a bad message are kept (they run before the close).
    let mut frame = delimited(&[wire::Command { id: 1, ping: Some(wire::PingRequest {}), ..Default::default() }]);
    frame.push(0x80);
    let mut out = Vec::new();
    assert!(decode_commands(&frame, &mut out).is_err());
    assert_eq!(out.len(), 1);
}

#[test]
fn unknown_fields_are_skipped() {
    // Command { id: 7, subscribe: { channel: "c", field 99: varint 5 } , field 31: "zz" }.
    let mut sub = vec![(1 << 3) | 2, 1, b'c'];
    sub.extend_from_slice(&[0x98, 0x06, 5]); // tag (99 << 3) | 0
    let mut body = vec![0x08, 7, (5 << 3) | 2, sub.len() as u8];
    body.extend_from_slice(&sub);
    body.extend_from_slice(&[0xfa, 0x01, 2, b'z', b'z']); // tag (31 << 3) | 2
    let mut frame = vec![body.len() as u8];
    frame.extend_from_slice(&body);
    let cmds = decode_all(&frame).expect("unknown fields are skipped");
    assert!(matches!(&cmds[0], Command { id: 7, body: CommandBody::Subscribe(s) } if s.channel == "c"));
}

#[test]
fn replies_and_pushes_carry_the_model() {
    let pubs = vec![Arc::new(Publication {
        channel: "c".into(),
        data: Bytes::from_static(b"{}"),
        offset: 4,
        info: Some(ClientInfo { user: "u".into(), client: "k".into(), ..Default::default() }),
        tags: [("t".to_string(), "v".to_string())].into(),
        ..Default::default()
    })];
    let mut out = Vec::new();
    encode_reply(&mut out, &Reply { id: 1, body: ReplyBody::History(HistoryResult { publications: pubs, epoch: "e".into(), offset: 4 }) });
    encode_reply(&mut out, &Reply { id: 2, body: ReplyBody::Error(ClientError::PermissionDenied) });
    encode_reply(&mut out, &Reply { id: 3, body: ReplyBody::Publish });
    encode_reply(&mut out, &Reply { id: 4, body: ReplyBody::PresenceStats(PresenceStats { num_clients: 2, num_users: 1 }) });
    let presence = [("k".to_string(), ClientInfo { user: "u".into(), client: "k".into(), ..Default::default() })].into();
    encode_reply(&mut out, &Reply { id: 5, body: ReplyBody::Presence(PresenceResult { presence }) });
    encode_push(&mut out, &Push::Disconnect(crate::protocol::Disconnect::SHUTDOWN));
    out.extend_from_slice(PING);
    let r = replies(&out);
    assert_eq!(r.len(), 7);
    let h = r[0].history.as_ref().expect("history");
    assert_eq!((h.epoch.as_str(), h.offset, h.publications[0].offset), ("e", 4, 4));
    assert_eq!(h.publications[0].info.as_ref().map(|i| i.user.as_str()), Some("u"));
    assert_eq!(h.publications[0].tags["t"], "v");
    assert_eq!(r[1].error, Some(wire::Error { code: 103, message: "permission denied".into(), temporary: false }));
    assert!(r[2].publish.is_some(), "an empty result is still present");
    assert_eq!(r[3].presence_stats, Some(wire::PresenceStatsResult { num_clients: 2, num_users: 1 }));
    let entry = &r[4].presence.as_ref().expect("presence").presence[0];
    assert_eq!((entry.key.as_str(), entry.value.as_ref().map(|i| i.user.as_str())), ("k", Some("u")));
    let d = r[5].push.as_ref().and_then(|p| p.disconnect.as_ref()).expect("disconnect");
    assert_eq!((r[5].id, d.code, d.reason.as_str()), (0, 3001, "shutdown"));
    assert_eq!(r[6], wire::Reply::default(), "the ping");
}

#[test]
fn connect_results_carry_server_side_subscriptions() {
    let mut result = ConnectResult { client: "c".into(), version: "v".into(), ping: 25, pong: true, session: "s".into(), node: "n".into(), ..Default::default() };
    result.subs.insert("#42".into(), SubscribeResult { recoverable: true, epoch: "e".into(), offset: 3, ..Default::default() });
    result.subs.insert("plain".into(), SubscribeResult::default());
    let mut out = Vec::new();
    encode_reply(&mut out, &Reply { id: 1, body: ReplyBody::Connect(Box::new(result)) });
    let c = replies(&out).remove(0).connect.expect("connect");
    assert_eq!((c.client.as_str(), c.ping, c.pong, c.session.as_str(), c.node.as_str()), ("c", 25, true, "s", "n"));
    let sub = c.subs[0].value.as_ref().expect("a value");
    assert_eq!((c.subs[0].key.as_str(), sub.epoch.as_str(), sub.offset, sub.recoverable), ("#42", "e", 3, true));
    // A map read as a map (what the SDKs do) sees every key, an all-default value too.
    #[derive(Clone, PartialEq, prost::Message)]
    struct AsMap {
        #[prost(btree_map = "string, message", tag = "6")]
        subs: std::collections::BTreeMap<String, wire::SubscribeResult>,
    }
    let body: Vec<u8> = messages(&out).next().expect("one").expect("delimited").to_vec();
    let connect = wire::Reply::decode(&body[..]).expect("reply").connect.expect("connect").encode_to_vec();
    let map = AsMap::decode(&connect[..]).expect("a map");
    assert_eq!(map.subs.keys().collect::<Vec<_>>(), ["#42", "plain"]);
    // The empty value is on the wire: key "plain" (1), then value (2) of length 0.
    let plain: &[u8] = &[(1 << 3) | 2, 5, b'p', b'l', b'a', b'i', b'n', (2 << 3) | 2, 0];
    assert!(connect.windows(plain.len()).any(|w| w == plain), "{connect:?}");
}

#[test]
fn emulation_requests_decode_their_commands() {
    let data = delimited(&[wire::Command { id: 2, ping: Some(wire::PingRequest {}), ..Default::default() }]);
    let body = wire::EmulationRequest { node: "n".into(), session: "s".into(), data: Bytes::from(data) }.encode_to_vec();
    let e = decode_emulation(&body).expect("decodes");
    assert_eq!((e.node.as_str(), e.session.as_str(), e.commands.len()), ("n", "s", 1));
    let empty = wire::EmulationRequest { node: "n".into(), session: "s".into(), data: Bytes::new() }.encode_to_vec();
    assert!(decode_emulation(&empty).expect("an empty batch").commands.is_empty());
    let truncated = wire::EmulationRequest { node: "n".into(), session: "s".into(), data: Bytes::from_static(&[9, 1]) }.encode_to_vec();
    assert!(matches!(decode_emulation(&truncated), Err(DecodeError::Truncated)));
    assert!(decode_emulation(&[0xff]).is_err());
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn any_command() -> impl Strategy<Value = wire::Command> {
    (1u32.., "[a-z:#$]{0,12}", prop::collection::vec(any::<u8>(), 0..64), any::<u64>(), 0u8..4).prop_map(|(id, channel, data, offset, kind)| {
        let mut c = wire::Command { id, ..Default::default() };
        match kind {
            0 => c.publish = Some(wire::PublishRequest { channel, data: Bytes::from(data), ..Default::default() }),
            1 => c.subscribe = Some(wire::SubscribeRequest { channel, offset, recover: true, data: Bytes::from(data), ..Default::default() }),
            2 => c.rpc = Some(wire::RpcRequest { method: channel, data: Bytes::from(data) }),
            _ => c.history = Some(wire::HistoryRequest { channel, limit: -1, since: Some(wire::StreamPosition { offset, epoch: "e".into() }), reverse: true }),
        }
        c
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn commands_round_trip(cmds in prop::collection::vec(any_command(), 1..6)) {
        let got = decode_all(&delimited(&cmds)).expect("decodes");
        prop_assert_eq!(got.len(), cmds.len());
        for (w, m) in cmds.into_iter().zip(got) {
            prop_assert_eq!(command_from_wire(w), m);
        }
    }

    #[test]
    fn decoding_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_all(&bytes);
        let _ = decode_emulation(&bytes);
    }

    #[test]
    fn a_cut_or_corrupted_frame_is_an_error_or_fewer_commands(cmds in prop::collection::vec(any_command(), 1..4), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let frame = delimited(&cmds);
        let at = cut.index(frame.len());
        let mut out = Vec::new();
        // A strict prefix ends inside a message (or its prefix), or between two of them.
        match decode_commands(&frame[..at], &mut out) {
            Ok(()) => prop_assert!(out.len() < cmds.len()),
            Err(_) => prop_assert!(out.len() < cmds.len()),
        }
        let mut corrupted = frame.clone();
        let i = flip.0.index(corrupted.len());
        corrupted[i] ^= flip.1 | 1;
        let _ = decode_all(&corrupted);
    }

    #[test]
    fn publications_decode_back_to_their_fields(data in prop::collection::vec(any::<u8>(), 0..128), offset in any::<u64>(), channel in "[a-z]{1,8}") {
        let p = Publication { channel: channel.as_str().into(), data: Bytes::from(data.clone()), offset, ..Default::default() };
        let r = replies(&encode_publication(&p)).remove(0);
        let push = r.push.expect("push");
        prop_assert_eq!(push.channel, channel);
        let got = push.r#pub.expect("pub");
        prop_assert_eq!((got.data.to_vec(), got.offset), (data, offset));
    }
}
