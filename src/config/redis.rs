//! `engine.redis.*`: where the Redis engine connects, under Centrifugo v6's key names.
//!
//! `address` is one URL or a list of them. One URL is one shard: a single Redis
//! (`redis://`, `rediss://` with TLS), a Redis Cluster (`redis+cluster://`, more seed nodes
//! as `?addr=host:port`) or a Sentinel-managed primary (`redis+sentinel://`, the primary's
//! name as `?sentinel_master_name=`). Several URLs shard channels over independent Redis
//! setups on the client side: each channel lives on the shard a jump consistent hash of its
//! name picks, so every node must list the same addresses in the same order.
//!
//! Parsing is pure (no I/O), so a typo fails `check-config` and start-up naming the key,
//! never a connection attempt at 3 a.m.

use serde::{Deserialize, Deserializer, Serialize};

use super::{ConfigError, Dur};

/// `engine.redis.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RedisEngine {
    /// One URL or a list (client-side sharding by channel). Default `redis://127.0.0.1:6379`.
    /// Forms: `redis://[user[:password]@]host[:port][/db]`, `rediss://…` (TLS),
    /// `redis+cluster://host:port?addr=host2:port2`, `redis+sentinel://host:port?sentinel_master_name=NAME&addr=…`.
    /// A bare `host:port` means `redis://host:port`.
    #[serde(deserialize_with = "one_or_many")]
    pub address: Vec<String>,
    /// Prefix of every Redis key and PUB/SUB channel. Default `centrifugo`; nodes of
    /// different applications sharing a Redis need different prefixes.
    pub prefix: String,
    /// ACL user (a user in the URL wins). Default none.
    pub user: String,
    /// Password (a password in the URL wins). Default none.
    pub password: String,
    /// Database number (a `/db` in the URL wins). Default 0. Not available on Redis Cluster.
    pub db: u8,
    /// TLS towards Redis (a `rediss://` URL turns it on too).
    pub tls: RedisTls,
    /// Longest a connection (TCP + TLS + AUTH) may take. Default 1s (Centrifugo's): a
    /// node that cannot reach Redis at start fails fast with the address in the message.
    pub connect_timeout: Dur,
    /// Longest one engine call may take before it fails with error 100. Default 4s
    /// (Centrifugo's): bounds how long a publish or subscribe can hang on a sick Redis.
    pub io_timeout: Dur,
    /// How long a presence entry outlives its last refresh. Default 60s: a node that dies
    /// without removing its clients' presence leaves them visible this long at most.
    pub presence_ttl: Dur,
    /// Name of the Sentinel-managed primary (or `?sentinel_master_name=` in the URL).
    pub sentinel_master_name: String,
    /// ACL user for the Sentinel nodes themselves. Default none.
    pub sentinel_user: String,
    /// Password for the Sentinel nodes themselves. Default none.
    pub sentinel_password: String,
}

impl Default for RedisEngine {
    fn default() -> Self {
        Self {
            address: vec!["redis://127.0.0.1:6379".into()],
            prefix: "centrifugo".into(),
            user: String::new(),
            password: String::new(),
            db: 0,
            tls: RedisTls::default(),
            connect_timeout: Dur::secs(1),
            io_timeout: Dur::secs(4),
            presence_ttl: Dur::secs(60),
            sentinel_master_name: String::new(),
            sentinel_user: String::new(),
            sentinel_password: String::new(),
        }
    }
}

/// `engine.redis.tls.*`
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(default)]
pub struct RedisTls {
    /// Connect with TLS. Default false (`rediss://` turns it on for that address).
    pub enabled: bool,
    /// CA that signs the server's certificate: a PEM file path or the PEM text. Default:
    /// the system's roots.
    pub server_ca_pem: String,
    /// Client certificate chain for mutual TLS: a PEM file path or the PEM text.
    pub cert_pem: String,
    /// Its private key: a PEM file path or the PEM text.
    pub key_pem: String,
    /// Name to verify the server's certificate against. Default: the host of the address.
    pub server_name: String,
}

/// What kind of Redis one address names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One Redis server (or a proxy in front of several).
    Standalone,
    /// A Redis Cluster: the hosts are seed nodes; the rest is discovered.
    Cluster,
    /// A primary found through Sentinel: the hosts are Sentinel nodes.
    Sentinel {
        /// The primary's name as the Sentinels know it.
        master: String,
    },
}

/// One shard's address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAddress {
    /// Standalone, cluster or sentinel.
    pub topology: RedisTopology,
    /// Connect with TLS.
    pub tls: bool,
    /// Hosts and ports (at least one).
    pub hosts: Vec<(String, u16)>,
    /// ACL user, if any.
    pub user: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// Database number.
    pub db: u8,
}

/// The port Redis listens on unless told otherwise.
const DEFAULT_PORT: u16 = 6379;
/// The port Sentinel listens on unless told otherwise.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

