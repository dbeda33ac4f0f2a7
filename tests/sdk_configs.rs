//! The Centrifugo configs the official SDKs' own test setups use (tests/fixtures/sdk-configs/,
//! each naming its repository and path): every key either takes effect or is named, with a
//! reason, in the start-up warning. None may be silently ignored (issue 12 item 10).
//!
//! "Takes effect" is checked on the typed config the server runs from: the value the file
//! or variable gives is the value at that key after loading.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tidewire::config::{Config, Dur, Loaded};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdk-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

/// The fixture without its header lines (`//` or `#`), which name where it came from.
fn body(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.starts_with("// Source: ") || text.starts_with("# Source: "), "{}: no source header", path.display());
    text.lines().filter(|l| !l.starts_with("//") && !l.starts_with('#')).collect::<Vec<_>>().join("\n")
}

/// Equal as config values: durations compare by length (`"300s"` is `"5m"`).
fn same(given: &Value, loaded: &Value) -> bool {
    match (given, loaded) {
        (Value::String(a), Value::String(b)) => match (Dur::parse(a), Dur::parse(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        },
        (Value::Number(a), Value::String(b)) => Dur::parse(b).is_ok_and(|d| Some(d.0.as_secs()) == a.as_u64()),
        _ => given == loaded,
    }
}

/// The warning line of `key` if it is named (itself, or an enclosing key), with its reason.
fn warned(loaded: &Loaded, key: &str) -> Option<String> {
    let lines = loaded.warnings();
    loaded.unknown_keys.iter().zip(lines).find_map(|(u, line)| {
        (key == u || key.starts_with(&format!("{u}.")) || key.starts_with(&format!("{u}["))).then_some(line)
    })
}

fn leaves(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                leaves(child, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for (i, child) in items.iter().enumerate() {
                leaves(child, format!("{path}[{i}]"), out);
            }
        }
        other => out.push((path, other.clone())),
    }
}

/// The loaded config's leaves by environment name: `CHANNEL_NAMESPACES_<NAME>_<OPTION>`
/// for namespace options, as Centrifugo names them.
fn env_leaves(config: &Config) -> Vec<(String, Value)> {
    let value = serde_json::to_value(config).expect("serialize");
    let mut all = Vec::new();
    leaves(&value, String::new(), &mut all);
    let names: Vec<String> = config.channel.namespaces.iter().map(|n| n.name.to_uppercase()).collect();
    let mut out: Vec<(String, Value)> = all
        .into_iter()
        .map(|(path, v)| {
            let mut name = path.to_uppercase().replace('.', "_");
            for (i, ns) in names.iter().enumerate() {
                name = name.replace(&format!("CHANNEL_NAMESPACES[{i}]"), &format!("CHANNEL_NAMESPACES_{ns}"));
            }
            (name, v)
        })
        .collect();
    out.push(("CHANNEL_NAMESPACES".into(), Value::String(names.join(" ").to_lowercase())));
    out
}

fn env_value_matches(raw: &str, loaded: &Value) -> bool {
    match loaded {
        Value::Bool(b) => raw == b.to_string(),
        Value::Number(n) => raw.parse::<u64>().ok() == n.as_u64(),
        Value::Array(items) => {
            items.iter().map(|i| i.as_str().unwrap_or_default()).collect::<Vec<_>>() == raw.split_whitespace().collect::<Vec<_>>()
        }
        other => same(&Value::String(raw.into()), other),
    }
}

#[test]
fn every_key_of_the_sdk_test_configs_takes_effect_or_is_named_with_a_reason() {
    let mut checked = 0;
    let mut report = Vec::new();
    for path in fixtures() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = body(&path);
        let mut silent = Vec::new();
        if name.ends_with(".json") {
            let loaded = Config::from_text(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let given: Value = serde_json::from_str(&text).expect("json");
            let value = serde_json::to_value(&loaded.config).expect("serialize");
            let mut keys = Vec::new();
            leaves(&given, String::new(), &mut keys);
            for (key, v) in keys {
                checked += 1;
                if let Some(line) = warned(&loaded, &key) {
                    assert!(line.contains('('), "{name}: {key} is named without a reason: {line}");
                    report.push(format!("{name}: {line}"));
                    continue;
                }
                let pointer = format!("/{}", key.replace(['.', '['], "/").replace(']', ""));
                if !value.pointer(&pointer).is_some_and(|l| same(&v, l)) {
                    silent.push(key);
                }
            }
        } else {
            let env: Vec<(String, String)> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{name}: {l}"));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let loaded = Config::load(None, env.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let by_env = env_leaves(&loaded.config);
            for (var, raw) in env {
                checked += 1;
                if let Some(line) = warned(&loaded, &var) {
                    assert!(line.contains('('), "{name}: {var} is named without a reason: {line}");
                    report.push(format!("{name}: {line}"));
                    continue;
                }
                let key = var.strip_prefix("CENTRIFUGO_").expect("Centrifugo variable");
                if !by_env.iter().any(|(k, v)| k == key && env_value_matches(&raw, v)) {
                    silent.push(var);
                }
            }
        }
        assert!(silent.is_empty(), "{name}: silently ignored: {silent:?}");
    }
    assert!(checked > 150, "only {checked} keys checked");
    eprintln!("{}", report.join("\n"));
}

#[test]
fn the_warning_names_what_the_sdk_setups_rely_on() {
    let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect::<Vec<_>>();
    let loaded = Config::load(
        None,
        env(&[
            ("CENTRIFUGO_CLIENT_CONCURRENCY", "8"),
            ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_TAGS_FILTER", "true"),
            ("CENTRIFUGO_GRPC_API_ENABLED", "true"),
            ("CENTRIFUGO_API_KEY", "v5"),
            ("CENTRIFUGO_SOMETHING_NEW", "1"),
        ]),
    )
    .expect("loads");
    let w = loaded.warnings();
    assert!(w.iter().any(|l| l.starts_with("CENTRIFUGO_CLIENT_CONCURRENCY (")), "{w:?}");
    assert!(w.iter().any(|l| l.starts_with("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_TAGS_FILTER (publication tags")), "{w:?}");
    assert!(w.iter().any(|l| l.starts_with("CENTRIFUGO_GRPC_API_ENABLED (there is no gRPC")), "{w:?}");
    assert!(w.iter().any(|l| l.contains("CENTRIFUGO_API_KEY (a Centrifugo v5 name; v6 and Tidewire read http_api.key")), "{w:?}");
    assert!(w.contains(&"CENTRIFUGO_SOMETHING_NEW".to_string()), "unknown variables are named too: {w:?}");
}
