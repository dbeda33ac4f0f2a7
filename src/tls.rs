//! Certificates for every TLS listener (the client QUIC endpoint and the HTTP/3 API).
//!
//! Two sources: a configured certificate chain and key (PEM files or PEM text, used as
//! they are), or a development certificate made here with rcgen: ECDSA P-256, self-signed
//! for `localhost`, `127.0.0.1` and `::1`, valid for [`DEV_VALIDITY`] starting
//! [`DEV_BACKDATE`] in the past. Browsers accept such a certificate without a CA when the
//! page pins its SHA-256 with `serverCertificateHashes`, which requires a total validity
//! of at most 14 days. Dev certificates are stored in a directory (`certs/`), reused while
//! they have more than [`DEV_RENEW_BEFORE`] left, and renewed (also while running, see
//! [`CertStore::renew_if_due`]).
//!
//! This room knows rustls and rcgen, nothing of sessions or transports; `server.rs` turns a
//! [`Certificate`] into listener configs with [`server_config`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Total validity of a development certificate: 10 days, under Chromium's 14-day ceiling
/// for `serverCertificateHashes` with room for the backdate below.
pub const DEV_VALIDITY: Duration = Duration::from_secs(10 * 24 * 3600);
/// How far in the past a development certificate starts: 1 hour, so a client whose clock
/// is a little behind still accepts it.
pub const DEV_BACKDATE: Duration = Duration::from_secs(3600);
/// A stored development certificate with less than this left is replaced: 3 days, so a
/// browser page that fetched the hash keeps working for a while after.
pub const DEV_RENEW_BEFORE: Duration = Duration::from_secs(3 * 24 * 3600);

/// The stored development certificate: a first line with its validity (unix seconds, so
/// reuse needs no X.509 parser), then the certificate and key PEM blocks. One file,
/// replaced by one rename, so concurrent servers never read a certificate with another's key.
const DEV_FILE: &str = "dev.pem";
/// Copies for tools and configs that want separate files (never read back).
const DEV_CERT_FILE: &str = "dev-cert.pem";
const DEV_KEY_FILE: &str = "dev-key.pem";
/// Marks the validity line of [`DEV_FILE`].
const VALIDITY_PREFIX: &str = "# tidewire dev certificate validity:";

/// Why a certificate could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// PEM text holds no certificate or no usable key.
    #[error("{what}: {message}")]
    Pem {
        /// Which input (`http_server.tls.cert_pem` …).
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// rcgen could not make a certificate.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate chain with its key.
pub struct Certificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    sha256: [u8; 32],
    not_after: Option<SystemTime>,
    dev: bool,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate").field("sha256", &self.sha256_hex()).field("dev", &self.dev).finish()
    }
}

impl Clone for Certificate {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            sha256: self.sha256,
            not_after: self.not_after,
            dev: self.dev,
        }
    }
}

/// Reads a PEM input that is either the PEM text itself or a path to it.
fn pem_input(what: &'static str, value: &str) -> Result<Vec<u8>, TlsError> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).map_err(|source| TlsError::Io { path: format!("{what} ({value})"), source })
}