impl RedisEngine {
    /// Every address parsed, with the block's user, password, db, TLS and Sentinel
    /// settings applied where the URL does not say otherwise.
    pub fn addresses(&self) -> Result<Vec<RedisAddress>, ConfigError> {
        if self.address.is_empty() {
            return Err(ConfigError::invalid("engine.redis.address", "needs at least one address"));
        }
        let key = |i: usize| {
            if self.address.len() == 1 { "engine.redis.address".to_string() } else { format!("engine.redis.address[{i}]") }
        };
        self.address
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let mut a = parse_address(text, &self.sentinel_master_name).map_err(|m| ConfigError::invalid(key(i), m))?;
                a.tls |= self.tls.enabled;
                if a.user.is_none() && !self.user.is_empty() {
                    a.user = Some(self.user.clone());
                }
                if a.password.is_none() && !self.password.is_empty() {
                    a.password = Some(self.password.clone());
                }
                if a.db == 0 {
                    a.db = self.db;
                }
                if a.topology == RedisTopology::Cluster && a.db != 0 {
                    return Err(ConfigError::invalid(key(i), "Redis Cluster has only database 0"));
                }
                Ok(a)
            })
            .collect()
    }

    /// Checks what can be checked without connecting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.addresses()?;
        if self.prefix.is_empty() {
            return Err(ConfigError::invalid("engine.redis.prefix", "must not be empty"));
        }
        for (key, d) in [
            ("engine.redis.connect_timeout", self.connect_timeout),
            ("engine.redis.io_timeout", self.io_timeout),
            ("engine.redis.presence_ttl", self.presence_ttl),
        ] {
            if d.0.is_zero() {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.tls.cert_pem.is_empty() != self.tls.key_pem.is_empty() {
            return Err(ConfigError::invalid("engine.redis.tls.cert_pem", "a client certificate needs both cert_pem and key_pem"));
        }
        Ok(())
    }
}

/// Parses one address. `default_master` is `engine.redis.sentinel_master_name`.
pub(crate) fn parse_address(text: &str, default_master: &str) -> Result<RedisAddress, String> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("redis", text),
    };
    let (tls, kind) = match scheme {
        "redis" => (false, "standalone"),
        "rediss" => (true, "standalone"),
        "redis+cluster" => (false, "cluster"),
        "rediss+cluster" => (true, "cluster"),
        "redis+sentinel" => (false, "sentinel"),
        "rediss+sentinel" => (true, "sentinel"),
        other => {
            return Err(format!(
                "unknown scheme {other:?}: use redis://, rediss://, redis+cluster:// or redis+sentinel://"
            ));
        }
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (mut user, mut password) = (None, None);
    if let Some(u) = userinfo {
        let (name, pass) = match u.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (u, None),
        };
        if !name.is_empty() {
            user = Some(percent_decode(name)?);
        }
        if let Some(p) = pass {
            password = Some(percent_decode(p)?);
        }
    }
    let default_port = if kind == "sentinel" { DEFAULT_SENTINEL_PORT } else { DEFAULT_PORT };
    let mut hosts = vec![parse_host_port(hostport, default_port)?];
    let mut db = match path.trim_end_matches('/') {
        "" => 0,
        n => n.parse::<u8>().map_err(|_| format!("database {n:?} is not a number from 0 to 255"))?,
    };
    let mut master = default_master.to_string();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k {
            "addr" => hosts.push(parse_host_port(&v, default_port)?),
            "sentinel_master_name" | "master_set" => master = v,
            "db" => db = v.parse::<u8>().map_err(|_| format!("db {v:?} is not a number from 0 to 255"))?,
            other => return Err(format!("unsupported URL option {other:?} (supported: addr, db, sentinel_master_name)")),
        }
    }
    let topology = match kind {
        "cluster" => RedisTopology::Cluster,
        "sentinel" if master.is_empty() => {
            return Err("redis+sentinel needs the primary's name: ?sentinel_master_name=NAME (or engine.redis.sentinel_master_name)".into());
        }
        "sentinel" => RedisTopology::Sentinel { master },
        _ => RedisTopology::Standalone,
    };
    if topology == RedisTopology::Standalone && hosts.len() > 1 {
        return Err("?addr= names more nodes of a cluster or sentinel set; for client-side sharding list several addresses".into());
    }
    Ok(RedisAddress { topology, tls, hosts, user, password, db })
}

fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("{text:?} is not host[:port]");
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("port {p:?} is not 1 to 65535"))?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "%-escapes are not UTF-8".to_string())
}

