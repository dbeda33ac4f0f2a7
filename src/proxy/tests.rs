//! Unit tests of proxy resolution (config → proxies, names, RPC routes, headers) and of
//! calls against a backend served here on 127.0.0.1 (answers, timeouts, failures).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;

use super::*;
use crate::config::Config;

fn config(text: &str) -> Config {
    Config::from_text(text).expect("config loads").config
}

fn resolve(text: &str) -> Result<(Proxies, Vec<String>), String> {
    Proxies::from_config(&config(text), Arc::new(Metrics::default()))
}

const NAMED: &str = r#"
[[proxies]]
name = "django"
endpoint = "http://127.0.0.1:9/sub"
http_headers = ["Cookie", "X-Tenant"]
[proxies.http.static_headers]
X-Tenant = "static"
X-From = "tidewire"
[channel.proxy.publish]
endpoint = "http://127.0.0.1:9/pub"
[[channel.namespaces]]
name = "chat"
subscribe_proxy_enabled = true
subscribe_proxy_name = "django"
publish_proxy_enabled = true
[[channel.namespaces]]
name = "plain"
"#;

#[test]
fn namespaces_resolve_named_and_default_proxies() {
    let (p, warnings) = resolve(NAMED).expect("resolves");
    assert!(warnings.is_empty());
    let cfg = config(NAMED);
    let chat = &cfg.channel.namespaces[0].options;
    let plain = &cfg.channel.namespaces[1].options;
    assert_eq!(p.channel(Event::Subscribe, chat).map(Proxy::name), Some("django"));
    assert_eq!(p.channel(Event::Publish, chat).map(Proxy::name), Some(DEFAULT_NAME));
    assert!(p.channel(Event::SubRefresh, chat).is_none());
    assert!(p.channel(Event::Subscribe, plain).is_none());
    assert!(p.connect().is_none() && p.refresh().is_none());
    assert!(!p.is_empty());
}

#[test]
fn bad_proxy_config_names_the_key() {
    let missing = "[[channel.namespaces]]\nname = \"chat\"\npublish_proxy_enabled = true\npublish_proxy_name = \"nope\"";
    let err = resolve(missing).expect_err("unknown name");
    assert!(err.starts_with("channel.namespaces[0].publish_proxy_name:"), "{err}");
    let no_default = "[channel.without_namespace]\nsubscribe_proxy_enabled = true";
    assert!(resolve(no_default).expect_err("no endpoint").starts_with("channel.proxy.subscribe.endpoint:"));
    let scheme = "[client.proxy.connect]\nenabled = true\nendpoint = \"ftp://x\"";
    assert!(resolve(scheme).expect_err("scheme").starts_with("client.proxy.connect.endpoint:"));
    let dup = "[[proxies]]\nname = \"a\"\nendpoint = \"http://x/\"\n[[proxies]]\nname = \"a\"\nendpoint = \"http://y/\"";
    assert!(resolve(dup).expect_err("dup").starts_with("proxies[1].name:"));
    let taken = "[[proxies]]\nname = \"default\"\nendpoint = \"http://x/\"";
    assert!(resolve(taken).is_err());
    let rpc = "[rpc.without_namespace]\nproxy_enabled = true\nproxy_name = \"ghost\"";
    assert!(resolve(rpc).expect_err("rpc").starts_with("rpc.without_namespace.proxy_name:"));
}

#[test]
fn a_disabled_connect_proxy_needs_no_endpoint_and_nothing_is_built() {
    let (p, _) = resolve("[client.proxy.connect]\nenabled = false").expect("resolves");
    assert!(p.is_empty());
    assert!(p.connect().is_none());
}

