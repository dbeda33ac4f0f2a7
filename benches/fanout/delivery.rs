//! What the subscribers count: reading `seq` and `t` out of a pub push (a
//! JSON text frame's lines, a Protobuf binary frame's delimited Replies, or a
//! native publication), telling fresh deliveries from duplicates and
//! reordering, and merging every subscriber's tallies into the run's. Every
//! path ends in the same per-publication accounting (`SubscriberStats::tally`).
//!
//! Pure: no sockets, no clock (receive times are passed in), so the loss and
//! duplicate accounting the report rests on is unit-tested here.
//!
//! The rule: publication m carries `seq = m` and is sent by publisher
//! `(m / B) % P` (requests of B consecutive seqs, round-robin over P
//! publishers), and one publisher's seqs to one channel go out strictly in
//! order. So per subscriber and publisher, a seq below the next expected one
//! is a duplicate or arrived out of order; it is counted apart and not as a
//! delivery. `lost = max(expected − delivered, 0)` then counts every
//! publication a subscriber should have had once and did not.

use tidewire::protocol::protobuf::messages as pb;

use crate::histogram::Histogram;

/// Per-subscriber: the next acceptable seq from each publisher connection.
pub(crate) struct SeqTracker {
    /// Publications per request (B).
    batch: u64,
    /// Next acceptable seq per publisher (P entries).
    next: Vec<u64>,
}

impl SeqTracker {
    /// A tracker for requests of `batch` publications from `publishers` connections.
    pub(crate) fn new(batch: u64, publishers: u64) -> Self {
        SeqTracker { batch: batch.max(1), next: vec![0; publishers.max(1) as usize] }
    }

    /// True when `seq` is new for its publisher (and remembers it); false for
    /// a duplicate or a seq older than one already seen from that publisher.
    pub(crate) fn accept(&mut self, seq: u64) -> bool {
        let publishers = self.next.len() as u64;
        let slot = &mut self.next[((seq / self.batch) % publishers) as usize];
        if seq < *slot {
            return false;
        }
        *slot = seq + 1;
        true
    }
}

/// One subscriber's tallies, merged at the end.
#[derive(Default)]
pub(crate) struct SubscriberStats {
    /// Unique deliveries.
    pub(crate) delivered: u64,
    /// WebSocket frames, text (JSON) or binary (Protobuf), or native publications,
    /// received after subscribing.
    pub(crate) frames: u64,
    /// Deliveries at or below the last seq seen from the same publisher.
    pub(crate) out_of_order: u64,
    /// Lines that were neither pub pushes nor pings.
    pub(crate) other_messages: u64,
    /// Pub pushes without readable seq / t.
    pub(crate) unparsed: u64,
    /// Server pings (`{}`) received after subscribing.
    pub(crate) pings: u64,
    /// Pongs sent (only when the connect reply had `"pong":true`).
    pub(crate) pongs: u64,
    /// Latency histogram, allocated on the first delivery.
    pub(crate) latency: Option<Histogram>,
    /// Receive time of the last delivery, µs since the origin.
    pub(crate) last_rx_us: Option<u64>,
    /// Set when the connection ended before the stop signal.
    pub(crate) ended: Option<Ending>,
}

/// How a subscriber connection ended before the bench stopped it.
pub(crate) enum Ending {
    /// The server closed with 3008 (slow client).
    Slow,
    /// Anything else: another close code, or a transport error.
    Other(String),
}

impl SubscriberStats {
    /// Counts one WebSocket text frame's newline-separated JSON messages received at
    /// `now_us`; returns (new unique deliveries, pings seen).
    pub(crate) fn absorb_frame(&mut self, text: &str, now_us: u64, seqs: &mut SeqTracker) -> (u64, u32) {
        let (mut fresh, mut pings) = (0u64, 0u32);
        for line in text.split('\n') {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line == "{}" {
                pings += 1;
                continue;
            }
            let Some(pub_at) = find_key(line, "\"pub\"") else {
                self.other_messages += 1;
                continue;
            };
            let parsed = scan_pub(&line[pub_at..]).or_else(|| parse_pub(line));
            fresh += u64::from(self.tally(parsed, now_us, seqs));
        }
        (fresh, pings)
    }