/// One string or a list of strings (`address = "redis://…"` or `address = ["…", "…"]`).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => s.split_whitespace().map(str::to_string).collect(),
        Raw::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> RedisAddress {
        parse_address(text, "").unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn urls_of_every_form_parse() {
        let a = parse("redis://127.0.0.1:6380");
        assert_eq!((a.topology, a.tls, a.hosts, a.db), (RedisTopology::Standalone, false, vec![("127.0.0.1".into(), 6380)], 0));
        let a = parse("rediss://alice:s%3Acret@redis.internal/3");
        assert!(a.tls);
        assert_eq!((a.user.as_deref(), a.password.as_deref(), a.db), (Some("alice"), Some("s:cret"), 3));
        assert_eq!(a.hosts, vec![("redis.internal".into(), 6379)]);
        let a = parse("redis://:pw@[::1]:7000?db=2");
        assert_eq!((a.user, a.password.as_deref(), a.hosts, a.db), (None, Some("pw"), vec![("::1".into(), 7000)], 2));
        let a = parse("redis+cluster://10.0.0.1:7000?addr=10.0.0.2:7001&addr=10.0.0.3");
        assert_eq!(a.topology, RedisTopology::Cluster);
        assert_eq!(a.hosts.len(), 3);
        assert_eq!(a.hosts[2], ("10.0.0.3".into(), 6379));
        let a = parse("redis+sentinel://s1?sentinel_master_name=mymaster&addr=s2:26380");
        assert_eq!(a.topology, RedisTopology::Sentinel { master: "mymaster".into() });
        assert_eq!(a.hosts, vec![("s1".into(), 26379), ("s2".into(), 26380)]);
        assert_eq!(parse("localhost:6390").hosts, vec![("localhost".into(), 6390)], "a bare host:port is redis://");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (text, needle) in [
            ("http://x", "unknown scheme"),
            ("redis://x:99999", "port"),
            ("redis://x/db9", "database"),
            ("redis+sentinel://s1", "sentinel_master_name"),
            ("redis://x?timeout=1", "unsupported URL option"),
            ("redis://x?addr=y", "client-side sharding"),
            ("redis://:%zz@x", "escape"),
            ("redis://", "host"),
        ] {
            let err = parse_address(text, "").expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(parse_address("redis+sentinel://s1", "fallback").is_ok(), "the block's master name applies");
    }

    #[test]
    fn the_block_configures_redis_with_centrifugo_names() {
        let text = r#"
            [engine]
            type = "redis"
            [engine.redis]
            address = ["redis://127.0.0.1:7001", "redis://u2:p2@127.0.0.1:7002/4"]
            prefix = "app"
            user = "default-user"
            password = "default-pass"
            db = 1
            io_timeout = "250ms"
            presence_ttl = "5s"
            [engine.redis.tls]
            enabled = true
        "#;
        let loaded = Config::from_text(text).expect("valid");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        let r = &loaded.config.engine.redis;
        assert_eq!((r.prefix.as_str(), r.io_timeout, r.presence_ttl), ("app", Dur(std::time::Duration::from_millis(250)), Dur::secs(5)));
        let a = r.addresses().expect("addresses");
        assert_eq!((a[0].user.as_deref(), a[0].password.as_deref(), a[0].db, a[0].tls), (Some("default-user"), Some("default-pass"), 1, true));
        assert_eq!((a[1].user.as_deref(), a[1].password.as_deref(), a[1].db), (Some("u2"), Some("p2"), 4), "the URL wins");
    }

    #[test]
    fn one_address_as_a_string_and_from_the_environment() {
        let loaded = Config::from_text("[engine]\ntype = \"redis\"\n[engine.redis]\naddress = \"redis://h:1\"").expect("valid");
        assert_eq!(loaded.config.engine.redis.address, vec!["redis://h:1"]);
        let env = [
            ("TIDEWIRE_ENGINE_TYPE".to_string(), "redis".to_string()),
            ("TIDEWIRE_ENGINE_REDIS_ADDRESS".into(), "redis://a:1 redis://b:2".into()),
        ];
        let loaded = Config::load(None, env).expect("valid");
        assert_eq!(loaded.config.engine.redis.address, vec!["redis://a:1", "redis://b:2"]);
        assert_eq!(Config::default().engine.kind, "memory", "memory stays the default");
    }

    #[test]
    fn invalid_redis_settings_name_their_key() {
        let err = Config::from_text("[engine]\ntype = \"redis\"\n[engine.redis]\naddress = [\"redis://a\", \"tcp://b\"]")
            .expect_err("bad scheme");
        assert!(err.to_string().starts_with("engine.redis.address[1]:"), "{err}");
        let err = Config::from_text("[engine]\ntype = \"redis\"\n[engine.redis]\nio_timeout = \"0\"").expect_err("zero");
        assert!(err.to_string().starts_with("engine.redis.io_timeout:"), "{err}");
        let err = Config::from_text("[engine]\ntype = \"redis\"\n[engine.redis]\naddress = \"redis+cluster://a/2\"")
            .expect_err("db on cluster");
        assert!(err.to_string().contains("database 0"), "{err}");
        let err = Config::from_text("[engine]\ntype = \"nats\"").expect_err("nats");
        assert!(err.to_string().starts_with("engine.type:"), "{err}");
    }
}
