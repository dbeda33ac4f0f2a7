//! DESIGN.md's dependency rules, checked by scanning every `crate::…` path in each room.

use std::collections::BTreeSet;
use std::path::Path;

/// Rooms whose imports are restricted, and what they may name.
const RULES: &[(&str, &[&str])] = &[
    ("protocol", &["protocol"]),
    ("hub", &["hub", "config", "metrics", "protocol"]),
    ("session", &["session", "hub", "protocol", "auth", "proxy", "config", "metrics", "log"]),
    ("proxy", &["proxy", "config", "protocol", "auth", "metrics", "log"]),
    ("auth", &["auth", "config"]),
    ("transport", &["transport", "session", "hub", "protocol", "config", "metrics", "log"]),
    ("api", &["api", "session", "hub", "protocol", "config", "metrics", "log"]),
    ("log", &["log"]),
    ("fd_limit", &[]),
    ("broker", &["broker", "hub", "protocol", "config", "metrics"]),
    ("tls", &["tls", "config"]),
    ("client", &["client", "protocol"]),
    ("web", &["web", "hub", "config", "auth", "metrics", "protocol"]),
];

/// The room's production sources. Unit-test files (`tests.rs`) are left out: they may
/// assemble a real hub on the memory broker, which the room itself must not name.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

/// Every room named after `crate::` in the file (in `use` lines and inline paths).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut rooms = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let room: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !room.is_empty() {
                rooms.insert(room);
            }
            // `use crate::{a, b}` names several rooms at once.
            if let Some(grouped) = rest.strip_prefix('{') {
                let group = grouped.split('}').next().unwrap_or("");
                for item in group.split(',') {
                    let room: String =
                        item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if !room.is_empty() {
                        rooms.insert(room);
                    }
                }
            }
        }
    }
    rooms
}

#[test]
fn rooms_import_only_what_design_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (room, allowed) in RULES {
        let mut files = Vec::new();
        let dir = src.join(room);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let single = src.join(format!("{room}.rs"));
        if single.is_file() {
            files.push(single);
        }
        assert!(!files.is_empty(), "room {room} has no files");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            for used in crate_refs(&text) {
                if !allowed.contains(&used.as_str()) {
                    violations.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "dependency rule violations:\n{}", violations.join("\n"));
}

/// The `protocol` modules `text` names: `crate::protocol::json::…`, `protocol::{json, …}`,
/// `super::json` inside protocol's own files does not count (hub files only use this).
fn protocol_modules(text: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("protocol::") {
            rest = &rest[i + "protocol::".len()..];
            let items: Vec<&str> = match rest.strip_prefix('{') {
                Some(grouped) => grouped.split('}').next().unwrap_or("").split(',').collect(),
                None => vec![rest],
            };
            for item in items {
                let name: String = item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    modules.insert(name);
                }
            }
        }
    }
    modules
}

#[test]
fn the_hub_names_no_codec() {
    // The hub reaches wire formats only through the codec seam (protocol::codec): it may
    // use the model and `codec`, never a format's module or serializer.
    let formats = ["json", "native", "protobuf"];
    let libraries = ["serde_json", "postcard", "prost"];
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/hub"), &mut files);
    assert!(!files.is_empty());
    let mut violations = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for m in protocol_modules(&text) {
            if formats.contains(&m.as_str()) {
                violations.push(format!("{}: protocol::{m}", file.display()));
            }
        }
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for lib in libraries {
                if line.contains(&format!("{lib}::")) || line.contains(&format!("use {lib}")) {
                    violations.push(format!("{}: {}", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "the hub names a codec:\n{}", violations.join("\n"));
}

#[test]
fn the_codec_scanner_sees_grouped_and_nested_paths() {
    let found = protocol_modules("use crate::protocol::{Publication, Push, json, native};\nlet x = crate::protocol::protobuf::encode(); // protocol::gone");
    let want: BTreeSet<String> = ["Publication", "Push", "json", "native", "protobuf"].iter().map(|s| s.to_string()).collect();
    assert_eq!(found, want);
}

#[test]
fn protocol_hub_and_session_name_no_transport_framework_or_engine() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = ["axum", "hyper", "tungstenite", "quinn", "wtransport", "h3", "redis", "tokio::net", "MemoryBroker"];
    let mut violations = Vec::new();
    for room in ["protocol", "hub", "session"] {
        let mut files = Vec::new();
        rust_files(&src.join(room), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for f in forbidden {
                    if line.contains(&format!("{f}::")) || line.contains(&format!("use {f}")) || line.contains(f) && f == "MemoryBroker" {
                        violations.push(format!("{}: {}", file.display(), line.trim()));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scanner_sees_grouped_and_inline_paths() {
    let refs = crate_refs("use crate::{hub::Hub, protocol};\nlet x = crate::broker::MemoryBroker::new(); // crate::api");
    assert_eq!(refs, ["broker", "hub", "protocol"].iter().map(|s| s.to_string()).collect());
}