    /// Counts one WebSocket binary frame of varint-delimited Protobuf Replies
    /// received at `now_us`: an empty Reply is a ping, a `push` with a `pub` is a
    /// publication whose `data` is the publishers' JSON payload, anything else is
    /// another message. Bytes that do not decode count as one unparsable pub and
    /// end the frame (a bad length prefix leaves nothing to resynchronise on).
    /// Returns (new unique deliveries, pings seen).
    pub(crate) fn absorb_binary_frame(&mut self, frame: &[u8], now_us: u64, seqs: &mut SeqTracker) -> (u64, u32) {
        let (mut fresh, mut pings) = (0u64, 0u32);
        for body in tidewire::protocol::protobuf::messages(frame) {
            let Ok(body) = body else {
                self.unparsed += 1;
                break;
            };
            if body.is_empty() {
                pings += 1;
                continue;
            }
            let Ok(reply) = <pb::Reply as prost::Message>::decode(body) else {
                self.unparsed += 1;
                continue;
            };
            match reply.push.and_then(|push| push.r#pub) {
                Some(publication) if reply.id == 0 => {
                    fresh += u64::from(self.tally(scan_data(&publication.data), now_us, seqs));
                }
                _ => self.other_messages += 1,
            }
        }
        (fresh, pings)
    }

    /// Counts one native (QUIC / WebTransport) publication whose data is
    /// `data`, received at `now_us`; returns whether it was a fresh delivery.
    pub(crate) fn absorb_publication(&mut self, data: &[u8], now_us: u64, seqs: &mut SeqTracker) -> bool {
        self.frames += 1;
        self.tally(scan_data(data), now_us, seqs)
    }

    /// The per-publication accounting every path shares: `parsed` is the
    /// publication's (seq, t), `None` when unreadable. Counts it as unparsable,
    /// as a duplicate / reordered arrival, or as a fresh delivery received at
    /// `now_us` (latency recorded); returns whether it was fresh.
    fn tally(&mut self, parsed: Option<(u64, u64)>, now_us: u64, seqs: &mut SeqTracker) -> bool {
        let Some((seq, t)) = parsed else {
            self.unparsed += 1;
            return false;
        };
        if !seqs.accept(seq) {
            self.out_of_order += 1;
            return false;
        }
        self.delivered += 1;
        self.last_rx_us = Some(now_us);
        self.latency.get_or_insert_with(Histogram::new).record(now_us.saturating_sub(t));
        true
    }
}

/// (seq, t) out of a publication's raw `data` (the publishers' JSON object, as
/// a Protobuf or native client receives it), `None` when it is not UTF-8 or
/// lacks them.
pub(crate) fn scan_data(data: &[u8]) -> Option<(u64, u64)> {
    std::str::from_utf8(data).ok().and_then(scan_pub)
}

/// Fast path: reads `seq` and `t` out of the part of a pub push that starts
/// at `"pub"`, without a JSON parser. Only our own payload has these keys.
pub(crate) fn scan_pub(publication: &str) -> Option<(u64, u64)> {
    let (seq, rest) = number_after(publication, "\"seq\"")?;
    // We write `t` right after `seq`; look there first, then anywhere.
    let t = match number_after(rest, "\"t\"") {
        Some((t, _)) => t,
        None => number_after(publication, "\"t\"")?.0,
    };
    Some((seq, t))
}

