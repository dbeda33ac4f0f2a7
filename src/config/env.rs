//! Environment overrides: `TIDEWIRE_<PATH>`, and Centrifugo v6's `CENTRIFUGO_<PATH>`.
//!
//! Tidewire's keys are Centrifugo v6's names, so Centrifugo's variables name the same keys:
//! the official SDKs' test setups (docker-compose `environment:` blocks, CI `-e` flags)
//! configure Tidewire as they configure Centrifugo. Both prefixes take the dotted path in
//! upper case with `_` for `.`; `TIDEWIRE_*` wins when both are set. As in Centrifugo:
//! empty values count as unset, lists are space-separated, `CHANNEL_NAMESPACES` takes a
//! JSON array or space-separated namespace names, and `CHANNEL_NAMESPACES_<NAME>_<OPTION>`
//! sets one option of one namespace. A `CENTRIFUGO_*` or `TIDEWIRE_*` variable that names
//! no key is returned so that the start-up warning names it (Centrifugo warns about its
//! own too): a misspelt `TIDEWIRE_HTTP_SERVER_PROT` would otherwise change nothing
//! silently. `TIDEWIRE_LOG` (the log filter, read by the logger) is not a key and is not
//! reported.

use std::collections::HashSet;

use serde_json::Value;

use super::{ChannelOptions, Config, ConfigError, ENV_PREFIX};

/// Centrifugo's environment prefix.
pub const CENTRIFUGO_ENV_PREFIX: &str = "CENTRIFUGO_";

/// Variables with the Tidewire prefix that are read elsewhere, not config keys.
const NOT_KEYS: &[&str] = &["TIDEWIRE_LOG"];

/// Applies the variables to `value`; returns the `CENTRIFUGO_*` and `TIDEWIRE_*` names
/// that match no key.
pub(super) fn apply(value: &mut Value, env: impl IntoIterator<Item = (String, String)>) -> Result<Vec<String>, ConfigError> {
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, v)| (k.starts_with(ENV_PREFIX) || k.starts_with(CENTRIFUGO_ENV_PREFIX)) && !v.is_empty())
        .collect();
    let lookup = |suffix: &str| {
        [ENV_PREFIX, CENTRIFUGO_ENV_PREFIX].iter().find_map(|prefix| {
            let name = format!("{prefix}{suffix}");
            env.iter().find(|(k, _)| *k == name).map(|(k, v)| (k.clone(), v.clone()))
        })
    };
    let mut known: HashSet<String> = HashSet::new();

    let defaults = serde_json::to_value(Config::default()).map_err(|e| ConfigError::invalid("", e.to_string()))?;
    let mut leaves = Vec::new();
    collect_leaves(&defaults, &mut Vec::new(), &mut leaves);
    for (path, default) in leaves {
        let suffix = path.join("_").to_uppercase();
        known.insert(suffix.clone());
        let Some((name, raw)) = lookup(&suffix) else { continue };
        let parsed = if path == ["channel", "namespaces"] && !raw.trim_start().starts_with('[') {
            namespaces_by_name(value, &raw)
        } else {
            parse(&name, &raw, &default, path.last().is_some_and(|p| p == "namespaces"))?
        };
        set_path(value, &path, parsed);
    }

    // One option of one namespace: CHANNEL_NAMESPACES_<NAME>_<OPTION>.
    let option_defaults =
        serde_json::to_value(ChannelOptions::default()).map_err(|e| ConfigError::invalid("", e.to_string()))?;
    let mut options = Vec::new();
    collect_leaves(&option_defaults, &mut Vec::new(), &mut options);
    if let Some(Value::Array(namespaces)) = value.pointer_mut("/channel/namespaces") {
        for ns in namespaces.iter_mut() {
            let Some(name) = ns.get("name").and_then(Value::as_str) else { continue };
            let ns_suffix = format!("CHANNEL_NAMESPACES_{}", name.to_uppercase().replace('-', "_"));
            for (path, default) in &options {
                let suffix = format!("{ns_suffix}_{}", path.join("_").to_uppercase());
                known.insert(suffix.clone());
                let Some((var, raw)) = lookup(&suffix) else { continue };
                let parsed = parse(&var, &raw, default, false)?;
                set_path(ns, path, parsed);
            }
        }
    }

    let mut unknown: Vec<String> = env
        .iter()
        .filter(|(k, _)| !NOT_KEYS.contains(&k.as_str()))
        .filter_map(|(k, _)| {
            let suffix = k.strip_prefix(CENTRIFUGO_ENV_PREFIX).or_else(|| k.strip_prefix(ENV_PREFIX))?;
            (!known.contains(suffix)).then(|| k.clone())
        })
        .collect();
    unknown.sort();
    Ok(unknown)
}

/// `CHANNEL_NAMESPACES="a b"`: namespaces by name, keeping the options of those the file
/// already defines.
fn namespaces_by_name(value: &Value, raw: &str) -> Value {
    let existing = value.pointer("/channel/namespaces").and_then(Value::as_array).cloned().unwrap_or_default();
    Value::Array(
        raw.split_whitespace()
            .map(|name| {
                existing
                    .iter()
                    .find(|ns| ns.get("name").and_then(Value::as_str) == Some(name))
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({ "name": name }))
            })
            .collect(),
    )
}