impl Certificate {
    /// Loads a configured chain and key (each a PEM path or PEM text).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let cert_bytes = pem_input("http_server.tls.cert_pem", cert_pem)?;
        let key_bytes = pem_input("http_server.tls.key_pem", key_pem)?;
        let mut cert = Self::parse(&cert_bytes, &key_bytes)?;
        cert.dev = false;
        Ok(cert)
    }

    fn parse(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem { what: "http_server.tls.cert_pem", message: e.to_string() })?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::Pem { what: "http_server.tls.cert_pem", message: "no CERTIFICATE block".into() });
        };
        let sha256 = Sha256::digest(leaf.as_ref()).into();
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Pem { what: "http_server.tls.key_pem", message: e.to_string() })?;
        // Fail now, not at the first handshake, if the key does not fit rustls.
        rustls::crypto::ring::sign::any_supported_type(&key)?;
        Ok(Self { chain, key, sha256, not_after: None, dev: false })
    }

    /// Makes a development certificate valid from `now - DEV_BACKDATE` for `DEV_VALIDITY`.
    /// Returns it with its certificate and key PEM.
    pub fn generate_dev(now: SystemTime) -> Result<(Self, String, String), TlsError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "Tidewire development certificate");
        let not_before = now.checked_sub(DEV_BACKDATE).unwrap_or(UNIX_EPOCH);
        let not_after = not_before + DEV_VALIDITY;
        params.not_before = time::OffsetDateTime::from(not_before);
        params.not_after = time::OffsetDateTime::from(not_after);
        let cert = params.self_signed(&key_pair)?;
        let (cert_pem, key_pem) = (cert.pem(), key_pair.serialize_pem());
        let mut parsed = Self::parse(cert_pem.as_bytes(), key_pem.as_bytes())?;
        parsed.dev = true;
        parsed.not_after = Some(not_after);
        Ok((parsed, cert_pem, key_pem))
    }

    /// The development certificate in `dir`: the stored one while it has more than
    /// `DEV_RENEW_BEFORE` left, else a new one written there (atomically, by rename).
    pub fn dev(dir: &Path, now: SystemTime) -> Result<Self, TlsError> {
        if let Some(cert) = Self::load_dev(dir, now) {
            return Ok(cert);
        }
        let (cert, cert_pem, key_pem) = Self::generate_dev(now)?;
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io { path: dir.display().to_string(), source })?;
        let not_after = cert.not_after.map_or(0, unix_secs);
        let not_before = not_after.saturating_sub(DEV_VALIDITY.as_secs());
        let combined = format!("{VALIDITY_PREFIX} {not_before} {not_after}\n{cert_pem}{key_pem}");
        write_atomic(&dir.join(DEV_FILE), combined.as_bytes())?;
        write_atomic(&dir.join(DEV_KEY_FILE), key_pem.as_bytes())?;
        write_atomic(&dir.join(DEV_CERT_FILE), cert_pem.as_bytes())?;
        Ok(cert)
    }

    fn load_dev(dir: &Path, now: SystemTime) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(DEV_FILE)).ok()?;
        let meta = text.lines().next()?.strip_prefix(VALIDITY_PREFIX)?;
        let mut parts = meta.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(not_before)), Some(Ok(not_after))) = (parts.next(), parts.next()) else { return None };
        let now_s = unix_secs(now);
        if not_after.saturating_sub(not_before) > 14 * 24 * 3600
            || now_s < not_before
            || now_s + DEV_RENEW_BEFORE.as_secs() >= not_after
        {
            return None;
        }
        let mut parsed = Self::parse(text.as_bytes(), text.as_bytes()).ok()?;
        parsed.dev = true;
        parsed.not_after = Some(UNIX_EPOCH + Duration::from_secs(not_after));
        Some(parsed)
    }

    /// SHA-256 of the leaf certificate (DER): what `serverCertificateHashes` pins.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// [`Certificate::sha256`] in lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether this is a generated development certificate.
    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// When a development certificate expires (None for configured ones).
    pub fn not_after(&self) -> Option<SystemTime> {
        self.not_after
    }

    /// The chain (leaf first), e.g. for a client's trust store in tests.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    // Unique per write, not just per process: servers started in parallel in one process
    // (tests) would otherwise rename each other's temporary file away.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let io = |source| TlsError::Io { path: path.display().to_string(), source };
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A rustls server config for `cert`: TLS 1.3 only (QUIC requires it), offering `alpn`.
pub fn server_config(cert: &Certificate, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.max_early_data_size = u32::MAX;
    Ok(config)
}

/// Where the current certificate comes from, and the certificate itself.
#[derive(Debug)]
pub struct CertStore {
    dev_dir: Option<PathBuf>,
    current: RwLock<Arc<Certificate>>,
}

impl CertStore {
    /// The certificate `http_server.tls` asks for: configured, or a development one.
    pub fn from_config(tls: &crate::config::TlsConfig, now: SystemTime) -> Result<Self, TlsError> {
        if tls.enabled {
            let cert = Certificate::from_pem(&tls.cert_pem, &tls.key_pem)?;
            return Ok(Self { dev_dir: None, current: RwLock::new(Arc::new(cert)) });
        }
        let dir = PathBuf::from(&tls.dev_dir);
        let cert = Certificate::dev(&dir, now)?;
        Ok(Self { dev_dir: Some(dir), current: RwLock::new(Arc::new(cert)) })
    }

