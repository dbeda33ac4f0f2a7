//! Server API methods with Centrifugo's request and result shapes.
//!
//! Each method takes its JSON params and returns a JSON result or a client error; how the
//! answer is framed (new `/api/<method>`, legacy `/api`, batch) is the caller's business.
//! A body that is not the JSON a method takes is a [`Rejection::BadRequest`] (HTTP 400);
//! well-formed input that breaks a rule is error 107 in the body, as Centrifugo does.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::key::Rejection;
use crate::hub::{Control, HistoryFilter, Hub, PublishRequest, ServerSubscribe, Target};
use crate::protocol::{ClientError, ClientInfo, Disconnect, Publication, StreamPosition, json as wire};

/// Every method the API serves (others are 404).
pub const METHODS: &[&str] = &[
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "refresh",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "channels",
    "info",
    "batch",
    "rpc",
];

/// Legacy `/api` method numbers (Centrifugo's `MethodType` enum).
pub fn method_by_number(n: u64) -> Option<&'static str> {
    const LEGACY: &[&str] = &[
        "publish",
        "broadcast",
        "unsubscribe",
        "disconnect",
        "presence",
        "presence_stats",
        "history",
        "history_remove",
        "channels",
        "info",
        "rpc",
        "subscribe",
        "refresh",
    ];
    LEGACY.get(usize::try_from(n).ok()?).copied()
}

/// A method's answer: a result object or an error code.
pub type Answer = Result<Value, ClientError>;

/// Refuses params holding JSON nested deeper than [`wire::MAX_JSON_DEPTH`] levels (the
/// params object itself is one more level). Payloads are relayed verbatim, so a deep one
/// would reach every subscriber; the whole request is refused with a 400 saying why.
pub fn check_depth(params: &RawValue) -> Result<(), Rejection> {
    let limit = wire::MAX_JSON_DEPTH;
    if wire::nested_deeper_than(params.get().as_bytes(), limit + 1) {
        return Err(Rejection::TooDeep { limit });
    }
    Ok(())
}

