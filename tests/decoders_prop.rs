//! Property tests of the decoders fed by the network: newline and varint framing, the
//! Centrifugo JSON and Protobuf client protocols, native postcard frames and datagrams, and
//! the JSON depth scan. Arbitrary bytes and mutated valid frames never panic; what can round-trip
//! does; a declared length over the limit is refused before anything is allocated.
//! Cases per property: `PROPTEST_CASES` (default 256) so the suite stays fast.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};
use tidewire::protocol::framing::{self, FrameError, LineCheck, VarintCheck};
use tidewire::protocol::json::{self, MAX_JSON_DEPTH};
use tidewire::protocol::codec::Codec;
use tidewire::protocol::native::{self, WireCommand, WireCommandBody, WireConnect, WireHistory, WireSubscribe};
use tidewire::protocol::protobuf::{self, messages as pb};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Valid JSON commands of every kind, as bytes.
fn valid_json_command() -> impl Strategy<Value = Vec<u8>> {
    let text = "[a-z$:#]{0,12}";
    (0u32..1000, text, text, any::<u64>(), any::<i32>()).prop_flat_map(|(id, a, b, n, l)| {
        let commands = vec![
            json!({"id": id, "connect": {"token": a, "data": {"k": [1, n]}, "subs": {b.clone(): {"recover": true, "offset": n, "epoch": a}}}}),
            json!({"id": id, "subscribe": {"channel": a, "token": b, "recover": true, "offset": n, "flag": l}}),
            json!({"id": id, "publish": {"channel": a, "data": {"x": b}}}),
            json!({"id": id, "history": {"channel": a, "limit": l, "since": {"offset": n, "epoch": b}, "reverse": true}}),
            json!({"id": id, "rpc": {"method": a, "data": [b]}}),
            json!({"id": id, "sub_refresh": {"channel": a, "token": b}}),
            json!({"id": id, "refresh": {"token": a}}),
            json!({"id": id, "presence": {"channel": a}}),
            json!({"id": id, "ping": {}}),
            json!({}),
        ];
        proptest::sample::select(commands).prop_map(|v| v.to_string().into_bytes())
    })
}

/// Byte-level mutations of an input: overwrite, insert or delete at random places.
fn mutated(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (base, prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)).prop_map(|(mut bytes, edits)| {
        for (at, byte, kind) in edits {
            let i = if bytes.is_empty() { 0 } else { at % bytes.len() };
            match kind {
                0 if !bytes.is_empty() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(i);
                }
                _ => bytes.push(byte),
            }
        }
        bytes
    })
}

fn wire_command() -> impl Strategy<Value = WireCommand> {
    let s = "[a-z0-9]{0,8}";
    let data = prop::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from);
    let sub = (s, s, any::<bool>(), any::<u64>(), prop::option::of(data.clone())).prop_map(|(channel, token, recover, offset, data)| {
        WireSubscribe { channel, token, recover, offset, data, ..Default::default() }
    });
    let body = prop_oneof![
        (s, prop::option::of(data.clone()), prop::collection::vec(sub.clone(), 0..3), prop::collection::vec((s, s), 0..3))
            .prop_map(|(token, data, subs, headers)| WireCommandBody::Connect(WireConnect { token, data, subs, headers, ..Default::default() })),
        sub.prop_map(WireCommandBody::Subscribe),
        (s, data.clone()).prop_map(|(c, d)| WireCommandBody::Publish(c, d)),
        (s, any::<i32>(), prop::option::of((any::<u64>(), s)), any::<bool>())
            .prop_map(|(channel, limit, since, reverse)| WireCommandBody::History(WireHistory { channel, limit, since, reverse })),
        (s, data).prop_map(|(m, d)| WireCommandBody::Rpc(m, d)),
        (s, s).prop_map(|(c, t)| WireCommandBody::SubRefresh(c, t)),
        Just(WireCommandBody::Ping),
        Just(WireCommandBody::Pong),
    ];
    (0u32..native::RESERVED_ID_BASE, body).prop_map(|(id, body)| WireCommand { id, body })
}

