//! The API key check and the API's typed rejections.
//!
//! Order, as Centrifugo: `X-API-Key`, then (only when that header is absent)
//! `Authorization: apikey <key>`, then the `api_key` query parameter. Keys are compared in
//! constant time. A missing or wrong key is a 401 with an empty body.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// Why an API request was refused before any method ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No valid API key (401, empty body).
    #[error("unauthorized")]
    Unauthorized,
    /// Unknown method (404).
    #[error("not found")]
    NotFound,
    /// The body is not the JSON the method takes (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// JSON in the request nests deeper than the limit (400, the body says so).
    #[error("JSON nested deeper than {limit} levels")]
    TooDeep {
        /// The limit in levels (`protocol::json::MAX_JSON_DEPTH`).
        limit: usize,
    },
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
            Self::NotFound => (StatusCode::NOT_FOUND, "Not Found").into_response(),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad Request").into_response(),
            Self::TooDeep { .. } => (StatusCode::BAD_REQUEST, self.to_string()).into_response(),
        }
    }
}

/// Extracts the key a request presents.
fn presented<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    if let Some(v) = headers.get("x-api-key") {
        return v.to_str().ok();
    }
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = v.split_whitespace();
        if let (Some(scheme), Some(key), None) = (parts.next(), parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("apikey")
        {
            return Some(key);
        }
    }
    query?.split('&').find_map(|pair| pair.strip_prefix("api_key="))
}

/// Checks the request's key against `key`. An empty configured key refuses everything
/// unless `insecure` is set.
pub fn check(headers: &HeaderMap, query: Option<&str>, key: &str, insecure: bool) -> Result<(), Rejection> {
    if insecure {
        return Ok(());
    }
    match presented(headers, query) {
        Some(given) if !key.is_empty() && bool::from(given.as_bytes().ct_eq(key.as_bytes())) => Ok(()),
        _ => Err(Rejection::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn key_sources_in_order() {
        assert!(check(&headers(&[("x-api-key", "k")]), None, "k", false).is_ok());
        assert!(check(&headers(&[("authorization", "apikey k")]), None, "k", false).is_ok());
        assert!(check(&headers(&[("authorization", "APIKEY k")]), None, "k", false).is_ok());
        assert!(check(&headers(&[("authorization", "apikey k extra")]), None, "k", false).is_err());
        assert!(check(&headers(&[("authorization", "bearer k")]), None, "k", false).is_err());
        assert!(check(&HeaderMap::new(), Some("a=1&api_key=k"), "k", false).is_ok());
        // X-API-Key present and wrong: Authorization is not consulted.
        assert!(check(&headers(&[("x-api-key", "bad"), ("authorization", "apikey k")]), None, "k", false).is_err());
    }

    #[test]
    fn empty_key_refuses_unless_insecure() {
        assert_eq!(check(&headers(&[("x-api-key", "")]), None, "", false), Err(Rejection::Unauthorized));
        assert!(check(&HeaderMap::new(), None, "", true).is_ok());
    }
}
