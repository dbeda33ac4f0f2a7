//! Why a key Tidewire does not read is ignored, for the start-up warning.
//!
//! Every unknown key is named at start; the Centrifugo keys the official SDKs' own test
//! setups use (tests/fixtures/sdk-configs/) also get a reason here, so that whoever runs
//! those setups against Tidewire learns what behaves differently, not only that a key was
//! ignored. Keys are matched in their environment form (`CHANNEL_NAMESPACES_3_DELTA_PUBLISH`
//! for `channel.namespaces[3].allow_tags_filter`), so one entry covers the file and both
//! variable forms.

use super::env::CENTRIFUGO_ENV_PREFIX;
use super::ENV_PREFIX;

/// The key's environment form starts with the first text and ends with the second.
const REASONS: &[(&str, &str, &str)] = &[
    ("CLIENT_CONCURRENCY", "", "Tidewire has no setting for processing one connection's commands in parallel"),
    ("CHANNEL_", "_SUBSCRIPTION_TYPE", "map and shared-poll subscriptions are not implemented: subscribes of those types are refused with error 108"),
    ("CHANNEL_", "_MAP", "map subscriptions are not implemented (subscribes of that type are refused with error 108)"),
    ("CHANNEL_", "_MAP_CLIENTS_PRESENCE_CHANNEL_PREFIX", "map subscriptions are not implemented"),
    ("CHANNEL_", "_SHARED_POLL", "shared-poll subscriptions are not implemented (subscribes of that type are refused with error 108)"),
    ("CHANNEL_", "_CLIENT_PUBLISH_DEBOUNCE_INTERVAL", "publish debouncing (of map subscriptions) is not implemented"),
    ("CHANNEL_", "_ALLOW_TAGS_FILTER", "publication tags filters are not implemented: a subscriber gets every publication"),
    ("MAP_BROKER", "", "map subscriptions (Centrifugo v6.8, experimental) are not implemented"),
    ("SHARED_POLL", "", "shared-poll subscriptions (Centrifugo v6.8, experimental) are not implemented"),
    ("GRPC_API", "", "there is no gRPC server API; use the HTTP API (http_api)"),
];

/// The key in environment form, without a prefix: `channel.namespaces[3].map` → `CHANNEL_NAMESPACES_3_MAP`.
fn env_form(key: &str) -> String {
    if let Some(rest) = key.strip_prefix(CENTRIFUGO_ENV_PREFIX).or_else(|| key.strip_prefix(ENV_PREFIX)) {
        return rest.to_string();
    }
    key.replace("].", "_").replace(['.', '['], "_").replace(']', "").to_uppercase()
}

/// Why `key` (a dotted path or a `CENTRIFUGO_*` variable) is ignored, when known.
pub(super) fn reason(key: &str) -> Option<String> {
    let form = env_form(key);
    let matched = REASONS.iter().find(|(prefix, suffix, _)| {
        form.starts_with(prefix)
            && form.ends_with(suffix)
            && (!suffix.is_empty() || form.len() == prefix.len() || form[prefix.len()..].starts_with('_'))
    });
    if let Some((_, _, why)) = matched {
        return Some((*why).to_string());
    }
    // Centrifugo v5's flat variables (CENTRIFUGO_API_KEY): v6, and Tidewire, renamed them.
    let v5 = key.strip_prefix(CENTRIFUGO_ENV_PREFIX)?.to_lowercase();
    super::v5::v6_name(&v5).map(|v6| format!("a Centrifugo v5 name; v6 and Tidewire read {v6}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_and_variables_match_the_same_entry() {
        for key in [
            "channel.namespaces[3].allow_tags_filter",
            "channel.without_namespace.allow_tags_filter",
            "CENTRIFUGO_CHANNEL_NAMESPACES_TAGS_ALLOW_TAGS_FILTER",
            "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_TAGS_FILTER",
        ] {
            assert!(reason(key).is_some_and(|r| r.contains("tags")), "{key}");
        }
        assert!(reason("map_broker").is_some());
        assert!(reason("map_brokerx").is_none());
        assert!(reason("CENTRIFUGO_API_KEY").is_some_and(|r| r.contains("http_api.key")));
        assert!(reason("client.something_else").is_none());
    }
}