#[test]
fn rpc_routes_by_namespace() {
    let text = r#"
[rpc.proxy]
endpoint = "http://127.0.0.1:9/rpc"
[[proxies]]
name = "orders"
endpoint = "http://127.0.0.1:9/orders"
[rpc.without_namespace]
proxy_enabled = true
[[rpc.namespaces]]
name = "orders"
proxy_enabled = true
proxy_name = "orders"
[[rpc.namespaces]]
name = "off"
[rpc.ping]
enabled = true
"#;
    let (p, _) = resolve(text).expect("resolves");
    assert!(matches!(p.rpc("getUser"), RpcRoute::Proxy(x) if x.name() == DEFAULT_NAME));
    assert!(matches!(p.rpc("orders:list"), RpcRoute::Proxy(x) if x.name() == "orders"));
    assert!(matches!(p.rpc("off:x"), RpcRoute::NotFound));
    assert!(matches!(p.rpc("unknown:x"), RpcRoute::NotFound));
    assert!(matches!(p.rpc("ping"), RpcRoute::Ping));
    let (none, _) = resolve("[rpc.ping]\nenabled = true").expect("resolves");
    assert!(matches!(none.rpc("anything"), RpcRoute::NotAvailable));
    assert!(matches!(none.rpc("ping"), RpcRoute::Ping));
}

