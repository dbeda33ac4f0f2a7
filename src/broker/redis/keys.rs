//! Redis key and PUB/SUB channel names, and which shard a channel lives on.
//!
//! Every key of one channel carries the same hash tag (`{c.<channel>}`), so the Lua
//! scripts that touch several of them run on one Redis Cluster slot. The tag starts with
//! `c.` so that it is never empty (a channel starting with `}` would otherwise make an
//! empty tag, which Redis Cluster ignores, scattering the channel's keys over slots).
//!
//! Client-side sharding over several addresses picks a shard with a jump consistent hash
//! of FNV-1a 64 of the channel name: every node must list the same addresses in the same
//! order, and adding a shard moves about 1/n of the channels.

/// The names under one `engine.redis.prefix`.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_string() }
    }

    fn key(&self, kind: &str, channel: &str) -> String {
        format!("{}.{kind}.{{c.{channel}}}", self.prefix)
    }

    /// The history stream (a Redis stream, entry ids `0-<offset>`).
    pub(crate) fn stream(&self, channel: &str) -> String {
        self.key("stream", channel)
    }

    /// The stream's position: a hash of `e` (epoch) and `s` (top offset).
    pub(crate) fn meta(&self, channel: &str) -> String {
        self.key("meta", channel)
    }

    /// A publish's idempotency result (`"<offset> <epoch>"`, 5 minutes).
    pub(crate) fn idempotency(&self, channel: &str, key: &str) -> String {
        format!("{}.{key}", self.key("idempotency", channel))
    }

    /// Presence entries: client id → encoded client info.
    pub(crate) fn presence_data(&self, channel: &str) -> String {
        self.key("presence.data", channel)
    }

    /// Presence expiry: client id scored by the unix millisecond it expires at.
    pub(crate) fn presence_expire(&self, channel: &str) -> String {
        self.key("presence.expire", channel)
    }

    /// The PUB/SUB channel that carries the channel's publications and join/leave events.
    pub(crate) fn pubsub(&self, channel: &str) -> String {
        format!("{}.client.{channel}", self.prefix)
    }

    /// The channel part of a [`Keys::pubsub`] name, if it is one.
    pub(crate) fn channel_of<'a>(&self, pubsub: &'a str) -> Option<&'a str> {
        pubsub.strip_prefix(self.prefix.as_str())?.strip_prefix(".client.")
    }

    /// The PUB/SUB channel of control messages (on shard 0), which every node subscribes to.
    pub(crate) fn control(&self) -> String {
        format!("{}.control", self.prefix)
    }
}

/// FNV-1a, 64 bits: cheap and stable across processes and versions (unlike `std`'s hasher).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Jump consistent hash (Lamping and Veach, 2014): a bucket in `0..buckets` for `key`;
/// going from n to n+1 buckets moves a key only to the new bucket.
fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let buckets = buckets.max(1) as i64;
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

/// The shard of `channel` among `shards`.
pub(crate) fn shard_of(channel: &str, shards: usize) -> usize {
    if shards <= 1 { 0 } else { jump_hash(fnv1a64(channel.as_bytes()), shards) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_channel_shares_one_non_empty_hash_tag() {
        let keys = Keys::new("centrifugo");
        for channel in ["chat:1", "}odd", "{braces}", ""] {
            let tag = |k: &str| {
                let open = k.find('{').expect("open");
                let close = k[open + 1..].find('}').expect("close") + open + 1;
                k[open + 1..close].to_string()
            };
            let all = [
                keys.stream(channel),
                keys.meta(channel),
                keys.idempotency(channel, "k}{"),
                keys.presence_data(channel),
                keys.presence_expire(channel),
            ];
            let first = tag(&all[0]);
            assert!(!first.is_empty(), "{channel:?}");
            assert!(all.iter().all(|k| tag(k) == first), "{channel:?}: {all:?}");
        }
        assert_eq!(keys.stream("news"), "centrifugo.stream.{c.news}");
        assert_eq!(keys.channel_of(&keys.pubsub("a:b")), Some("a:b"));
        assert_eq!(keys.channel_of(&keys.control()), None);
    }

    #[test]
    fn fnv_matches_its_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn jump_hash_spreads_and_moves_few_channels_when_a_shard_is_added() {
        assert_eq!(shard_of("anything", 1), 0);
        let channels: Vec<String> = (0..10_000).map(|i| format!("chat:{i}")).collect();
        let mut counts = [0usize; 4];
        for c in &channels {
            counts[shard_of(c, 4)] += 1;
        }
        assert!(counts.iter().all(|n| (2_000..3_000).contains(n)), "{counts:?}");
        let moved = channels.iter().filter(|c| shard_of(c, 4) != shard_of(c, 5)).count();
        assert!((1_500..2_500).contains(&moved), "about 1/5 move: {moved}");
        assert!(channels.iter().all(|c| shard_of(c, 4) == shard_of(c, 5) || shard_of(c, 5) == 4), "only to the new shard");
        assert_eq!(jump_hash(0, 1), 0);
        assert!(jump_hash(u64::MAX, 1_000) < 1_000);
    }
}