    /// The certificate in use.
    pub fn current(&self) -> Arc<Certificate> {
        // Replaced whole under the lock; a poisoned lock still holds a valid Arc.
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether certificates are generated here (and the hash route is served).
    pub fn is_dev(&self) -> bool {
        self.dev_dir.is_some()
    }

    /// For development certificates: makes a new one when the current one has less than
    /// `DEV_RENEW_BEFORE` left. Returns the new certificate when it changed.
    pub fn renew_if_due(&self, now: SystemTime) -> Result<Option<Arc<Certificate>>, TlsError> {
        let Some(dir) = &self.dev_dir else { return Ok(None) };
        let due = self.current().not_after.is_none_or(|at| now + DEV_RENEW_BEFORE >= at);
        if !due {
            return Ok(None);
        }
        let cert = Arc::new(Certificate::dev(dir, now)?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = cert.clone();
        Ok(Some(cert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tidewire-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn concurrent_first_starts_in_one_process_all_get_a_certificate() {
        // Parallel test servers in one process used to share a temporary file name and
        // rename it away from each other (NotFound on a fresh clone).
        let dir = temp_dir("race");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || Certificate::dev(&dir, SystemTime::now()).map(|c| c.is_dev()))
            })
            .collect();
        for h in handles {
            assert!(h.join().expect("thread").expect("a certificate"));
        }
        assert!(Certificate::load_dev(&dir, SystemTime::now()).is_some(), "a valid pair is stored");
    }

    #[test]
    fn dev_certificate_is_reused_while_valid_and_renewed_before_expiry() {
        let dir = temp_dir("reuse");
        let now = SystemTime::now();
        let first = Certificate::dev(&dir, now).expect("generate");
        assert!(first.is_dev());
        let again = Certificate::dev(&dir, now + Duration::from_secs(3600)).expect("reuse");
        assert_eq!(first.sha256(), again.sha256(), "a valid stored certificate is reused");
        let later = now + DEV_VALIDITY - DEV_RENEW_BEFORE;
        let renewed = Certificate::dev(&dir, later).expect("renew");
        assert_ne!(first.sha256(), renewed.sha256(), "a certificate near expiry is replaced");
        let text = std::fs::read_to_string(dir.join(DEV_FILE)).expect("stored");
        let meta = text.lines().next().and_then(|l| l.strip_prefix(VALIDITY_PREFIX)).expect("validity line");
        let v: Vec<u64> = meta.split_whitespace().map(|p| p.parse().expect("number")).collect();
        assert!(v[1] - v[0] < 14 * 24 * 3600, "validity under 14 days for serverCertificateHashes");
        assert!(v[0] < unix_secs(later), "not_before lies in the past");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn store_renews_while_running() {
        let dir = temp_dir("store");
        let cfg = crate::config::TlsConfig { dev_dir: dir.display().to_string(), ..Default::default() };
        let now = SystemTime::now();
        let store = CertStore::from_config(&cfg, now).expect("store");
        let before = store.current().sha256();
        assert!(store.renew_if_due(now + Duration::from_secs(60)).expect("ok").is_none());
        let renewed = store.renew_if_due(now + DEV_VALIDITY).expect("ok").expect("renewed");
        assert_ne!(renewed.sha256(), before);
        assert_eq!(store.current().sha256(), renewed.sha256());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn configured_pem_text_loads_and_garbage_is_refused() {
        let (_, cert_pem, key_pem) = Certificate::generate_dev(SystemTime::now()).expect("gen");
        let cert = Certificate::from_pem(&cert_pem, &key_pem).expect("loads");
        assert!(!cert.is_dev());
        assert_eq!(cert.sha256_hex().len(), 64);
        assert!(server_config(&cert, &[b"h3"]).is_ok());
        let err = Certificate::from_pem("-----BEGIN NOTHING-----", &key_pem).expect_err("no cert");
        assert!(err.to_string().contains("cert_pem"), "{err}");
        let err = Certificate::from_pem(&cert_pem, "/nonexistent/key.pem").expect_err("no key file");
        assert!(err.to_string().contains("key_pem"), "{err}");
    }
}
