//! Centrifugo v5 configs: recognised, never silently ignored.
//!
//! Centrifugo v5 kept almost every option flat at the top level (`token_hmac_secret_key`,
//! `api_key`, `allowed_origins`, channel options beside them); v6 nested and renamed them,
//! and Tidewire reads the v6 names. A v5 file would otherwise load as "every key unknown":
//! no secret, no API key, so `serve` would generate random ones and nothing the user
//! configured would hold. Loading such a file is an error that names each v5 key with its
//! v6 equivalent.

use serde_json::Value;

/// What a v5 top-level key looks like, when its name alone is not enough: a few v5 names
/// (`sse`, `health`, `engine`, …) are v6 section names too, told apart by their value.
#[derive(Clone, Copy)]
enum Shape {
    /// Any value: the name does not exist at the top level in v6.
    Any,
    /// Only a boolean (v5 `sse = true`; v6 `[sse] enabled = true`).
    Bool,
    /// Only a string (v5 `engine = "redis"`; v6 `[engine] type = "redis"`).
    Str,
}

/// v5 top-level key, the value shape that marks it as v5, and its v6 equivalent.
const V5_KEYS: &[(&str, Shape, &str)] = &[
    // Tokens.
    ("token_hmac_secret_key", Shape::Any, "client.token.hmac_secret_key"),
    ("token_rsa_public_key", Shape::Any, "client.token.rsa_public_key"),
    ("token_ecdsa_public_key", Shape::Any, "client.token.ecdsa_public_key"),
    ("token_jwks_public_endpoint", Shape::Any, "client.token.jwks_public_endpoint"),
    ("token_audience", Shape::Any, "client.token.audience"),
    ("token_issuer", Shape::Any, "client.token.issuer"),
    ("token_user_id_claim", Shape::Any, "client.token.user_id_claim"),
    ("separate_subscription_token_config", Shape::Any, "client.subscription_token.enabled"),
    ("subscription_token_hmac_secret_key", Shape::Any, "client.subscription_token.hmac_secret_key"),
    ("subscription_token_rsa_public_key", Shape::Any, "client.subscription_token.rsa_public_key"),
    ("subscription_token_ecdsa_public_key", Shape::Any, "client.subscription_token.ecdsa_public_key"),
    // Server API.
    ("api_key", Shape::Any, "http_api.key"),
    ("api_insecure", Shape::Any, "http_api.insecure"),
    ("api_handler_prefix", Shape::Any, "http_api.handler_prefix"),
    // Client.
    ("allowed_origins", Shape::Any, "client.allowed_origins"),
    ("client_insecure", Shape::Any, "client.insecure"),
    ("client_anonymous", Shape::Any, "client.allow_anonymous_connect_without_token"),
    ("client_channel_limit", Shape::Any, "client.channel_limit"),
    ("client_queue_max_size", Shape::Any, "client.queue_max_size"),
    ("client_user_connection_limit", Shape::Any, "client.user_connection_limit"),
    ("client_connection_limit", Shape::Any, "client.connection_limit"),
    ("client_presence_update_interval", Shape::Any, "client.presence_update_interval"),
    ("client_stale_close_delay", Shape::Any, "client.stale_close_delay"),
    ("client_expired_close_delay", Shape::Any, "client.expired_close_delay"),
    ("client_expired_sub_close_delay", Shape::Any, "client.expired_sub_close_delay"),
    ("client_history_max_publication_limit", Shape::Any, "client.history_max_publication_limit"),
    ("client_recovery_max_publication_limit", Shape::Any, "client.recovery_max_publication_limit"),
    ("ping_interval", Shape::Any, "client.ping_interval"),
    ("pong_timeout", Shape::Any, "client.pong_timeout"),
    // Channels: v5 kept the options of namespace-less channels at the top level.
    ("namespaces", Shape::Any, "channel.namespaces"),
    ("channel_max_length", Shape::Any, "channel.max_length"),
    ("channel_private_prefix", Shape::Any, "channel.private_prefix"),
    ("channel_namespace_boundary", Shape::Any, "channel.namespace_boundary"),
    ("channel_user_boundary", Shape::Any, "channel.user_boundary"),
    ("channel_user_separator", Shape::Any, "channel.user_separator"),
    ("history_meta_ttl", Shape::Any, "channel.history_meta_ttl"),
    ("presence", Shape::Any, "channel.without_namespace.presence"),
    ("join_leave", Shape::Any, "channel.without_namespace.join_leave"),
    ("force_push_join_leave", Shape::Any, "channel.without_namespace.force_push_join_leave"),
    ("history_size", Shape::Any, "channel.without_namespace.history_size"),
    ("history_ttl", Shape::Any, "channel.without_namespace.history_ttl"),
    ("force_positioning", Shape::Any, "channel.without_namespace.force_positioning"),
    ("allow_positioning", Shape::Any, "channel.without_namespace.allow_positioning"),
    ("force_recovery", Shape::Any, "channel.without_namespace.force_recovery"),
    ("allow_recovery", Shape::Any, "channel.without_namespace.allow_recovery"),
    ("allow_subscribe_for_client", Shape::Any, "channel.without_namespace.allow_subscribe_for_client"),
    ("allow_subscribe_for_anonymous", Shape::Any, "channel.without_namespace.allow_subscribe_for_anonymous"),
    ("allow_publish_for_subscriber", Shape::Any, "channel.without_namespace.allow_publish_for_subscriber"),
    ("allow_publish_for_client", Shape::Any, "channel.without_namespace.allow_publish_for_client"),
    ("allow_publish_for_anonymous", Shape::Any, "channel.without_namespace.allow_publish_for_anonymous"),
    ("allow_history_for_subscriber", Shape::Any, "channel.without_namespace.allow_history_for_subscriber"),
    ("allow_history_for_client", Shape::Any, "channel.without_namespace.allow_history_for_client"),
    ("allow_history_for_anonymous", Shape::Any, "channel.without_namespace.allow_history_for_anonymous"),
    ("allow_presence_for_subscriber", Shape::Any, "channel.without_namespace.allow_presence_for_subscriber"),
    ("allow_presence_for_client", Shape::Any, "channel.without_namespace.allow_presence_for_client"),
    ("allow_presence_for_anonymous", Shape::Any, "channel.without_namespace.allow_presence_for_anonymous"),
    ("allow_user_limited_channels", Shape::Any, "channel.without_namespace.allow_user_limited_channels"),
    ("channel_regex", Shape::Any, "channel.without_namespace.channel_regex"),
    // Server, transports, engine.
    ("address", Shape::Any, "http_server.address"),
    ("port", Shape::Any, "http_server.port"),
    ("tls", Shape::Bool, "http_server.tls.enabled"),
    ("tls_cert", Shape::Any, "http_server.tls.cert_pem"),
    ("tls_key", Shape::Any, "http_server.tls.key_pem"),
    ("log_level", Shape::Any, "log.level"),
    ("shutdown_timeout", Shape::Any, "shutdown.timeout"),
    ("websocket_message_size_limit", Shape::Any, "websocket.message_size_limit"),
    ("websocket_write_timeout", Shape::Any, "websocket.write_timeout"),
    ("websocket_compression", Shape::Any, "websocket.compression"),
    ("sse", Shape::Bool, "sse.enabled"),
    ("http_stream", Shape::Bool, "http_stream.enabled"),
    ("uni_websocket", Shape::Bool, "uni_websocket.enabled"),
    ("uni_sse", Shape::Bool, "uni_sse.enabled"),
    ("uni_http_stream", Shape::Bool, "uni_http_stream.enabled"),
    ("health", Shape::Bool, "health.enabled"),
    ("prometheus", Shape::Bool, "prometheus.enabled"),
    ("admin", Shape::Bool, "admin.enabled"),
    ("admin_password", Shape::Any, "admin.password"),
    ("admin_secret", Shape::Any, "admin.secret"),
    ("engine", Shape::Str, "engine.type"),
    ("redis_address", Shape::Any, "engine.redis.address"),
    ("redis_prefix", Shape::Any, "engine.redis.prefix"),
    // Proxies: v5 had one flat set of proxy_* keys (and a "granular proxy mode"); v6 has
    // per-event proxy objects and named `proxies[]`.
    ("proxy_connect_endpoint", Shape::Any, "client.proxy.connect.endpoint (+ client.proxy.connect.enabled)"),
    ("proxy_connect_timeout", Shape::Any, "client.proxy.connect.timeout"),
    ("proxy_refresh_endpoint", Shape::Any, "client.proxy.refresh.endpoint (+ client.proxy.refresh.enabled)"),
    ("proxy_refresh_timeout", Shape::Any, "client.proxy.refresh.timeout"),
    ("proxy_subscribe_endpoint", Shape::Any, "channel.proxy.subscribe.endpoint"),
    ("proxy_subscribe_timeout", Shape::Any, "channel.proxy.subscribe.timeout"),
    ("proxy_subscribe", Shape::Any, "channel.*.subscribe_proxy_enabled"),
    ("proxy_publish_endpoint", Shape::Any, "channel.proxy.publish.endpoint"),
    ("proxy_publish_timeout", Shape::Any, "channel.proxy.publish.timeout"),
    ("proxy_publish", Shape::Any, "channel.*.publish_proxy_enabled"),
    ("proxy_sub_refresh_endpoint", Shape::Any, "channel.proxy.sub_refresh.endpoint"),
    ("proxy_sub_refresh_timeout", Shape::Any, "channel.proxy.sub_refresh.timeout"),
    ("proxy_sub_refresh", Shape::Any, "channel.*.sub_refresh_proxy_enabled"),
    ("proxy_rpc_endpoint", Shape::Any, "rpc.proxy.endpoint (+ rpc.without_namespace.proxy_enabled)"),
    ("proxy_rpc_timeout", Shape::Any, "rpc.proxy.timeout"),
    ("proxy_http_headers", Shape::Any, "<proxy>.http_headers"),
    ("proxy_static_http_headers", Shape::Any, "<proxy>.http.static_headers"),
    ("proxy_binary_encoding", Shape::Any, "<proxy>.binary_encoding"),
    ("proxy_include_connection_meta", Shape::Any, "<proxy>.include_connection_meta"),
    ("granular_proxy_mode", Shape::Any, "proxies[] (named proxies; v6 has no granular mode switch)"),
];

