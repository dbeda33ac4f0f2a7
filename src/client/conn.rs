//! The client's connection: raw QUIC (quinn, ALPN `tidewire/1`) or WebTransport
//! (wtransport, `/connection/webtransport/native`), behind one small enum so the rest of
//! the client is written once. Also the TLS trust: a pinned SHA-256 (development
//! certificates) or root certificates in PEM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::{Error, Options, Transport, Trust};

/// ALPN of the native protocol over raw QUIC.
const ALPN_NATIVE: &[u8] = b"tidewire/1";
/// ALPN of HTTP/3 (WebTransport).
const ALPN_H3: &[u8] = b"h3";
/// Path of the native mode over WebTransport.
const NATIVE_PATH: &str = "/connection/webtransport/native";
/// Streams the server may open beyond one per subscription (spare for renewals).
const SPARE_STREAMS: u32 = 8;
/// A connection silent this long is closed (the server's keep-alives come every 10s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Client keep-alive interval: under the server's idle timeout, with room for loss.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Datagrams received but not yet read, in bytes (256 KiB); more are dropped.
const DATAGRAM_RECEIVE_BUFFER_BYTES: usize = 256 * 1024;

/// Accepts exactly the certificates whose SHA-256 is pinned (what a browser's
/// `serverCertificateHashes` does), and checks handshake signatures normally.
#[derive(Debug)]
struct PinnedHash {
    pins: Vec<[u8; 32]>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedHash {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let hash: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.pins.contains(&hash) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls client config for `trust`, offering `alpn`.
fn tls_config(trust: &Trust, alpn: &[u8]) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut config = match trust {
        Trust::CertHash(hashes) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedHash { pins: hashes.clone(), provider }))
            .with_no_client_auth(),
        Trust::RootsPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| Error::Tls(e.to_string()))?;
                roots.add(cert).map_err(|e| Error::Tls(e.to_string()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

fn transport_config(opts: &Options) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // The server opens one stream per subscription.
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(opts.max_subscriptions.saturating_add(SPARE_STREAMS)));
    if let Some(w) = opts.stream_receive_window {
        t.stream_receive_window(quinn::VarInt::from_u32(w));
    }
    t.max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER_BYTES));
    t
}

/// A client endpoint (one UDP socket) of either kind; many connections may share one.
#[derive(Clone)]
pub(super) enum Endpoint {
    Quic(quinn::Endpoint),
    Wt(Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>>),
}

/// A connection of either kind. `owned`: the endpoint is this connection's alone, so
/// closing waits for it to go idle (the close reaches the server before the process ends).
#[derive(Clone)]
pub(super) struct Conn {
    kind: ConnKind,
    endpoint: Endpoint,
    owned: bool,
}

#[derive(Clone)]
enum ConnKind {
    Quic(quinn::Connection),
    Wt(wtransport::Connection),
}

/// A stream's sending half.
pub(super) enum SendStream {
    Quic(quinn::SendStream),
    Wt(wtransport::SendStream),
}

/// A stream's receiving half.
pub(super) enum RecvStream {
    Quic(quinn::RecvStream),
    Wt(wtransport::RecvStream),
}

fn bind_addr(server: SocketAddr) -> SocketAddr {
    if server.is_ipv6() { "[::]:0".parse() } else { "0.0.0.0:0".parse() }.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl Endpoint {
    /// An endpoint for `opts.transport` with `opts`' trust and transport settings.
    pub(super) fn new(opts: &Options) -> Result<Self, Error> {
        match opts.transport {
            Transport::Quic => {
                let tls = tls_config(&opts.trust, ALPN_NATIVE)?;
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| Error::Tls(e.to_string()))?;
                let mut config = quinn::ClientConfig::new(Arc::new(crypto));
                config.transport_config(Arc::new(transport_config(opts)));
                let mut endpoint = quinn::Endpoint::client(bind_addr(opts.addr)).map_err(|e| Error::Connect(e.to_string()))?;
                endpoint.set_default_client_config(config);
                Ok(Self::Quic(endpoint))
            }
            Transport::WebTransport => {
                let tls = tls_config(&opts.trust, ALPN_H3)?;
                let config = wtransport::ClientConfig::builder()
                    .with_bind_address(bind_addr(opts.addr))
                    .with_custom_tls_and_transport(tls, transport_config(opts))
                    .build();
                let endpoint = wtransport::Endpoint::client(config).map_err(|e| Error::Connect(e.to_string()))?;
                Ok(Self::Wt(Arc::new(endpoint)))
            }
        }
    }

    /// Connects and completes the handshake (and the WebTransport CONNECT).
    pub(super) async fn connect(&self, opts: &Options, owned: bool) -> Result<Conn, Error> {
        let kind = match self {
            Self::Quic(endpoint) => {
                let name = if opts.server_name.is_empty() { opts.addr.ip().to_string() } else { opts.server_name.clone() };
                let conn = endpoint
                    .connect(opts.addr, &name)
                    .map_err(|e| Error::Connect(e.to_string()))?
                    .await
                    .map_err(|e| Error::Connect(e.to_string()))?;
                ConnKind::Quic(conn)
            }
            Self::Wt(endpoint) => {
                let url = format!("https://{}:{}{NATIVE_PATH}", url_host(&opts.server_name, opts.addr), opts.addr.port());
                let request = wtransport::endpoint::ConnectOptions::builder(url).build();
                ConnKind::Wt(endpoint.connect(request).await.map_err(|e| Error::Connect(e.to_string()))?)
            }
        };
        Ok(Conn { kind, endpoint: self.clone(), owned })
    }
}