/// Byte offset of `key` (which starts with `"`) in `text`. Cheaper than
/// `str::find` for these short lines: no searcher set-up per call.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let (hay, key) = (text.as_bytes(), key.as_bytes());
    let mut from = 0;
    while let Some(pos) = hay[from..].iter().position(|&b| b == b'"') {
        let at = from + pos;
        if hay.len() - at >= key.len() && hay[at..at + key.len()].iter().zip(key).all(|(a, b)| a == b) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The unsigned integer following `key` and a colon (whitespace allowed),
/// and the text after it.
fn number_after<'a>(text: &'a str, key: &str) -> Option<(u64, &'a str)> {
    let rest = text[find_key(text, key)? + key.len()..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    Some((rest[..end].parse().ok()?, &rest[end..]))
}

/// Slow path: a full JSON parse of `{"push":{"pub":{"data":{"seq":…,"t":…}}}}`.
pub(crate) fn parse_pub(line: &str) -> Option<(u64, u64)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let data = value.get("push")?.get("pub")?.get("data")?;
    Some((data.get("seq")?.as_u64()?, data.get("t")?.as_u64()?))
}

/// Merged subscriber results.
#[derive(Default)]
pub(crate) struct Merged {
    /// Σ unique deliveries.
    pub(crate) delivered: u64,
    /// Σ frames.
    pub(crate) frames: u64,
    /// Σ duplicates and reordered deliveries.
    pub(crate) out_of_order: u64,
    /// Σ other messages.
    pub(crate) other_messages: u64,
    /// Σ unparsable pub pushes.
    pub(crate) unparsed: u64,
    /// Σ pings.
    pub(crate) pings: u64,
    /// Σ pongs.
    pub(crate) pongs: u64,
    /// Subscribers closed with 3008.
    pub(crate) slow_disconnects: u64,
    /// Subscribers that ended otherwise (or whose task did not finish).
    pub(crate) other_disconnects: u64,
    /// The first of those reasons.
    pub(crate) first_disconnect: Option<String>,
    /// Every delivery's latency.
    pub(crate) latency: Histogram,
    /// The latest delivery's receive time, µs since the origin.
    pub(crate) last_rx_us: Option<u64>,
}

impl Merged {
    /// Adds one subscriber's tallies.
    pub(crate) fn add(&mut self, stats: SubscriberStats) {
        self.delivered += stats.delivered;
        self.frames += stats.frames;
        self.out_of_order += stats.out_of_order;
        self.other_messages += stats.other_messages;
        self.unparsed += stats.unparsed;
        self.pings += stats.pings;
        self.pongs += stats.pongs;
        if let Some(h) = &stats.latency {
            self.latency.merge(h);
        }
        self.last_rx_us = self.last_rx_us.max(stats.last_rx_us);
        match stats.ended {
            Some(Ending::Slow) => self.slow_disconnects += 1,
            Some(Ending::Other(why)) => self.add_failure(why),
            None => {}
        }
    }