/// The v6 name of a v5 top-level key, if it is one.
pub(super) fn v6_name(v5: &str) -> Option<&'static str> {
    V5_KEYS.iter().find(|(name, _, _)| *name == v5).map(|(_, _, v6)| *v6)
}

/// The v5-style keys at the top level of `file`, each with its v6 name, in table order.
pub(super) fn keys(file: &Value) -> Vec<(String, &'static str)> {
    let Value::Object(top) = file else { return Vec::new() };
    V5_KEYS
        .iter()
        .filter(|(name, shape, _)| {
            top.get(*name).is_some_and(|v| match shape {
                Shape::Any => true,
                Shape::Bool => v.is_boolean(),
                Shape::Str => v.is_string(),
            })
        })
        .map(|(name, _, v6)| ((*name).to_string(), *v6))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_v5_keys_are_named_with_their_v6_equivalent() {
        let file = serde_json::json!({
            "token_hmac_secret_key": "s", "api_key": "k", "allowed_origins": ["*"],
            "engine": "redis", "sse": true, "presence": true,
        });
        let found = keys(&file);
        assert_eq!(
            found,
            vec![
                ("token_hmac_secret_key".to_string(), "client.token.hmac_secret_key"),
                ("api_key".to_string(), "http_api.key"),
                ("allowed_origins".to_string(), "client.allowed_origins"),
                ("presence".to_string(), "channel.without_namespace.presence"),
                ("sse".to_string(), "sse.enabled"),
                ("engine".to_string(), "engine.type"),
            ]
        );
    }

    #[test]
    fn v6_sections_with_the_same_names_are_not_v5() {
        let file = serde_json::json!({
            "engine": {"type": "memory"}, "sse": {"enabled": true}, "health": {"enabled": true},
            "client": {"token": {"hmac_secret_key": "s"}},
        });
        assert!(keys(&file).is_empty());
    }
}