impl Conn {
    pub(super) async fn open_bi(&self) -> Result<(SendStream, RecvStream), Error> {
        match &self.kind {
            ConnKind::Quic(c) => {
                let (s, r) = c.open_bi().await.map_err(|e| Error::Closed(e.to_string()))?;
                Ok((SendStream::Quic(s), RecvStream::Quic(r)))
            }
            ConnKind::Wt(c) => {
                let opening = c.open_bi().await.map_err(|e| Error::Closed(e.to_string()))?;
                let (s, r) = opening.await.map_err(|e| Error::Closed(e.to_string()))?;
                Ok((SendStream::Wt(s), RecvStream::Wt(r)))
            }
        }
    }

    pub(super) async fn accept_uni(&self) -> Result<RecvStream, Error> {
        match &self.kind {
            ConnKind::Quic(c) => c.accept_uni().await.map(RecvStream::Quic).map_err(|e| Error::Closed(e.to_string())),
            ConnKind::Wt(c) => c.accept_uni().await.map(RecvStream::Wt).map_err(|e| Error::Closed(e.to_string())),
        }
    }

    pub(super) async fn read_datagram(&self) -> Result<Bytes, Error> {
        match &self.kind {
            ConnKind::Quic(c) => c.read_datagram().await.map_err(|e| Error::Closed(e.to_string())),
            ConnKind::Wt(c) => c
                .receive_datagram()
                .await
                .map(|d| Bytes::copy_from_slice(d.payload().as_ref()))
                .map_err(|e| Error::Closed(e.to_string())),
        }
    }

    pub(super) fn send_datagram(&self, d: Bytes) -> Result<(), Error> {
        match &self.kind {
            ConnKind::Quic(c) => c.send_datagram(d).map_err(|e| Error::Datagram(e.to_string())),
            ConnKind::Wt(c) => c.send_datagram(d).map_err(|e| Error::Datagram(e.to_string())),
        }
    }

    /// The close code and reason the server sent, once the connection is closed.
    pub(super) async fn closed(&self) -> (u32, String) {
        let text = match &self.kind {
            ConnKind::Quic(c) => match c.closed().await {
                quinn::ConnectionError::ApplicationClosed(a) => {
                    return (a.error_code.into_inner().min(u64::from(u32::MAX)) as u32, String::from_utf8_lossy(&a.reason).into());
                }
                other => other.to_string(),
            },
            ConnKind::Wt(c) => c.closed().await.to_string(),
        };
        (0, text)
    }

    pub(super) async fn close(&self, code: u32, reason: &[u8]) {
        match &self.kind {
            ConnKind::Quic(c) => c.close(quinn::VarInt::from_u32(code), reason),
            ConnKind::Wt(c) => c.close(wtransport::VarInt::from_u32(code), reason),
        }
        if self.owned {
            let idle = async {
                match &self.endpoint {
                    Endpoint::Quic(e) => e.wait_idle().await,
                    Endpoint::Wt(e) => e.wait_idle().await,
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), idle).await;
        }
    }
}

fn url_host(name: &str, addr: SocketAddr) -> String {
    if name.is_empty() {
        match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    } else {
        name.to_string()
    }
}

impl SendStream {
    pub(super) async fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        match self {
            Self::Quic(s) => s.write_all(buf).await.map_err(|e| Error::Closed(e.to_string())),
            Self::Wt(s) => s.write_all(buf).await.map_err(|e| Error::Closed(e.to_string())),
        }
    }
}

impl RecvStream {
    pub(super) async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        match self {
            Self::Quic(s) => s.read(buf).await.map_err(|e| Error::Closed(e.to_string())),
            Self::Wt(s) => s.read(buf).await.map_err(|e| Error::Closed(e.to_string())),
        }
    }
}
