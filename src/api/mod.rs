//! The server HTTP API as one axum service: `POST /api/<method>`, the legacy `POST /api`
//! (newline-delimited `{id, method, params}`), `/health` and `/metrics`. The TCP listener
//! (`tcp`: HTTP/1.1 and HTTP/2, h2c) serves this same router, and so does the HTTP/3
//! listener (`h3`).

pub mod h3;
pub mod key;
pub mod methods;
pub mod tcp;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

pub use key::Rejection;

use crate::hub::Hub;
use crate::protocol::ClientError;

/// Routes of the API, health and metrics.
pub fn router(hub: Hub) -> Router {
    let limit = hub.config().http_api.max_request_body_size;
    let api = Router::new()
        .route("/api", post(legacy))
        .route("/api/{method}", post(new_format))
        .layer(DefaultBodyLimit::max(limit));
    let mut ops = Router::new();
    if hub.config().health.enabled {
        ops = ops.route("/health", get(health));
    }
    if hub.config().prometheus.enabled {
        ops = ops.route("/metrics", get(metrics));
    }
    api.merge(ops).with_state(hub)
}

fn transport_errors(hub: &Hub, headers: &HeaderMap) -> bool {
    hub.config().http_api.error_mode == "transport"
        || headers.get("x-centrifugo-error-mode").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"transport"))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn body_params(body: &Bytes) -> Result<&RawValue, Rejection> {
    let text = if body.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { &body[..] };
    serde_json::from_slice(text).map_err(|e| Rejection::BadRequest(e.to_string()))
}

async fn new_format(
    State(hub): State<Hub>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    // Unknown methods are a 404 before the key is looked at, as Centrifugo's router does.
    if !methods::METHODS.contains(&method.as_str()) {
        return Err(Rejection::NotFound);
    }
    let cfg = &hub.config().http_api;
    key::check(&headers, query.as_deref(), &cfg.key, cfg.insecure)?;
    let params = body_params(&body)?;
    if method == "batch" {
        let replies = methods::batch(&hub, params).await?;
        return Ok(json_response(StatusCode::OK, &replies));
    }
    Ok(match methods::call(&hub, &method, params).await? {
        Ok(result) => json_response(StatusCode::OK, &json!({ "result": result })),
        Err(e) if transport_errors(&hub, &headers) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_response(status, &methods::error_json(e))
        }
        Err(e) => json_response(StatusCode::OK, &json!({ "error": methods::error_json(e) })),
    })
}

#[derive(Deserialize)]
struct LegacyCommand<'a> {
    #[serde(default)]
    id: Option<Value>,
    method: Value,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// Legacy format: one `{id, method, params}` per line; one answer per line, in order,
/// joined with `\n` and no trailing newline (cent.js's pipeline splits on it).
async fn legacy(
    State(hub): State<Hub>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let cfg = &hub.config().http_api;
    key::check(&headers, query.as_deref(), &cfg.key, cfg.insecure)?;
    let mut answers = Vec::new();
    let empty = RawValue::from_string("{}".into()).map_err(|e| Rejection::BadRequest(e.to_string()))?;
    // Every line is parsed and depth-checked before any runs: a bad line refuses the request
    // without the lines before it having taken effect.
    let commands = crate::protocol::framing::lines(&body)
        .map(|line| serde_json::from_slice(line).map_err(|e| Rejection::BadRequest(e.to_string())))
        .collect::<Result<Vec<LegacyCommand<'_>>, _>>()?;
    for cmd in &commands {
        if let Some(params) = cmd.params {
            methods::check_depth(params)?;
        }
    }
    for cmd in commands {
        let method = match &cmd.method {
            Value::String(s) => Some(s.to_ascii_lowercase()),
            Value::Number(n) => n.as_u64().and_then(methods::method_by_number).map(str::to_owned),
            _ => None,
        };
        let params = cmd.params.unwrap_or(&empty);
        let mut answer = serde_json::Map::new();
        if let Some(id) = cmd.id.filter(|id| !id.is_null()) {
            answer.insert("id".into(), id);
        }
        let outcome = match method.as_deref() {
            Some("batch") => methods::batch(&hub, params).await.map(Ok),
            Some(m) => methods::call(&hub, m, params).await,
            None => Err(Rejection::NotFound),
        };
        match outcome {
            Ok(Ok(result)) => answer.insert("result".into(), result),
            Ok(Err(e)) => answer.insert("error".into(), methods::error_json(e)),
            Err(Rejection::NotFound) => answer.insert("error".into(), methods::error_json(ClientError::MethodNotFound)),
            Err(other) => return Err(other),
        };
        answers.push(Value::Object(answer).to_string());
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], answers.join("\n")).into_response())
}

async fn health(State(hub): State<Hub>) -> Response {
    match hub.health().await {
        Ok(()) => json_response(StatusCode::OK, &json!({})),
        Err(e) => json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": e.to_string()})),
    }
}

async fn metrics(State(hub): State<Hub>) -> Response {
    let info = hub.info();
    let text = hub.metrics().render(&[
        ("tidewire_node_num_clients", "Authenticated connections.", info.num_clients),
        ("tidewire_node_num_users", "Distinct users connected.", info.num_users),
        ("tidewire_node_num_channels", "Channels with local subscribers.", info.num_channels),
        ("tidewire_node_num_subscriptions", "Subscriptions on this node.", info.num_subs),
        ("tidewire_node_uptime_seconds", "Seconds since start.", info.uptime),
    ]);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
