//! The HTTP adapter: one pooled keep-alive client (hyper-util's, over rustls for
//! `https://`) shared by every proxy, POSTing JSON bodies.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Idle keep-alive connections kept per backend host: enough for bursts of connects
/// without a TCP handshake each, few enough that an idle node holds little.
const MAX_IDLE_PER_HOST: usize = 32;

/// How long an idle pooled connection is kept, in seconds (below common backend
/// keep-alive limits would be ideal; servers closing first is handled by a retry-free
/// error 100, rare with this value).
const IDLE_TIMEOUT_SECS: u64 = 30;

/// Largest answer body read from a backend, in bytes: answers are small JSON objects; a
/// bigger one is refused rather than buffered.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why an HTTP call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Connecting or the exchange failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// The backend answered with a status other than 200.
    #[error("status {0}")]
    Status(u16),
    /// The answer body was too large or broken.
    #[error("answer body: {0}")]
    Body(String),
}

impl HttpError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transport(_) => "transport",
            Self::Status(_) => "status",
            Self::Body(_) => "body",
        }
    }
}

/// The shared client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client trusting the platform's root certificates for `https://` endpoints.
    pub fn new(connect_timeout: Duration) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_secs(IDLE_TIMEOUT_SECS))
            .build(https);
        Ok(Self { inner })
    }

    /// POSTs `body` as JSON; the answer body when the status is 200.
    pub async fn post(&self, uri: &Uri, headers: &[(HeaderName, HeaderValue)], body: Vec<u8>) -> Result<Bytes, HttpError> {
        let mut req = Request::post(uri.clone());
        if let Some(h) = req.headers_mut() {
            h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            for (k, v) in headers {
                h.insert(k.clone(), v.clone());
            }
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| HttpError::Transport(e.to_string()))?;
        let resp = self.inner.request(req).await.map_err(|e| HttpError::Transport(error_chain(&e)))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| HttpError::Body(e.to_string()))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(HttpError::Status(status.as_u16()));
        }
        Ok(body)
    }
}

/// An error and its sources, for the log line ("client error (Connect): connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