/// A variable's value, as the type of the key's default.
fn parse(name: &str, raw: &str, default: &Value, json_array: bool) -> Result<Value, ConfigError> {
    Ok(match default {
        Value::Bool(_) => match raw {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(ConfigError::invalid(name, "must be true or false")),
        },
        Value::Number(_) => Value::Number(
            raw.parse::<u64>().map_err(|_| ConfigError::invalid(name, "must be a non-negative integer"))?.into(),
        ),
        Value::Array(_) if json_array || raw.trim_start().starts_with('[') => {
            serde_json::from_str(raw).map_err(|e| ConfigError::invalid(name, format!("must be a JSON array: {e}")))?
        }
        Value::Array(_) => Value::Array(raw.split_whitespace().map(|s| Value::String(s.into())).collect()),
        _ => Value::String(raw.to_string()),
    })
}

fn collect_leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                path.push(k.clone());
                collect_leaves(child, path, out);
                path.pop();
            }
        }
        Value::Null => out.push((path.clone(), Value::String(String::new()))),
        other => out.push((path.clone(), other.clone())),
    }
}

fn set_path(root: &mut Value, path: &[String], leaf: Value) {
    let mut cur = root;
    for key in &path[..path.len() - 1] {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let Value::Object(map) = cur else { return };
        cur = map.entry(key.clone()).or_insert_with(|| Value::Object(Default::default()));
    }
    if let (Value::Object(map), Some(last)) = (cur, path.last()) {
        map.insert(last.clone(), leaf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: Value, env: &[(&str, &str)]) -> super::super::Loaded {
        Config::from_value(file, env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string()))).expect("loads")
    }

    #[test]
    fn centrifugo_variables_set_the_same_keys_and_tidewire_ones_win() {
        let loaded = load(
            serde_json::json!({}),
            &[
                ("CENTRIFUGO_CLIENT_INSECURE", "true"),
                ("CENTRIFUGO_HTTP_API_KEY", "from-centrifugo"),
                ("TIDEWIRE_HTTP_API_KEY", "from-tidewire"),
                ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_HISTORY_TTL", "300s"),
                ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_HISTORY_SIZE", "100"),
                ("CENTRIFUGO_LOG_LEVEL", ""),
            ],
        );
        let c = &loaded.config;
        assert!(c.client.insecure);
        assert_eq!(c.http_api.key, "from-tidewire");
        assert_eq!(c.channel.without_namespace.history_size, 100);
        assert_eq!(c.log.level, "info", "an empty value is unset");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    }

    #[test]
    fn namespaces_by_name_and_per_namespace_options() {
        let loaded = load(
            serde_json::json!({"channel": {"namespaces": [{"name": "example", "presence": true}]}}),
            &[
                ("CENTRIFUGO_CHANNEL_NAMESPACES", "smallhistory example"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES_SMALLHISTORY_HISTORY_SIZE", "2"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES_SMALLHISTORY_HISTORY_TTL", "300s"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES_EXAMPLE_JOIN_LEAVE", "true"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES_EXAMPLE_DELTA_PUBLISH", "true"),
                ("CENTRIFUGO_CLIENT_CONCURRENCY", "8"),
            ],
        );
        let ns = &loaded.config.channel.namespaces;
        assert_eq!(ns.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["smallhistory", "example"]);
        assert_eq!(ns[0].options.history_size, 2);
        assert!(ns[1].options.presence, "the file's options of a listed namespace stay");
        assert!(ns[1].options.join_leave);
        assert!(ns[1].options.delta_publish, "a per-namespace option of the variable form");
        assert_eq!(loaded.unknown_keys, ["CENTRIFUGO_CLIENT_CONCURRENCY"]);
    }

    #[test]
    fn a_tidewire_variable_that_names_no_key_is_reported() {
        let loaded = load(
            serde_json::json!({}),
            &[
                ("TIDEWIRE_HTTP_SERVER_PROT", "9000"),
                ("TIDEWIRE_HTTP_SERVER_PORT", "9001"),
                ("TIDEWIRE_LOG", "debug"),
                ("TIDEWIRE_CHANNEL_WITHOUT_NAMESPACE_PRESENCE", "true"),
            ],
        );
        assert_eq!(loaded.config.http_server.port, 9001);
        assert!(loaded.config.channel.without_namespace.presence);
        assert_eq!(loaded.unknown_keys, ["TIDEWIRE_HTTP_SERVER_PROT"], "TIDEWIRE_LOG is the logger's, not a key");
        assert_eq!(loaded.warnings(), ["TIDEWIRE_HTTP_SERVER_PROT"]);
    }

    #[test]
    fn namespaces_as_json_still_work() {
        let loaded = load(
            serde_json::json!({}),
            &[("CENTRIFUGO_CHANNEL_NAMESPACES", r#"[{"name":"chat","presence":true}]"#)],
        );
        assert!(loaded.config.channel.namespaces[0].options.presence);
    }
}
