//! The server API over HTTP/3 (h3 + h3-quinn) on its own UDP port, feeding the very same
//! axum router as HTTP/1.1 and HTTP/2: one service, several listeners, no copied handlers.
//! (wtransport, which serves WebTransport on the client port, cannot answer plain HTTP/3
//! requests, hence a separate port.)
//!
//! One task per QUIC connection accepts requests; each request runs on its own task:
//! its body is read up to `http_api.max_request_body_size` (413 above), the router answers,
//! and the response body is sent in one DATA frame.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use tower::ServiceExt;

/// Longest a request may take to arrive whole, so a stalled client holds no task forever.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response body sent, in bytes (64 MiB): API answers are small; this only bounds
/// a pathological one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Accepts HTTP/3 connections on `endpoint` until it is closed; beyond `max_connections`
/// open ones, new connections are refused.
pub async fn run(endpoint: quinn::Endpoint, app: Router, max_body: usize, max_connections: usize) {
    while let Some(incoming) = endpoint.accept().await {
        if endpoint.open_connections() >= max_connections {
            crate::log::limited_warn!("h3.max_connections", max_connections, "http3 API connection limit reached; refusing");
            incoming.refuse();
            continue;
        }
        let app = app.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "http3 handshake failed");
                    return;
                }
            };
            serve_connection(conn, app, max_body).await;
        });
    }
}

async fn serve_connection(conn: quinn::Connection, app: Router, max_body: usize) {
    let mut h3 = match h3::server::builder().build::<_, Bytes>(h3_quinn::Connection::new(conn)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "http3 connection setup failed");
            return;
        }
    };
    loop {
        match h3.accept().await {
            Ok(Some(resolver)) => {
                let app = app.clone();
                tokio::spawn(async move {
                    match resolver.resolve_request().await {
                        Ok((req, stream)) => serve_request(req, stream, app, max_body).await,
                        Err(e) => tracing::debug!(error = %e, "http3 request rejected"),
                    }
                });
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "http3 connection ended");
                return;
            }
        }
    }
}

async fn serve_request<S>(req: Request<()>, mut stream: h3::server::RequestStream<S, Bytes>, app: Router, max_body: usize)
where
    S: h3::quic::BidiStream<Bytes>,
{
    let body = match tokio::time::timeout(REQUEST_READ_TIMEOUT, read_body(&mut stream, max_body)).await {
        Ok(Ok(body)) => body,
        Ok(Err(status)) => {
            let _ = send(&mut stream, plain(status, status.canonical_reason().unwrap_or(""))).await;
            return;
        }
        Err(_) => {
            let _ = send(&mut stream, plain(StatusCode::REQUEST_TIMEOUT, "request timeout")).await;
            return;
        }
    };
    let (parts, ()) = req.into_parts();
    let request = Request::from_parts(parts, Body::from(body));
    let response = match app.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_RESPONSE_BYTES).await else {
        let _ = send(&mut stream, plain(StatusCode::INTERNAL_SERVER_ERROR, "response too large")).await;
        return;
    };
    let _ = send(&mut stream, Response::from_parts(parts, bytes)).await;
}

/// Reads the request body, refusing more than `max` bytes with 413.
async fn read_body<S>(stream: &mut h3::server::RequestStream<S, Bytes>, max: usize) -> Result<Bytes, StatusCode>
where
    S: h3::quic::BidiStream<Bytes>,
{
    let mut body = BytesMut::new();
    loop {
        match stream.recv_data().await {
            Ok(Some(mut chunk)) => {
                if body.len() + chunk.remaining() > max {
                    return Err(StatusCode::PAYLOAD_TOO_LARGE);
                }
                while chunk.has_remaining() {
                    let part = chunk.chunk();
                    body.extend_from_slice(part);
                    let n = part.len();
                    chunk.advance(n);
                }
            }
            Ok(None) => return Ok(body.freeze()),
            Err(_) => return Err(StatusCode::BAD_REQUEST),
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from_static(text.as_bytes()));
    *r.status_mut() = status;
    r
}

async fn send<S>(stream: &mut h3::server::RequestStream<S, Bytes>, response: Response<Bytes>) -> Result<(), h3::error::StreamError>
where
    S: h3::quic::BidiStream<Bytes>,
{
    let (parts, body) = response.into_parts();
    stream.send_response(Response::from_parts(parts, ())).await?;
    if !body.is_empty() {
        stream.send_data(body).await?;
    }
    stream.finish().await
}
