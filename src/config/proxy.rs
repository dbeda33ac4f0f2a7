//! Proxy settings, Centrifugo v6 names: `proxies[]` (named proxies), `client.proxy.connect`
//! and `client.proxy.refresh`, `channel.proxy.{subscribe,publish,sub_refresh}` (the
//! proxies called "default" by namespaces), the namespaces' `*_proxy_enabled` /
//! `*_proxy_name`, and `rpc` (`rpc.proxy`, `rpc.without_namespace`, `rpc.namespaces`,
//! `rpc.ping`, `rpc.namespace_boundary`).
//!
//! Only the shapes live here; `crate::proxy` resolves names to endpoints and checks them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Dur;

/// One proxy endpoint: where the backend is and how to call it. The fields of
/// `proxies[]`, `client.proxy.connect`, `channel.proxy.subscribe`, `rpc.proxy` ….
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProxyEndpoint {
    /// `http://` or `https://` URL the event is POSTed to, or `grpc://host:port` for
    /// Centrifugo's `CentrifugoProxy` gRPC service (plaintext HTTP/2).
    pub endpoint: String,
    /// Time the backend has to answer; past it the call fails (error 100). Default 1s.
    pub timeout: Dur,
    /// Headers of the client's HTTP request (and the SDK's emulated `headers`) forwarded
    /// to the backend, e.g. `["Cookie", "Authorization"]`. Nothing else is forwarded.
    pub http_headers: Vec<String>,
    /// For `grpc://` endpoints: the client headers forwarded as gRPC metadata (as
    /// `http_headers` for HTTP endpoints).
    pub grpc_metadata: Vec<String>,
    /// Binary mode: `data`/`info` travel base64-encoded as `b64data`/`b64info`. Default false.
    pub binary_encoding: bool,
    /// Send the connection's `meta` (from the connect proxy's result) with each request.
    pub include_connection_meta: bool,
    /// HTTP-specific options.
    pub http: ProxyHttp,
}

impl Default for ProxyEndpoint {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            timeout: Dur::secs(1),
            http_headers: Vec::new(),
            grpc_metadata: Vec::new(),
            binary_encoding: false,
            include_connection_meta: false,
            http: ProxyHttp::default(),
        }
    }
}

/// `*.http.*` of a proxy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProxyHttp {
    /// Headers added to every request; forwarded client headers win over them.
    pub static_headers: BTreeMap<String, String>,
}

/// One entry of `proxies[]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct NamedProxy {
    /// The name namespaces refer to (`subscribe_proxy_name = "…"`). `default` is taken.
    pub name: String,
    /// The endpoint.
    #[serde(flatten)]
    pub proxy: ProxyEndpoint,
}

/// `client.proxy.connect` / `client.proxy.refresh`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClientEventProxy {
    /// Turns the proxy on. Default false.
    pub enabled: bool,
    /// The endpoint.
    #[serde(flatten)]
    pub proxy: ProxyEndpoint,
}

/// `client.proxy.*`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClientProxies {
    /// Connect without a token: the backend authenticates the connection (from its cookie).
    pub connect: ClientEventProxy,
    /// The backend extends or ends connections whose `expire_at` has come.
    pub refresh: ClientEventProxy,
}

/// `channel.proxy.*`: the proxies namespaces call "default".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChannelProxies {
    /// Subscribe permission and initial data.
    pub subscribe: ProxyEndpoint,
    /// Publish permission; may rewrite the data.
    pub publish: ProxyEndpoint,
    /// Extends or ends subscriptions whose `expire_at` has come.
    pub sub_refresh: ProxyEndpoint,
}

/// RPC routing options of `rpc.without_namespace` and each `rpc.namespaces[]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RpcOptions {
    /// Send this namespace's methods to a proxy. Default false.
    pub proxy_enabled: bool,
    /// Which one: a `proxies[]` name, or `default` (`rpc.proxy`) when empty.
    pub proxy_name: String,
}

/// One entry of `rpc.namespaces`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RpcNamespace {
    /// The method prefix before `rpc.namespace_boundary` (`orders` for `orders:list`).
    pub name: String,
    /// Its options.
    #[serde(flatten)]
    pub options: RpcOptions,
}

/// `rpc.ping`: a built-in method answered with empty data, no proxy involved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RpcPing {
    /// Default false.
    pub enabled: bool,
    /// Default `ping`.
    pub method: String,
}

impl Default for RpcPing {
    fn default() -> Self {
        Self { enabled: false, method: "ping".into() }
    }
}

/// `rpc.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RpcConfig {
    /// The proxy called "default".
    pub proxy: ProxyEndpoint,
    /// Methods without a namespace.
    pub without_namespace: RpcOptions,
    /// RPC namespaces.
    pub namespaces: Vec<RpcNamespace>,
    /// The built-in ping method.
    pub ping: RpcPing,
    /// Separates namespace and method. Default `:`.
    pub namespace_boundary: String,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            proxy: ProxyEndpoint::default(),
            without_namespace: RpcOptions::default(),
            namespaces: Vec::new(),
            ping: RpcPing::default(),
            namespace_boundary: ":".into(),
        }
    }
}