/// Nesting depth of a parsed JSON value (`1` is 0, `[]` is 1).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Strings full of brackets, quotes and backslashes: the scan must skip them.
        "[\\[\\]{}\"\\\\a ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(12, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\\[\"]{0,3}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn json_decoder_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = json::decode_command(&bytes);
        for line in framing::lines(&bytes) {
            let _ = json::decode_command(line);
        }
    }

    #[test]
    fn json_decoder_never_panics_on_mutated_commands(bytes in mutated(valid_json_command())) {
        let _ = json::decode_command(&bytes);
    }

    #[test]
    fn valid_json_commands_decode(bytes in valid_json_command()) {
        prop_assert!(json::decode_command(&bytes).is_ok(), "{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn lines_round_trip(msgs in prop::collection::vec("[^\n\r\t \u{b}\u{c}]{1,20}", 0..8)) {
        let frame = msgs.join("\n");
        let got: Vec<&[u8]> = framing::lines(frame.as_bytes()).collect();
        let want: Vec<&[u8]> = msgs.iter().map(|m| m.as_bytes()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn check_line_never_reads_past_the_limit(bytes in prop::collection::vec(any::<u8>(), 0..256), limit in 0usize..128) {
        match framing::check_line(&bytes, limit) {
            Ok(LineCheck::Complete { len }) => {
                prop_assert!(len <= limit);
                prop_assert_eq!(bytes[len], b'\n');
                prop_assert!(!bytes[..len].contains(&b'\n'));
            }
            Ok(LineCheck::Incomplete) => prop_assert!(bytes.len() <= limit && !bytes.contains(&b'\n')),
            Err(FrameError::TooLarge { .. }) => prop_assert!(bytes.len() > limit),
        }
    }

    #[test]
    fn varint_frames_round_trip(len in 0usize..4096, tail in 0usize..8) {
        let mut buf = Vec::new();
        framing::put_varint(&mut buf, len);
        let header = buf.len();
        buf.resize(header + len + tail, 7);
        prop_assert_eq!(framing::check_varint(&buf, 4096), Ok(VarintCheck::Complete { header, len }));
        // Any shorter prefix of the frame is incomplete, never an error.
        let cut = (header + len).saturating_sub(1);
        if len > 0 {
            prop_assert_eq!(framing::check_varint(&buf[..cut], 4096), Ok(VarintCheck::Incomplete));
        }
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_the_body_arrives(declared in 1usize..(1 << 32), limit in 0usize..1024) {
        prop_assume!(declared > limit);
        // Only the prefix is there: the decoder must refuse on the prefix alone, so no
        // buffer for `declared` bytes is ever sized from it.
        let mut buf = Vec::new();
        framing::put_varint(&mut buf, declared);
        prop_assert_eq!(framing::check_varint(&buf, limit), Err(FrameError::TooLarge { limit }));
        let taken: Result<Option<(WireCommand, usize)>, _> = native::take_frame(&buf, limit);
        let refused = matches!(taken, Err(native::DecodeError::Frame(FrameError::TooLarge { .. })));
        prop_assert!(refused, "a frame declaring {} bytes over a {} limit", declared, limit);
    }

    #[test]
    fn a_postcard_length_larger_than_the_body_is_refused(id in 0usize..1000, declared in 1024usize..(1 << 32)) {
        // Publish (variant 3) whose channel claims `declared` bytes, none of which follow.
        let mut body = Vec::new();
        framing::put_varint(&mut body, id);
        body.push(3);
        framing::put_varint(&mut body, declared);
        prop_assert!(native::decode_command(&body).is_err());
        // Connect (variant 0) with an empty token, no data, and `declared` subscriptions.
        let mut body = Vec::new();
        framing::put_varint(&mut body, id);
        body.extend_from_slice(&[0, 0, 0]);
        framing::put_varint(&mut body, declared);
        prop_assert!(native::decode_command(&body).is_err());
    }

    #[test]
    fn check_varint_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..16), limit in any::<usize>()) {
        if let Ok(VarintCheck::Complete { header, len }) = framing::check_varint(&bytes, limit) {
            prop_assert!(header + len <= bytes.len() && len <= limit);
        }
    }

    #[test]
    fn native_frames_round_trip(cmd in wire_command()) {
        let mut buf = Vec::new();
        native::put_frame(&mut buf, &cmd);
        let (back, used): (WireCommand, usize) = native::take_frame(&buf, 1 << 16).expect("decodes").expect("whole");
        prop_assert_eq!(used, buf.len());
        prop_assert!(native::command_from_wire(back.clone()).is_ok());
        prop_assert_eq!(back, cmd);
    }

    #[test]
    fn native_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = native::decode_command(&bytes);
        let _: Result<Option<(WireCommand, usize)>, _> = native::take_frame(&bytes, 1 << 16);
        let _: Result<Option<(native::ServerFrame, usize)>, _> = native::take_frame(&bytes, 1 << 16);
        if let Ok((_, rest)) = native::split_datagram(&bytes) {
            prop_assert!(rest.len() < bytes.len());
        }
    }

    #[test]
    fn native_decoder_never_panics_on_mutated_frames(cmd in wire_command(), edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut buf = Vec::new();
        native::put_frame(&mut buf, &cmd);
        for (at, byte) in edits {
            let i = at % buf.len();
            buf[i] = byte;
        }
        let _: Result<Option<(WireCommand, usize)>, _> = native::take_frame(&buf, 1 << 16);
        let _ = native::decode_command(&buf);
    }

    #[test]
    fn datagrams_round_trip(sub in any::<u32>(), body in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut out = Vec::new();
        native::put_datagram(&mut out, sub, &body);
        prop_assert_eq!(native::split_datagram(&out).expect("splits"), (sub, &body[..]));
    }

    #[test]
    fn depth_scan_agrees_with_a_parser(v in json_value()) {
        let text = v.to_string();
        let d = depth(&v);
        prop_assert!(!json::nested_deeper_than(text.as_bytes(), d), "{text}");
        if d > 0 {
            prop_assert!(json::nested_deeper_than(text.as_bytes(), d - 1), "{text}");
        }
    }

    #[test]
    fn depth_scan_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), limit in 0usize..(2 * MAX_JSON_DEPTH)) {
        let _ = json::nested_deeper_than(&bytes, limit);
    }

    #[test]
    fn protobuf_decoder_never_panics_on_mutated_frames(bytes in mutated(valid_protobuf_frame())) {
        let mut out = Vec::new();
        let _ = Codec::Protobuf.decode_commands(&bytes, &mut out);
        let _ = protobuf::decode_emulation(&bytes);
    }

    #[test]
    fn valid_protobuf_frames_decode(bytes in valid_protobuf_frame()) {
        let mut out = Vec::new();
        prop_assert!(Codec::Protobuf.decode_commands(&bytes, &mut out).is_ok(), "{bytes:?}");
    }

    #[test]
    fn a_protobuf_field_length_past_the_message_is_refused(declared in 64u64..(1 << 34)) {
        // Command { subscribe: <declared bytes> } with two bytes of body: prost checks the
        // length against what is there before it reads (no allocation of `declared`).
        let mut body = vec![(5 << 3) | 2];
        let mut v = declared;
        while v >= 0x80 {
            body.push((v as u8) | 0x80);
            v >>= 7;
        }
        body.push(v as u8);
        body.extend_from_slice(&[0x0a, 0]);
        let mut frame = vec![body.len() as u8];
        frame.extend_from_slice(&body);
        let mut out = Vec::new();
        prop_assert!(Codec::Protobuf.decode_commands(&frame, &mut out).is_err());
    }

    #[test]
    fn json_and_protobuf_decode_to_the_same_model(id in 1u32..1000, channel in "[a-z:#$]{0,12}", offset in any::<u64>(), epoch in "[a-zA-Z0-9]{0,8}", recover in any::<bool>(), limit in -1i32..100) {
        let json_cmds = [
            json!({"id": id, "subscribe": {"channel": channel, "recover": recover, "offset": offset, "epoch": epoch}}),
            json!({"id": id, "history": {"channel": channel, "limit": limit, "since": {"offset": offset, "epoch": epoch}, "reverse": recover}}),
            json!({"id": id, "presence_stats": {"channel": channel}}),
        ];
        let pb_cmds = [
            pb::Command { id, subscribe: Some(pb::SubscribeRequest { channel: channel.clone(), recover, offset, epoch: epoch.clone(), ..Default::default() }), ..Default::default() },
            pb::Command { id, history: Some(pb::HistoryRequest { channel: channel.clone(), limit, since: Some(pb::StreamPosition { offset, epoch: epoch.clone() }), reverse: recover }), ..Default::default() },
            pb::Command { id, presence_stats: Some(pb::PresenceStatsRequest { channel: channel.clone() }), ..Default::default() },
        ];
        let text = json_cmds.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
        let (mut from_json, mut from_pb) = (Vec::new(), Vec::new());
        Codec::Json.decode_commands(text.as_bytes(), &mut from_json).expect("json");
        let mut frame = Vec::new();
        for c in &pb_cmds {
            protobuf::put_delimited(&mut frame, c);
        }
        Codec::Protobuf.decode_commands(&frame, &mut from_pb).expect("protobuf");
        prop_assert_eq!(from_json, from_pb);
    }
}

/// Valid Protobuf frames: one to three delimited commands of several kinds.
fn valid_protobuf_frame() -> impl Strategy<Value = Vec<u8>> {
    let one = ("[a-z:#]{0,10}", any::<u64>(), prop::collection::vec(any::<u8>(), 0..24), 0u8..5, 1u32..1000).prop_map(|(ch, n, data, kind, id)| {
        let mut c = pb::Command { id, ..Default::default() };
        match kind {
            0 => c.connect = Some(pb::ConnectRequest { token: ch, data: Bytes::from(data), ..Default::default() }),
            1 => c.subscribe = Some(pb::SubscribeRequest { channel: ch, offset: n, recover: true, ..Default::default() }),
            2 => c.publish = Some(pb::PublishRequest { channel: ch, data: Bytes::from(data), ..Default::default() }),
            3 => c.history = Some(pb::HistoryRequest { channel: ch, limit: 5, since: Some(pb::StreamPosition { offset: n, epoch: "e".into() }), reverse: true }),
            _ => c = pb::Command::default(),
        }
        c
    });
    prop::collection::vec(one, 1..4).prop_map(|cmds| {
        let mut out = Vec::new();
        for c in &cmds {
            protobuf::put_delimited(&mut out, c);
        }
        out
    })
}
