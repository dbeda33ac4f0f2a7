//! JWT verification with algorithm pinning.
//!
//! The algorithm a token names must belong to a family we hold a key for (HMAC, RSA or
//! ECDSA); `alg: none`, unknown algorithms and a family without a configured key are
//! rejected. Expiry (`exp`) and not-before (`nbf`, with a small leeway for clock skew)
//! are checked against the `now` passed in (not the wall clock) so the
//! session can distinguish "expired" (error 109, refresh) from "invalid" (3500), and tests
//! can step time.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::TokenConfig;

/// Clock skew tolerated on `nbf`, in seconds: a backend whose clock runs a little ahead of
/// ours mints tokens whose `nbf` is "now" on its clock; refusing those would fail every
/// fresh connection from it. Small enough that a token meant for later stays refused.
pub const NBF_LEEWAY_SECS: u64 = 5;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Signature and claims are fine but `exp` has passed or `nbf` has not come yet.
    #[error("token expired")]
    Expired,
    /// Anything else: bad signature, wrong algorithm, malformed, wrong claim.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Per-channel overrides carried in `subs` / `override` claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubOverride {
    /// Override `presence`.
    pub presence: Option<bool>,
    /// Override `join_leave`.
    pub join_leave: Option<bool>,
    /// Override `force_push_join_leave`.
    pub force_push_join_leave: Option<bool>,
    /// Override `force_recovery`.
    pub force_recovery: Option<bool>,
    /// Override `force_positioning`.
    pub force_positioning: Option<bool>,
}

/// Options for one server-side subscription from the `subs` claim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubClaim {
    /// Channel info.
    pub info: Option<Bytes>,
    /// Data for the client in the subscribe result.
    pub data: Option<Bytes>,
    /// Option overrides.
    pub overrides: SubOverride,
}

/// Verified claims of a connection token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectClaims {
    /// User id (`sub`); empty means anonymous.
    pub user: String,
    /// When the connection's credentials expire (unix seconds): `expire_at` when present
    /// (0 = never), else `exp`.
    pub expire_at: Option<u64>,
    /// Public connection info (`info`, or decoded `b64info`).
    pub info: Option<Bytes>,
    /// Server-side subscriptions (`channels`).
    pub channels: Vec<String>,
    /// Server-side subscriptions with options (`subs`).
    pub subs: BTreeMap<String, SubClaim>,
    /// Server-only metadata (`meta`).
    pub meta: Option<Bytes>,
}

/// Verified claims of a subscription token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeClaims {
    /// User id; must equal the connection's.
    pub user: String,
    /// The channel the token grants.
    pub channel: String,
    /// Client id the token is bound to (empty = any).
    pub client: String,
    /// Expiry of the subscription (unix seconds), `expire_at` winning over `exp`.
    pub expire_at: Option<u64>,
    /// Channel info.
    pub info: Option<Bytes>,
    /// Data for the subscribe result.
    pub data: Option<Bytes>,
    /// Option overrides.
    pub overrides: SubOverride,
}