    /// Counts a subscriber that ended for `why` (not 3008).
    pub(crate) fn add_failure(&mut self, why: String) {
        self.other_disconnects += 1;
        self.first_disconnect.get_or_insert(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pub push as Tidewire writes it (Centrifugo v2 JSON).
    fn push(seq: u64, t: u64) -> String {
        format!(r#"{{"push":{{"channel":"bench-0","pub":{{"data":{{"seq":{seq},"t":{t},"pad":"xx"}},"offset":{seq}}}}}}}"#)
    }

    #[test]
    fn scan_and_parse_agree_on_seq_and_t() {
        let line = push(42, 1_000_017);
        let at = find_key(&line, "\"pub\"").unwrap();
        assert_eq!(scan_pub(&line[at..]), Some((42, 1_000_017)));
        assert_eq!(parse_pub(&line), Some((42, 1_000_017)));
        // limit-server's push line: no offset, and spaces are tolerated.
        let spaced = r#"{"push":{"channel":"c","pub":{"data":{"t" : 9, "seq" : 7}}}}"#;
        assert_eq!(scan_pub(&spaced[find_key(spaced, "\"pub\"").unwrap()..]), Some((7, 9)));
        assert_eq!(scan_pub(r#"{"data":{"seq":"x"}}"#), None);
    }

    #[test]
    fn duplicates_and_reordering_are_counted_apart_per_publisher() {
        // B = 1, P = 2: even seqs from publisher 0, odd ones from publisher 1.
        let mut seqs = SeqTracker::new(1, 2);
        let mut s = SubscriberStats::default();
        // 0,1,2,3 in order; then 2 again (duplicate); 6 before 4, both from
        // publisher 0 (4 is then late).
        let frame = [0, 1, 2, 3, 2, 6, 4].map(|q| push(q, 10)).join("\n");
        assert_eq!(s.absorb_frame(&frame, 1_010, &mut seqs), (5, 0));
        assert_eq!((s.delivered, s.out_of_order), (5, 2));
        // Interleaving publishers is not reordering: 9 (publisher 1) then 8 (publisher 0).
        let frame = [9, 8].map(|q| push(q, 10)).join("\n");
        assert_eq!(s.absorb_frame(&frame, 2_010, &mut seqs), (2, 0));
        assert_eq!((s.delivered, s.out_of_order, s.last_rx_us), (7, 2, Some(2_010)));
        let latency = s.latency.as_ref().unwrap().percentiles_ms();
        assert_eq!(latency.count, 7, "latency is recorded for fresh deliveries only");
        assert_eq!(latency.max, 2.0);
    }

    #[test]
    fn batches_map_seqs_to_their_publisher() {
        // B = 10, P = 2: seqs 0..9 from publisher 0, 10..19 from 1, 20..29 from 0.
        let mut seqs = SeqTracker::new(10, 2);
        assert!(seqs.accept(10));
        assert!(seqs.accept(0), "another publisher's lower seq is fine");
        assert!(seqs.accept(20));
        assert!(!seqs.accept(9), "publisher 0 already sent 20");
        assert!(seqs.accept(11));
        assert!(!seqs.accept(11), "duplicate");
    }

    #[test]
    fn pings_other_lines_and_unparsable_pubs() {
        let mut seqs = SeqTracker::new(1, 1);
        let mut s = SubscriberStats::default();
        let frame = format!("{{}}\n\n{{\"id\":3,\"rpc\":{{}}}}\n{{\"push\":{{\"pub\":{{\"data\":{{}}}}}}}}\n{}\n{{}}", push(0, 5));
        assert_eq!(s.absorb_frame(&frame, 5, &mut seqs), (1, 2));
        assert_eq!((s.other_messages, s.unparsed, s.delivered), (1, 1, 1));
        let mut quiet = SubscriberStats::default();
        assert_eq!(quiet.absorb_frame("{}", 9, &mut seqs), (0, 1));
        assert_eq!(quiet.last_rx_us, None, "a ping is not a delivery");
    }

    /// A Protobuf pub push (Reply { push { channel, pub { data, offset } } }) carrying
    /// the same JSON payload the publishers send.
    fn pb_push(seq: u64, t: u64) -> pb::Reply {
        let data = format!(r#"{{"seq":{seq},"t":{t},"pad":"xx"}}"#);
        let publication = pb::Publication { data: data.into_bytes().into(), offset: seq, ..Default::default() };
        let push = pb::Push { channel: "bench-0".into(), r#pub: Some(publication), ..Default::default() };
        pb::Reply { push: Some(push), ..Default::default() }
    }

    /// Varint-delimited replies back to back, as the server frames them.
    fn pb_frame(replies: &[pb::Reply]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in replies {
            tidewire::protocol::protobuf::put_delimited(&mut out, r);
        }
        out
    }

    #[test]
    fn protobuf_frames_are_tallied_like_json_ones() {
        let order = [0, 1, 2, 3, 2, 6, 4];
        let (mut seqs_json, mut seqs_pb) = (SeqTracker::new(1, 2), SeqTracker::new(1, 2));
        let (mut json, mut proto) = (SubscriberStats::default(), SubscriberStats::default());
        let text = order.map(|q| push(q, 10)).join("\n");
        let binary = pb_frame(&order.map(|q| pb_push(q, 10)));
        assert_eq!(json.absorb_frame(&text, 1_010, &mut seqs_json), (5, 0));
        assert_eq!(proto.absorb_binary_frame(&binary, 1_010, &mut seqs_pb), (5, 0));
        for s in [&json, &proto] {
            assert_eq!((s.delivered, s.out_of_order, s.unparsed, s.last_rx_us), (5, 2, 0, Some(1_010)));
            let latency = s.latency.as_ref().unwrap().percentiles_ms();
            assert_eq!((latency.count, latency.max), (5, 1.0));
        }
    }

    #[test]
    fn protobuf_pings_replies_and_garbage() {
        let mut seqs = SeqTracker::new(1, 1);
        let mut s = SubscriberStats::default();
        let ping = pb::Reply::default();
        let reply = pb::Reply { id: 3, rpc: Some(pb::RpcResult::default()), ..Default::default() };
        let join = pb::Reply {
            push: Some(pb::Push { channel: "bench-0".into(), join: Some(pb::Join::default()), ..Default::default() }),
            ..Default::default()
        };
        let mut no_seq = pb_push(0, 0);
        if let Some(p) = no_seq.push.as_mut().and_then(|p| p.r#pub.as_mut()) {
            p.data = bytes::Bytes::from_static(b"\xff{}");
        }
        let frame = pb_frame(&[ping.clone(), reply, join, no_seq, pb_push(0, 5), ping]);
        assert_eq!(frame[0], 0, "a ping is one zero byte");
        assert_eq!(s.absorb_binary_frame(&frame, 5, &mut seqs), (1, 2));
        assert_eq!((s.other_messages, s.unparsed, s.delivered), (2, 1, 1));
        // A length prefix running past the frame: one unparsable, and the frame ends.
        let mut truncated = pb_frame(&[pb_push(1, 5)]);
        truncated.pop();
        assert_eq!(s.absorb_binary_frame(&truncated, 6, &mut seqs), (0, 0));
        assert_eq!((s.unparsed, s.delivered), (2, 1));
        let mut quiet = SubscriberStats::default();
        assert_eq!(quiet.absorb_binary_frame(&[0], 9, &mut seqs), (0, 1));
        assert_eq!(quiet.last_rx_us, None, "a ping is not a delivery");
    }

    #[test]
    fn native_publications_count_frames_duplicates_and_garbage() {
        let mut seqs = SeqTracker::new(1, 1);
        let mut s = SubscriberStats::default();
        assert!(s.absorb_publication(br#"{"seq":0,"t":1}"#, 3, &mut seqs));
        assert!(!s.absorb_publication(br#"{"seq":0,"t":1}"#, 4, &mut seqs));
        assert!(!s.absorb_publication(b"\xff", 5, &mut seqs));
        assert_eq!((s.frames, s.delivered, s.out_of_order, s.unparsed), (3, 1, 1, 1));
    }

    #[test]
    fn merge_sums_tallies_and_classifies_endings() {
        let mut m = Merged::default();
        let mut seqs = SeqTracker::new(1, 1);
        let mut a = SubscriberStats::default();
        a.absorb_frame(&push(0, 0), 100, &mut seqs);
        a.ended = Some(Ending::Slow);
        let mut b = SubscriberStats { pings: 2, pongs: 2, ..SubscriberStats::default() };
        b.absorb_frame(&push(1, 0), 300, &mut seqs);
        b.ended = Some(Ending::Other("close 3000 x".into()));
        let c = SubscriberStats { ended: Some(Ending::Other("read error".into())), ..SubscriberStats::default() };
        m.add(a);
        m.add(b);
        m.add(c);
        assert_eq!((m.delivered, m.pings, m.pongs), (2, 2, 2));
        assert_eq!((m.slow_disconnects, m.other_disconnects), (1, 2));
        assert_eq!(m.first_disconnect.as_deref(), Some("close 3000 x"));
        assert_eq!(m.last_rx_us, Some(300));
        assert_eq!(m.latency.percentiles_ms().count, 2);
    }
}