fn parse<T: DeserializeOwned>(params: &RawValue) -> Result<T, Rejection> {
    serde_json::from_str(params.get()).map_err(|e| Rejection::BadRequest(e.to_string()))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PublishParams {
    channel: String,
    channels: Vec<String>,
    data: Option<Box<RawValue>>,
    b64data: Option<String>,
    skip_history: bool,
    tags: BTreeMap<String, String>,
    idempotency_key: Option<String>,
    delta: bool,
}

impl PublishParams {
    fn payload(&self) -> Result<Bytes, ClientError> {
        if let Some(b64) = &self.b64data {
            return base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(Bytes::from)
                .map_err(|_| ClientError::BadRequest);
        }
        match &self.data {
            Some(raw) if raw.get() != "null" => Ok(Bytes::copy_from_slice(raw.get().as_bytes())),
            _ => Err(ClientError::BadRequest),
        }
    }

    fn request(&self, channel: &str, data: Bytes) -> PublishRequest {
        PublishRequest {
            channel: channel.to_owned(),
            data,
            info: None,
            tags: self.tags.clone(),
            skip_history: self.skip_history,
            idempotency_key: self.idempotency_key.clone().filter(|k| !k.is_empty()),
            delta: self.delta,
        }
    }
}

async fn publish_one(hub: &Hub, p: &PublishParams, channel: &str) -> Answer {
    if channel.is_empty() {
        return Err(ClientError::BadRequest);
    }
    let data = p.payload()?;
    let outcome = hub.publish(p.request(channel, data)).await.map_err(|e| e.client_error())?;
    Ok(match outcome.position {
        Some(StreamPosition { offset, epoch }) => json!({"offset": offset, "epoch": epoch}),
        None => json!({}),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TargetParams {
    user: String,
    client: String,
    session: String,
    channel: String,
    info: Option<Box<RawValue>>,
    b64info: Option<String>,
    data: Option<Box<RawValue>>,
    b64data: Option<String>,
    expire_at: Option<u64>,
    recover_since: Option<PositionParams>,
    whitelist: Vec<String>,
    disconnect: Option<DisconnectParams>,
    expired: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PositionParams {
    offset: u64,
    epoch: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DisconnectParams {
    code: u32,
    reason: String,
}

impl TargetParams {
    fn target(&self) -> Result<Target, ClientError> {
        if self.user.is_empty() {
            return Err(ClientError::BadRequest);
        }
        Ok(Target { user: self.user.clone(), client: self.client.clone(), session: self.session.clone() })
    }
}

fn raw_or_b64(raw: Option<&RawValue>, b64: Option<&str>) -> Result<Option<Bytes>, ClientError> {
    if let Some(b64) = b64 {
        return base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(|b| Some(Bytes::from(b)))
            .map_err(|_| ClientError::BadRequest);
    }
    Ok(raw.filter(|r| r.get() != "null").map(|r| Bytes::copy_from_slice(r.get().as_bytes())))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChannelParams {
    channel: String,
    pattern: String,
    limit: Option<i64>,
    since: Option<PositionParams>,
    reverse: bool,
}

/// A model value as the JSON the client protocol uses (raw `data`, `info` …).
fn as_json(write: impl FnOnce(&mut Vec<u8>)) -> Value {
    let mut out = Vec::new();
    write(&mut out);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

fn publication_json(p: &Publication) -> Value {
    as_json(|out| wire::put_publication(out, p))
}

fn client_info_json(i: &ClientInfo) -> Value {
    as_json(|out| wire::put_client_info(out, i))
}

async fn history(hub: &Hub, p: &ChannelParams) -> Answer {
    let limit = match p.limit.unwrap_or(0) {
        -1 => usize::MAX,
        l if l < 0 => return Err(ClientError::BadRequest),
        l => usize::try_from(l).unwrap_or(usize::MAX),
    };
    let since = p.since.as_ref().map(|s| StreamPosition { offset: s.offset, epoch: s.epoch.clone() });
    let filter = HistoryFilter { since, limit, reverse: p.reverse };
    let page = hub.history(&p.channel, &filter).await.map_err(|e| e.client_error())?;
    let publications: Vec<Value> = page.publications.iter().map(|p| publication_json(p)).collect();
    // Centrifugo omits empty repeated fields (`omitempty`); so do we.
    let mut result = json!({"epoch": page.position.epoch, "offset": page.position.offset});
    if !publications.is_empty() {
        result["publications"] = Value::Array(publications);
    }
    Ok(result)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BatchParams {
    commands: Vec<BTreeMap<String, Box<RawValue>>>,
    #[allow(dead_code)]
    parallel: bool,
}

/// Runs `method` with `params`. `Ok(Err(code))` is a method error (HTTP 200 with an
/// `error` object); `Err(rejection)` means the params did not parse (HTTP 400).
pub async fn call(hub: &Hub, method: &str, params: &RawValue) -> Result<Answer, Rejection> {
    hub.metrics().api_calls.inc(method);
    check_depth(params)?;
    let answer = match method {
        "publish" => {
            let p: PublishParams = parse(params)?;
            publish_one(hub, &p, &p.channel).await
        }
        "broadcast" => {
            let p: PublishParams = parse(params)?;
            if p.channels.is_empty() {
                Err(ClientError::BadRequest)
            } else {
                let mut responses = Vec::with_capacity(p.channels.len());
                for channel in &p.channels {
                    responses.push(match publish_one(hub, &p, channel).await {
                        Ok(result) => json!({"result": result}),
                        Err(e) => json!({"error": error_json(e)}),
                    });
                }
                Ok(json!({"responses": responses}))
            }
        }
        "subscribe" => {
            let p: TargetParams = parse(params)?;
            subscribe(hub, &p).await
        }
        "unsubscribe" => {
            let p: TargetParams = parse(params)?;
            match (p.target(), p.channel.is_empty()) {
                (Ok(target), false) => control(hub, Control::Unsubscribe(target, p.channel.clone())).await,
                _ => Err(ClientError::BadRequest),
            }
        }
        "disconnect" => {
            let p: TargetParams = parse(params)?;
            disconnect(hub, &p).await
        }
        "refresh" => {
            let p: TargetParams = parse(params)?;
            match (p.target(), raw_or_b64(p.info.as_deref(), None)) {
                (Ok(target), Ok(info)) => {
                    control(hub, Control::Refresh { target, expired: p.expired, expire_at: p.expire_at, info }).await
                }
                _ => Err(ClientError::BadRequest),
            }
        }
        "presence" => {
            let p: ChannelParams = parse(params)?;
            hub.presence(&p.channel).await.map_err(|e| e.client_error()).map(|presence| {
                let map: serde_json::Map<String, Value> =
                    presence.iter().map(|(client, info)| (client.clone(), client_info_json(info))).collect();
                json!({"presence": map})
            })
        }
        "presence_stats" => {
            let p: ChannelParams = parse(params)?;
            hub.presence_stats(&p.channel)
                .await
                .map_err(|e| e.client_error())
                .map(|s| json!({"num_clients": s.num_clients, "num_users": s.num_users}))
        }
        "history" => {
            let p: ChannelParams = parse(params)?;
            history(hub, &p).await
        }
        "history_remove" => {
            let p: ChannelParams = parse(params)?;
            hub.remove_history(&p.channel).await.map_err(|e| e.client_error()).map(|()| json!({}))
        }
        "channels" => {
            let p: ChannelParams = parse(params)?;
            hub.channels_everywhere(&p.pattern).await.map_err(|e| e.client_error()).map(|list| {
                let channels: serde_json::Map<_, _> =
                    list.into_iter().map(|(name, n)| (name, json!({"num_clients": n}))).collect();
                json!({"channels": channels})
            })
        }
        "info" => {
            let nodes: Vec<_> = hub
                .nodes()
                .into_iter()
                .map(|i| {
                    json!({
                        "uid": i.uid, "name": i.name, "version": crate::session::VERSION,
                        "num_clients": i.num_clients, "num_users": i.num_users,
                        "num_channels": i.num_channels, "num_subs": i.num_subs, "uptime": i.uptime,
                    })
                })
                .collect();
            Ok(json!({"nodes": nodes}))
        }
        "rpc" => Err(ClientError::MethodNotFound),
        _ => return Err(Rejection::NotFound),
    };
    if answer.is_err() {
        hub.metrics().api_errors.inc(method);
    }
    Ok(answer)
}

async fn subscribe(hub: &Hub, p: &TargetParams) -> Answer {
    let target = p.target()?;
    hub.channels().parse(&p.channel).map_err(|e| e.client_error())?;
    let sub = ServerSubscribe {
        channel: p.channel.clone(),
        info: raw_or_b64(p.info.as_deref(), p.b64info.as_deref())?,
        data: raw_or_b64(p.data.as_deref(), p.b64data.as_deref())?,
        expire_at: p.expire_at.filter(|at| *at > 0),
        recover_since: p.recover_since.as_ref().map(|r| StreamPosition { offset: r.offset, epoch: r.epoch.clone() }),
    };
    control(hub, Control::Subscribe(target, sub)).await
}

async fn disconnect(hub: &Hub, p: &TargetParams) -> Answer {
    let target = p.target()?;
    let d = match &p.disconnect {
        None => Disconnect::FORCE_NO_RECONNECT,
        Some(d) => {
            let code = u16::try_from(d.code).map_err(|_| ClientError::BadRequest)?;
            if !(3000..5000).contains(&code) {
                return Err(ClientError::BadRequest);
            }
            Disconnect::custom(code, d.reason.clone())
        }
    };
    control(hub, Control::Disconnect(target, p.whitelist.clone(), d)).await
}

async fn control(hub: &Hub, c: Control) -> Answer {
    hub.control(c).await.map_err(|e| e.client_error())?;
    Ok(json!({}))
}

/// `{"code":…,"message":…}`.
pub fn error_json(e: ClientError) -> Value {
    json!({"code": e.code(), "message": e.message()})
}

/// Runs a `batch`: commands in order, each `{"<method>": params}`; the answer is
/// `{"replies":[{"<method>": result} | {"error": …}]}` (not wrapped in `result`).
pub async fn batch(hub: &Hub, params: &RawValue) -> Result<Value, Rejection> {
    hub.metrics().api_calls.inc("batch");
    let p: BatchParams = parse(params)?;
    // All or nothing: one too-deep command refuses the batch before any command runs.
    for params in p.commands.iter().flat_map(BTreeMap::values) {
        check_depth(params)?;
    }
    let mut replies = Vec::with_capacity(p.commands.len());
    for command in &p.commands {
        let reply = match command.iter().next() {
            Some((method, params)) if command.len() == 1 && method != "batch" => {
                match Box::pin(call(hub, method, params)).await {
                    Ok(Ok(result)) => json!({ method.as_str(): result }),
                    Ok(Err(e)) => json!({"error": error_json(e)}),
                    Err(Rejection::NotFound) => json!({"error": error_json(ClientError::MethodNotFound)}),
                    Err(_) => json!({"error": error_json(ClientError::BadRequest)}),
                }
            }
            _ => json!({"error": error_json(ClientError::BadRequest)}),
        };
        replies.push(reply);
    }
    Ok(json!({"replies": replies}))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
        ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
    }

    /// Runs every params parser an API body can reach on `raw`.
    fn parse_all(raw: &RawValue) {
        let _ = check_depth(raw);
        if let Ok(p) = parse::<PublishParams>(raw) {
            let _ = p.payload();
        }
        if let Ok(p) = parse::<TargetParams>(raw) {
            let _ = p.target();
            let _ = raw_or_b64(p.data.as_deref(), p.b64data.as_deref());
            let _ = raw_or_b64(p.info.as_deref(), p.b64info.as_deref());
        }
        let _ = parse::<ChannelParams>(raw);
        if let Ok(b) = parse::<BatchParams>(raw) {
            for params in b.commands.iter().flat_map(BTreeMap::values) {
                let _ = check_depth(params);
            }
        }
    }

    fn publish_body() -> impl Strategy<Value = Vec<u8>> {
        ("[a-z:]{0,10}", any::<i64>(), any::<bool>(), "[A-Za-z0-9+/=]{0,12}").prop_map(|(channel, n, skip, b64)| {
            json!({"channel": channel, "channels": [channel], "data": {"n": n}, "b64data": b64,
                   "skip_history": skip, "tags": {"t": channel}, "user": channel, "expire_at": n.unsigned_abs(),
                   "commands": [{"publish": {"channel": channel, "data": n}}]})
            .to_string()
            .into_bytes()
        })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn api_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(raw) = super::super::body_params(&bytes::Bytes::from(bytes)) {
                parse_all(raw);
            }
        }

        #[test]
        fn mutated_api_bodies_never_panic(body in publish_body(), edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..5)) {
            let mut body = body;
            for (at, byte) in edits {
                let i = at % body.len();
                body[i] = byte;
            }
            if let Ok(raw) = super::super::body_params(&bytes::Bytes::from(body)) {
                parse_all(raw);
            }
        }

        #[test]
        fn valid_publish_bodies_parse_with_their_data_verbatim(body in publish_body()) {
            let body = bytes::Bytes::from(body);
            let raw = super::super::body_params(&body).expect("valid JSON");
            prop_assert!(check_depth(raw).is_ok());
            let p: PublishParams = parse(raw).expect("publish params");
            let sent: Value = serde_json::from_slice(&body).expect("json");
            let want = sent["data"].to_string();
            prop_assert_eq!(p.data.as_deref().map(RawValue::get), Some(want.as_str()));
            let batch: BatchParams = parse(raw).expect("batch params");
            prop_assert_eq!(batch.commands.len(), 1);
        }

        #[test]
        fn depth_is_refused_exactly_past_the_limit(extra in 0usize..3) {
            let depth = wire::MAX_JSON_DEPTH + extra;
            let body = format!(r#"{{"channel":"c","data":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
            let raw: Box<RawValue> = serde_json::from_str(&body).expect("valid JSON");
            prop_assert_eq!(check_depth(&raw).is_ok(), extra == 0);
        }
    }
}