/// Verifies tokens against the configured keys.
#[derive(Clone)]
pub struct Verifier {
    hmac: Option<DecodingKey>,
    rsa: Option<DecodingKey>,
    ecdsa: Option<DecodingKey>,
    audience: String,
    issuer: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hmac", &self.hmac.is_some())
            .field("rsa", &self.rsa.is_some())
            .field("ecdsa", &self.ecdsa.is_some())
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier; fails (naming the key) when a PEM key does not parse.
    pub fn new(cfg: &TokenConfig) -> Result<Self, String> {
        let hmac = (!cfg.hmac_secret_key.is_empty()).then(|| DecodingKey::from_secret(cfg.hmac_secret_key.as_bytes()));
        let rsa = match cfg.rsa_public_key.as_str() {
            "" => None,
            pem => Some(DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| format!("rsa_public_key: {e}"))?),
        };
        let ecdsa = match cfg.ecdsa_public_key.as_str() {
            "" => None,
            pem => Some(DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| format!("ecdsa_public_key: {e}"))?),
        };
        Ok(Self { hmac, rsa, ecdsa, audience: cfg.audience.clone(), issuer: cfg.issuer.clone() })
    }

    /// Verifies signature, algorithm, `aud` and `iss`; returns the claims and checks `exp` against `now_secs`.
    fn verify(&self, token: &str, now_secs: u64) -> Result<Map<String, Value>, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self.hmac.as_ref(),
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => self.rsa.as_ref(),
            Algorithm::ES256 | Algorithm::ES384 => self.ecdsa.as_ref(),
            other => return Err(TokenError::Invalid(format!("algorithm {other:?} is not accepted"))),
        }
        .ok_or_else(|| TokenError::Invalid(format!("no key configured for {:?}", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if !self.audience.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => *a == self.audience,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&self.audience)),
                _ => false,
            };
            if !ok {
                return Err(TokenError::Invalid("audience mismatch".into()));
            }
        }
        if !self.issuer.is_empty() && claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(TokenError::Invalid("issuer mismatch".into()));
        }
        if let Some(exp) = claims.get("exp") {
            let exp = exp.as_u64().ok_or_else(|| TokenError::Invalid("exp is not a number".into()))?;
            if exp > 0 && exp <= now_secs {
                return Err(TokenError::Expired);
            }
        }
        // A token not valid yet is refused as Centrifugo refuses it: like an expired one
        // (109 at connect and subscribe), so the SDK fetches a fresh token and retries.
        if let Some(nbf) = claims.get("nbf").filter(|v| !v.is_null()) {
            let nbf = nbf.as_u64().ok_or_else(|| TokenError::Invalid("nbf is not a number".into()))?;
            if nbf > now_secs.saturating_add(NBF_LEEWAY_SECS) {
                return Err(TokenError::Expired);
            }
        }
        Ok(claims)
    }

    /// Verifies a connection token.
    pub fn connect(&self, token: &str, now_secs: u64) -> Result<ConnectClaims, TokenError> {
        let claims = self.verify(token, now_secs)?;
        if claims.contains_key("channel") {
            return Err(TokenError::Invalid("a connection token must not carry a channel claim".into()));
        }
        let channels = match claims.get("channels") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|c| c.as_str().map(str::to_owned).ok_or_else(|| invalid("channels")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("channels")),
        };
        let subs = match claims.get("subs") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(ch, opts)| Ok((ch.clone(), sub_claim(opts)?)))
                .collect::<Result<_, TokenError>>()?,
            Some(_) => return Err(invalid("subs")),
        };
        Ok(ConnectClaims {
            user: string_claim(&claims, "sub")?,
            expire_at: expiry(&claims)?,
            info: info_claim(&claims, "info", "b64info")?,
            channels,
            subs,
            meta: claims.get("meta").map(|m| Bytes::from(m.to_string())),
        })
    }

    /// Verifies a subscription token.
    pub fn subscribe(&self, token: &str, now_secs: u64) -> Result<SubscribeClaims, TokenError> {
        let claims = self.verify(token, now_secs)?;
        let channel = string_claim(&claims, "channel")?;
        if channel.is_empty() {
            return Err(invalid("channel"));
        }
        let sub = sub_claim(&Value::Object(claims.clone()))?;
        Ok(SubscribeClaims {
            user: string_claim(&claims, "sub")?,
            channel,
            client: string_claim(&claims, "client")?,
            expire_at: expiry(&claims)?,
            info: sub.info,
            data: sub.data,
            overrides: sub.overrides,
        })
    }
}

fn invalid(claim: &str) -> TokenError {
    TokenError::Invalid(format!("malformed {claim} claim"))
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<String, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(name)),
    }
}

fn expiry(claims: &Map<String, Value>) -> Result<Option<u64>, TokenError> {
    let num = |name| match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| invalid(name)),
    };
    Ok(match num("expire_at")? {
        Some(0) => None,
        Some(at) => Some(at),
        None => num("exp")?.filter(|e| *e > 0),
    })
}

fn info_claim(claims: &Map<String, Value>, json_key: &str, b64_key: &str) -> Result<Option<Bytes>, TokenError> {
    if let Some(v) = claims.get(json_key).filter(|v| !v.is_null()) {
        return Ok(Some(Bytes::from(v.to_string())));
    }
    match claims.get(b64_key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| Some(Bytes::from(b)))
            .map_err(|_| invalid(b64_key)),
        Some(_) => Err(invalid(b64_key)),
    }
}

fn sub_claim(v: &Value) -> Result<SubClaim, TokenError> {
    let Value::Object(map) = v else { return Err(invalid("subs")) };
    let overrides = match map.get("override") {
        None | Some(Value::Null) => SubOverride::default(),
        Some(Value::Object(o)) => {
            let flag = |name: &str| -> Result<Option<bool>, TokenError> {
                match o.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Object(w)) => match w.get("value") {
                        Some(Value::Bool(b)) => Ok(Some(*b)),
                        _ => Err(invalid("override")),
                    },
                    Some(_) => Err(invalid("override")),
                }
            };
            SubOverride {
                presence: flag("presence")?,
                join_leave: flag("join_leave")?,
                force_push_join_leave: flag("force_push_join_leave")?,
                force_recovery: flag("force_recovery")?,
                force_positioning: flag("force_positioning")?,
            }
        }
        Some(_) => return Err(invalid("override")),
    };
    Ok(SubClaim {
        info: info_claim(map, "info", "b64info")?,
        data: info_claim(map, "data", "b64data")?,
        overrides,
    })
}

