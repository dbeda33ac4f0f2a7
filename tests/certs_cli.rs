//! `tidewire certs`: makes a development certificate, reuses it while valid, replaces it
//! with `--force`, and prints the SHA-256 a browser pins.

use std::process::Command;

fn certs(dir: &std::path::Path, force: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidewire"));
    cmd.arg("certs").arg("--dir").arg(dir);
    if force {
        cmd.arg("--force");
    }
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sha-256:"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("no sha-256 line in {stdout}"));
    assert_eq!(hash.len(), 64, "{stdout}");
    hash
}

#[test]
fn certs_generates_reuses_and_forces_a_new_certificate() {
    let dir = std::env::temp_dir().join(format!("tidewire-certs-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = certs(&dir, false);
    for f in ["dev.pem", "dev-cert.pem", "dev-key.pem"] {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    let cert = std::fs::read_to_string(dir.join("dev-cert.pem")).expect("cert");
    let key = std::fs::read_to_string(dir.join("dev-key.pem")).expect("key");
    assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
    // The hash printed is the certificate's: the server would load and serve the same one.
    let loaded = tidewire::tls::Certificate::from_pem(&cert, &key).expect("loads");
    assert_eq!(loaded.sha256_hex(), first);
    assert_eq!(certs(&dir, false), first, "a valid certificate is reused");
    assert_ne!(certs(&dir, true), first, "--force makes a new one");
    let _ = std::fs::remove_dir_all(&dir);
}