#[test]
fn only_allowlisted_headers_are_kept_and_forwarded() {
    let (p, _) = resolve(NAMED).expect("resolves");
    let mut h = HeaderMap::new();
    h.insert("cookie", "sessionid=abc".parse().expect("v"));
    h.insert("x-secret", "no".parse().expect("v"));
    h.insert("user-agent", "node".parse().expect("v"));
    let mut kept = p.keep_headers(&h);
    assert_eq!(kept, vec![(HeaderName::from_static("cookie"), HeaderValue::from_static("sessionid=abc"))]);
    // Emulated headers: listed ones are added, a real one is never replaced.
    let emulated = [("X-Tenant", "acme"), ("Cookie", "forged"), ("X-Secret", "s")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    p.keep_emulated(&mut kept, &emulated);
    assert_eq!(kept.len(), 2);
    assert!(kept.contains(&(HeaderName::from_static("x-tenant"), HeaderValue::from_static("acme"))));
    assert!(kept.contains(&(HeaderName::from_static("cookie"), HeaderValue::from_static("sessionid=abc"))));
    // Per proxy: static headers first, forwarded ones win over them.
    let cfg = config(NAMED);
    let django = p.channel(Event::Subscribe, &cfg.channel.namespaces[0].options).expect("proxy");
    let sent = django.headers(&kept);
    assert!(sent.contains(&(HeaderName::from_static("x-tenant"), HeaderValue::from_static("acme"))));
    assert!(sent.contains(&(HeaderName::from_static("x-from"), HeaderValue::from_static("tidewire"))));
    assert_eq!(sent.iter().filter(|(k, _)| k == "x-tenant").count(), 1);
    // The default publish proxy lists no header: it gets none of the client's.
    let publish = p.channel(Event::Publish, &cfg.channel.namespaces[0].options).expect("proxy");
    assert!(publish.headers(&kept).is_empty());
}

/// A backend on 127.0.0.1 that records each request's headers and body and answers with
/// `answer` after `delay`, with `status`.
async fn backend(answer: &'static str, delay: Duration, status: u16) -> (String, Arc<Mutex<Vec<(HeaderMap, String)>>>) {
    let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/{*path}",
        post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                log.lock().expect("lock").push((headers, body));
                tokio::time::sleep(delay).await;
                (axum::http::StatusCode::from_u16(status).expect("status"), answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn rpc_config(url: &str, timeout: &str) -> String {
    format!(
        "[rpc.proxy]\nendpoint = \"{url}/rpc\"\ntimeout = \"{timeout}\"\nhttp_headers = [\"Cookie\"]\ninclude_connection_meta = true\n[rpc.proxy.http.static_headers]\nX-From = \"tidewire\"\n[rpc.without_namespace]\nproxy_enabled = true"
    )
}

fn rpc_proxy(p: &Proxies) -> &Proxy {
    match p.rpc("m") {
        RpcRoute::Proxy(x) => x,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_call_posts_centrifugos_body_with_the_allowed_headers_and_maps_the_answer() {
    let (url, seen) = backend(r#"{"result":{"data":{"answer":42}}}"#, Duration::ZERO, 200).await;
    let metrics = Arc::new(Metrics::default());
    let (p, _) = Proxies::from_config(&config(&rpc_config(&url, "1s")), metrics.clone()).expect("resolves");
    let meta = Bytes::from_static(br#"{"tenant":"t1"}"#);
    let caller = Caller { client: "c1", transport: "websocket", protocol: "json", user: "u1", meta: Some(&meta) };
    let headers = [
        (HeaderName::from_static("cookie"), HeaderValue::from_static("sessionid=s")),
        (HeaderName::from_static("x-secret"), HeaderValue::from_static("no")),
    ];
    let data = Bytes::from_static(br#"{"q":1}"#);
    let out = p.rpc_call(rpc_proxy(&p), &caller, &headers, "m", Some(&data)).await.expect("answered");
    assert_eq!(out, Outcome::Result(Some(Bytes::from_static(br#"{"answer":42}"#))));
    let seen = seen.lock().expect("lock");
    let (h, body) = &seen[0];
    assert_eq!(h.get("cookie").map(|v| v.to_str().expect("ascii")), Some("sessionid=s"));
    assert_eq!(h.get("x-from").map(|v| v.to_str().expect("ascii")), Some("tidewire"));
    assert_eq!(h.get("content-type").map(|v| v.to_str().expect("ascii")), Some("application/json"));
    assert!(h.get("x-secret").is_none());
    let body: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(
        body,
        serde_json::json!({"client":"c1","transport":"websocket","protocol":"json","encoding":"json",
            "user":"u1","meta":{"tenant":"t1"},"method":"m","data":{"q":1}})
    );
    let text = metrics.render(&[]);
    assert!(text.contains("tidewire_proxy_request_duration_seconds_count{proxy=\"default\",event=\"rpc\"} 1"), "{text}");
}

#[tokio::test]
async fn a_slow_backend_times_out_and_a_bad_status_or_answer_fails() {
    let (slow, _) = backend("{}", Duration::from_secs(5), 200).await;
    let metrics = Arc::new(Metrics::default());
    let (p, _) = Proxies::from_config(&config(&rpc_config(&slow, "100ms")), metrics.clone()).expect("resolves");
    let caller = Caller { client: "c1", transport: "sse", protocol: "json", user: "", meta: None };
    let started = std::time::Instant::now();
    let r = p.rpc_call(rpc_proxy(&p), &caller, &[], "m", None).await;
    assert_eq!(r, Err(CallError::Timeout(Duration::from_millis(100))));
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by the timeout");
    let stats = metrics.proxies.stats(DEFAULT_NAME, "rpc");
    assert_eq!(stats.in_flight.load(Ordering::Relaxed), 0, "the timed-out call is not counted in flight");
    assert!(metrics.render(&[]).contains("kind=\"timeout\"} 1"));

    let (broken, _) = backend("oops", Duration::ZERO, 500).await;
    let (p, _) = Proxies::from_config(&config(&rpc_config(&broken, "1s")), Arc::new(Metrics::default())).expect("resolves");
    let r = p.rpc_call(rpc_proxy(&p), &caller, &[], "m", None).await;
    assert_eq!(r, Err(CallError::Http(http::HttpError::Status(500))));

    let (html, _) = backend("<html>", Duration::ZERO, 200).await;
    let (p, _) = Proxies::from_config(&config(&rpc_config(&html, "1s")), Arc::new(Metrics::default())).expect("resolves");
    assert!(matches!(p.rpc_call(rpc_proxy(&p), &caller, &[], "m", None).await, Err(CallError::BadAnswer(_))));

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (p, _) = Proxies::from_config(&config(&rpc_config(&format!("http://127.0.0.1:{port}"), "1s")), Arc::new(Metrics::default()))
        .expect("resolves");
    assert!(matches!(p.rpc_call(rpc_proxy(&p), &caller, &[], "m", None).await, Err(CallError::Http(http::HttpError::Transport(_)))));
}

/// A gRPC backend (h2c) on 127.0.0.1: records each call's path, metadata and request
/// message bytes, and answers with `answer` (a framed message) and `status`.
async fn grpc_backend(answer: Bytes, status: u32) -> (String, Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>) {
    use http_body_util::{BodyExt as _, StreamBody};
    use hyper::body::Frame;
    let seen: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>> = Arc::default();
    let log = seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let log = log.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    let answer = answer.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        log.lock().expect("lock").push((path, headers, body));
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", status.to_string().parse().expect("v"));
                        if status != 0 {
                            trailers.insert("grpc-message", "backend%20broke".parse().expect("v"));
                        }
                        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
                            vec![Ok(Frame::data(answer)), Ok(Frame::trailers(trailers))];
                        let body = StreamBody::new(futures_util::stream::iter(frames));
                        let resp = hyper::Response::builder().header("content-type", "application/grpc").body(body).expect("resp");
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(sock);
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new()).serve_connection(io, svc).await;
            });
        }
    });
    (format!("grpc://{addr}"), seen)
}

#[tokio::test]
async fn grpc_proxies_call_centrifugos_service_with_the_allowed_metadata() {
    let answer = grpc::frame(&grpc::PbRpcResponseForTest::result(br#"{"answer":42}"#));
    let (url, seen) = grpc_backend(answer, 0).await;
    let text = format!(
        "[rpc.proxy]\nendpoint = \"{url}\"\ngrpc_metadata = [\"authorization\"]\ninclude_connection_meta = true\n[rpc.without_namespace]\nproxy_enabled = true"
    );
    let (p, warnings) = resolve(&text).expect("resolves");
    assert!(warnings.is_empty(), "{warnings:?}");
    let meta = Bytes::from_static(b"{\"m\":1}");
    let caller = Caller { client: "c1", transport: "websocket", protocol: "json", user: "u1", meta: Some(&meta) };
    let headers = [
        (HeaderName::from_static("authorization"), HeaderValue::from_static("Bearer t")),
        (HeaderName::from_static("cookie"), HeaderValue::from_static("not-listed")),
    ];
    let data = Bytes::from_static(b"{\"q\":1}");
    let out = p.rpc_call(rpc_proxy(&p), &caller, &headers, "m", Some(&data)).await.expect("answered");
    assert_eq!(out, Outcome::Result(Some(Bytes::from_static(br#"{"answer":42}"#))));
    let seen = seen.lock().expect("lock");
    let (path, md, body) = &seen[0];
    assert_eq!(path, "/centrifugal.centrifugo.proxy.CentrifugoProxy/RPC");
    assert_eq!(md.get("authorization").map(|v| v.to_str().expect("ascii")), Some("Bearer t"));
    assert!(md.get("cookie").is_none());
    assert_eq!(md.get("content-type").map(|v| v.to_str().expect("ascii")), Some("application/grpc"));
    let req: grpc::PbRpcRequest = grpc::unframe(body.clone()).expect("a request message");
    let expected = grpc::rpc_request(&caller, wire::Shape { binary: false, meta: true }, "m", Some(&data));
    assert_eq!(req, expected);
}

#[tokio::test]
async fn a_grpc_error_status_fails_the_call() {
    let (url, _) = grpc_backend(Bytes::new(), 13).await;
    let text = format!("[rpc.proxy]\nendpoint = \"{url}\"\n[rpc.without_namespace]\nproxy_enabled = true");
    let (p, _) = resolve(&text).expect("resolves");
    let caller = Caller { client: "c1", transport: "websocket", protocol: "json", user: "", meta: None };
    let r = p.rpc_call(rpc_proxy(&p), &caller, &[], "m", None).await;
    assert!(matches!(r, Err(CallError::Grpc(grpc::GrpcError::Status(13, _)))), "{r:?}");
}