/// Mints an HS256 connection token (`tidewire token`, tests, benchmarks).
pub fn mint_hs256(secret: &str, claims: &Value) -> Result<String, String> {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn hmac_verifier(secret: &str) -> Verifier {
        Verifier::new(&TokenConfig { hmac_secret_key: secret.into(), ..Default::default() }).expect("verifier")
    }

    fn b64url(s: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn valid_token_yields_claims() {
        let t = mint_hs256(
            "s",
            &json!({"sub":"42","exp":NOW+60,"info":{"name":"ann"},"channels":["news"],
                    "subs":{"chat":{"info":{"r":1},"override":{"presence":{"value":true}}}}}),
        )
        .expect("mint");
        let c = hmac_verifier("s").connect(&t, NOW).expect("valid");
        assert_eq!(c.user, "42");
        assert_eq!(c.expire_at, Some(NOW + 60));
        assert_eq!(c.info.as_deref(), Some(&br#"{"name":"ann"}"#[..]));
        assert_eq!(c.channels, vec!["news"]);
        assert_eq!(c.subs["chat"].overrides.presence, Some(true));
    }

    #[test]
    fn expired_wrong_key_and_forged_tokens() {
        let v = hmac_verifier("s");
        let t = mint_hs256("s", &json!({"sub":"1","exp":NOW-1})).expect("mint");
        assert_eq!(v.connect(&t, NOW), Err(TokenError::Expired));
        let t = mint_hs256("other", &json!({"sub":"1"})).expect("mint");
        assert!(matches!(v.connect(&t, NOW), Err(TokenError::Invalid(_))));
        let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(br#"{"sub":"1"}"#));
        assert!(matches!(v.connect(&none, NOW), Err(TokenError::Invalid(_))));
        assert!(matches!(v.connect("garbage", NOW), Err(TokenError::Invalid(_))));
        // An RS256 header against an HMAC-only verifier: no key for the family.
        let t = mint_hs256("s", &json!({"sub":"1"})).expect("mint");
        let mut parts = t.split('.');
        let (_, claims, sig) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let rs = format!("{}.{claims}.{sig}", b64url(br#"{"alg":"RS256","typ":"JWT"}"#));
        assert!(matches!(v.connect(&rs, NOW), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn nbf_in_the_future_is_refused_like_an_expired_token() {
        let v = hmac_verifier("s");
        let later = mint_hs256("s", &json!({"sub":"1","nbf":NOW+60})).expect("mint");
        assert_eq!(v.connect(&later, NOW), Err(TokenError::Expired));
        let sub = mint_hs256("s", &json!({"sub":"1","channel":"$x","nbf":NOW+60})).expect("mint");
        assert_eq!(v.subscribe(&sub, NOW).map(|_| ()), Err(TokenError::Expired));
        // Within the leeway, at and after nbf: accepted.
        for nbf in [NOW + NBF_LEEWAY_SECS, NOW, NOW - 60] {
            let t = mint_hs256("s", &json!({"sub":"1","nbf":nbf})).expect("mint");
            assert!(v.connect(&t, NOW).is_ok(), "nbf {nbf} at {NOW}");
        }
        assert_eq!(v.connect(&later, NOW + 60).map(|c| c.user), Ok("1".into()), "valid once nbf comes");
        let bad = mint_hs256("s", &json!({"sub":"1","nbf":"soon"})).expect("mint");
        assert!(matches!(v.connect(&bad, NOW), Err(TokenError::Invalid(_))));
        let huge = mint_hs256("s", &json!({"sub":"1","nbf":u64::MAX})).expect("mint");
        assert_eq!(v.connect(&huge, NOW), Err(TokenError::Expired));
        assert!(v.connect(&huge, u64::MAX - 1).is_ok(), "the leeway saturates near 2^64 instead of wrapping");
    }

    #[test]
    fn expire_at_overrides_exp_and_zero_never_expires() {
        let v = hmac_verifier("s");
        let t = mint_hs256("s", &json!({"sub":"1","exp":NOW+10,"expire_at":0})).expect("mint");
        assert_eq!(v.connect(&t, NOW).expect("ok").expire_at, None);
        let t = mint_hs256("s", &json!({"sub":"1","exp":NOW+10,"expire_at":NOW+99})).expect("mint");
        assert_eq!(v.connect(&t, NOW).expect("ok").expire_at, Some(NOW + 99));
    }

    #[test]
    fn audience_and_issuer_are_checked_when_set() {
        let v = Verifier::new(&TokenConfig {
            hmac_secret_key: "s".into(),
            audience: "app".into(),
            issuer: "me".into(),
            ..Default::default()
        })
        .expect("verifier");
        let good = mint_hs256("s", &json!({"sub":"1","aud":["x","app"],"iss":"me"})).expect("mint");
        assert!(v.connect(&good, NOW).is_ok());
        let bad = mint_hs256("s", &json!({"sub":"1","aud":"x","iss":"me"})).expect("mint");
        assert!(v.connect(&bad, NOW).is_err());
    }

    #[test]
    fn connection_token_with_channel_claim_is_rejected() {
        let t = mint_hs256("s", &json!({"sub":"1","channel":"x"})).expect("mint");
        assert!(matches!(hmac_verifier("s").connect(&t, NOW), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn subscription_token_requires_channel() {
        let v = hmac_verifier("s");
        let t = mint_hs256("s", &json!({"sub":"1","channel":"$x","client":"c1","info":{"a":1}})).expect("mint");
        let c = v.subscribe(&t, NOW).expect("ok");
        assert_eq!((c.channel.as_str(), c.client.as_str()), ("$x", "c1"));
        let t = mint_hs256("s", &json!({"sub":"1"})).expect("mint");
        assert!(v.subscribe(&t, NOW).is_err());
    }
}
