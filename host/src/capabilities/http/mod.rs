//! `orch:plugin/http`: outbound HTTP through reqwest (rustls), checked against the call's grant
//! on every request. Redirects are not followed, so a granted host cannot bounce a plugin to
//! one that is not granted. The addresses a request connects to are checked too
//! ([`crate::capabilities::egress`]): a granted name that resolves to a loopback, link-local or metadata
//! address is refused unless the grant names that address literally.

pub mod grant;
pub mod pinning;

use crate::capabilities::egress::{self, AddressPolicy, GuardedDns, Resolver};
use crate::capabilities::http::grant::{HttpGrant, redact_url};
use crate::runtime::wit::v0_2::orch::plugin::{http as wit, types::Error as WitError};
use reqwest::{Client, Method, Url};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// Per-call HTTP state.
pub struct HttpCapability {
    grant: HttpGrant,
    max_response_bytes: u64,
    max_timeout: Duration,
    /// A resolver of the test's own; `None` uses the system's through the shared clients.
    resolver: Option<Arc<dyn Resolver>>,
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TlsMode {
    /// The platform's trust store.
    Verified,
    /// Anything (`insecure-tls`).
    Insecure,
    /// Exactly the certificate with this SHA-256.
    Pinned([u8; 32]),
}

/// What makes two requests able to share a client (and its connections): the TLS mode and
/// the guarded addresses the grant names, which the client's DNS hook enforces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    tls: TlsMode,
    policy: AddressPolicy,
}

/// Clients kept for the whole process. Building one loads the trust store, so they are
/// shared; a plugin choosing a new pinned fingerprint per request only evicts older clients.
const MAX_CACHED_CLIENTS: usize = 16;

/// A small cache that forgets the least recently used entry past its capacity.
#[derive(Debug)]
struct BoundedCache<K, V> {
    capacity: usize,
    // Most recently used first.
    entries: VecDeque<(K, V)>,
}

impl<K: PartialEq, V: Clone> BoundedCache<K, V> {
    fn new(capacity: usize) -> Self {
        BoundedCache {
            capacity: capacity.max(1),
            entries: VecDeque::new(),
        }
    }

    fn get_or_try_insert<E>(
        &mut self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(entry) = self
            .entries
            .iter()
            .position(|(k, _)| *k == key)
            .and_then(|i| self.entries.remove(i))
        {
            let value = entry.1.clone();
            self.entries.push_front(entry);
            return Ok(value);
        }
        let value = make()?;
        self.entries.push_front((key, value.clone()));
        self.entries.truncate(self.capacity);
        Ok(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

fn clients() -> &'static Mutex<BoundedCache<ClientKey, Client>> {
    static CLIENTS: OnceLock<Mutex<BoundedCache<ClientKey, Client>>> = OnceLock::new();
    CLIENTS.get_or_init(|| Mutex::new(BoundedCache::new(MAX_CACHED_CLIENTS)))
}

fn build_client(key: &ClientKey, resolver: Arc<dyn Resolver>) -> Result<Client, String> {
    let builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .dns_resolver(GuardedDns::new(resolver, key.policy.clone()));
    let builder = match &key.tls {
        TlsMode::Verified => builder,
        TlsMode::Insecure => builder.tls_danger_accept_invalid_certs(true),
        TlsMode::Pinned(sha) => {
            builder.tls_backend_preconfigured(pinning::PinnedCertVerifier::client_config(*sha)?)
        }
    };
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The shared client for `key` (built on first use; the cache is bounded).
fn shared_client(key: ClientKey) -> Result<Client, String> {
    let mut cache = clients().lock().unwrap_or_else(PoisonError::into_inner);
    let resolver = egress::system_resolver();
    cache.get_or_try_insert(key.clone(), || build_client(&key, resolver))
}

impl HttpCapability {
    /// HTTP under `grant`, with a response-size cap and the call's timeout as the upper bound.
    pub fn new(grant: HttpGrant, max_response_bytes: u64, max_timeout: Duration) -> Self {
        HttpCapability {
            grant,
            max_response_bytes,
            max_timeout,
            resolver: None,
        }
    }

    /// The same capability resolving names with `resolver` (tests), on a client of its own.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    fn client(&self, key: ClientKey) -> Result<Client, String> {
        match &self.resolver {
            Some(r) => build_client(&key, r.clone()),
            None => shared_client(key),
        }
    }

    /// No HTTP at all (used for `describe`).
    pub fn none() -> Self {
        Self::new(HttpGrant::none(), 0, Duration::from_secs(1))
    }

    async fn send(&self, request: wit::Request) -> Result<wit::Response, WitError> {
        let url = Url::parse(&request.url)
            .map_err(|e| WitError::InvalidArguments(format!("bad URL {:?}: {e}", request.url)))?;
        let shown = redact_url(&url);
        self.grant
            .check(&url)
            .map_err(|why| WitError::Denied(format!("http {} {why}", request.method)))?;
        let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            WitError::InvalidArguments(format!("bad HTTP method {:?}", request.method))
        })?;
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(self.max_timeout)
            .min(self.max_timeout);
        // The connection is checked too: an address written in the URL here, a resolved name
        // by the client's DNS hook.
        let policy = self.grant.named_addresses(&url);
        if let Some(ip) = url_ip(&url) {
            policy.check(&ip.to_string(), ip).map_err(|why| {
                WitError::Denied(format!("http {} {shown}: {why}", request.method))
            })?;
        }
        let tls = match &request.pinned_cert_sha256 {
            Some(pin) => TlsMode::Pinned(
                pinning::parse_fingerprint(pin).map_err(WitError::InvalidArguments)?,
            ),
            None if request.insecure_tls => TlsMode::Insecure,
            None => TlsMode::Verified,
        };
        let client = self
            .client(ClientKey { tls, policy })
            .map_err(WitError::Failed)?;
        let mut builder = client.request(method, url).timeout(timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(|e| {
            let detail = error_chain(&e);
            if let Some(denied) = egress::denial_in(&e) {
                WitError::Denied(format!("http {} {shown}: {denied}", request.method))
            } else if e.is_timeout() {
                WitError::Transient(format!(
                    "{shown}: timed out after {} ms",
                    timeout.as_millis()
                ))
            } else if e.is_connect() {
                WitError::Transient(format!("{shown}: cannot connect: {detail}"))
            } else {
                WitError::Failed(format!("{shown}: {detail}"))
            }
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (body.len() + chunk.len()) as u64 > self.max_response_bytes {
                        return Err(WitError::Failed(format!(
                            "{shown}: response is larger than the plugin's limit of {} bytes (limits.max-response-bytes)",
                            self.max_response_bytes
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(WitError::Transient(format!(
                        "{shown}: reading the body: {}",
                        error_chain(&e)
                    )));
                }
            }
        }
        Ok(wit::Response {
            status,
            headers,
            body,
        })
    }
}

/// The IP address a URL names directly (no DNS), if it does.
fn url_ip(url: &Url) -> Option<IpAddr> {
    // The URL parser has already turned every IPv4 spelling (`0x7f.1`, `2130706433`) into
    // dotted decimal, so what does not parse here is a name.
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Most requests of one batch in flight at once, whatever the plugin asks for.
pub const MAX_BATCH_CONCURRENCY: u32 = 16;

impl HttpCapability {
    /// Sends `requests` with at most `max_concurrency` (bounded by [`MAX_BATCH_CONCURRENCY`],
    /// at least 1) in flight; each is checked against the grant on its own, so a denied one
    /// fails alone. Results are in request order.
    pub async fn send_batch(
        &self,
        requests: Vec<wit::Request>,
        max_concurrency: u32,
    ) -> Vec<Result<wit::Response, WitError>> {
        use futures_util::StreamExt;
        let limit = max_concurrency.clamp(1, MAX_BATCH_CONCURRENCY) as usize;
        futures_util::stream::iter(requests)
            .map(|request| self.send(request))
            .buffered(limit)
            .collect()
            .await
    }
}

impl wit::Host for HttpCapability {
    async fn send(
        &mut self,
        request: wit::Request,
    ) -> wasmtime::Result<Result<wit::Response, WitError>> {
        Ok(HttpCapability::send(self, request).await)
    }

    async fn send_batch(
        &mut self,
        requests: Vec<wit::Request>,
        max_concurrency: u32,
    ) -> wasmtime::Result<Vec<Result<wit::Response, WitError>>> {
        Ok(HttpCapability::send_batch(self, requests, max_concurrency).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::egress::StaticResolver;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_client_cache_forgets_the_least_recently_used() {
        let mut cache = BoundedCache::new(2);
        let builds = std::cell::Cell::new(0);
        let get = |cache: &mut BoundedCache<u32, u32>, k: u32| {
            cache
                .get_or_try_insert(k, || {
                    builds.set(builds.get() + 1);
                    Ok::<_, ()>(k * 10)
                })
                .unwrap()
        };
        assert_eq!(get(&mut cache, 1), 10);
        assert_eq!(get(&mut cache, 2), 20);
        assert_eq!(get(&mut cache, 1), 10);
        assert_eq!(get(&mut cache, 3), 30);
        assert_eq!(cache.len(), 2);
        // 2 was the least recently used, so it is built again; 1 is still there.
        get(&mut cache, 1);
        get(&mut cache, 2);
        assert_eq!(builds.get(), 4);
    }

    #[test]
    fn pinned_fingerprints_cannot_grow_the_process_s_clients_without_bound() {
        for i in 0..(MAX_CACHED_CLIENTS as u8 * 3) {
            let key = ClientKey {
                tls: TlsMode::Pinned([i; 32]),
                policy: AddressPolicy::default(),
            };
            shared_client(key).unwrap();
            let len = clients()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len();
            assert!(len <= MAX_CACHED_CLIENTS, "{len} clients cached");
        }
    }

    /// A one-request-at-a-time HTTP server on 127.0.0.1 counting connections.
    fn tiny_server() -> (u16, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                seen.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        (port, count)
    }

    fn get(url: &str) -> wit::Request {
        wit::Request {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: Some(5000),
            insecure_tls: false,
            pinned_cert_sha256: None,
        }
    }

    fn capability(rules: &[String]) -> HttpCapability {
        let grant = HttpGrant::new(rules, None, &serde_json::Map::new()).unwrap();
        HttpCapability::new(grant, 1 << 20, Duration::from_secs(5))
            .with_resolver(StaticResolver::one("metadata.test", &["127.0.0.1"]))
    }

    #[tokio::test]
    async fn a_granted_name_resolving_to_loopback_is_denied_without_connecting() {
        let (port, count) = tiny_server();
        let url = format!("http://metadata.test:{port}/latest");
        let cap = capability(&[format!("http://metadata.test:{port}")]);
        let err = cap.send(get(&url)).await.unwrap_err();
        match &err {
            WitError::Denied(m) => assert!(
                m.contains("`metadata.test` resolves to 127.0.0.1") && m.contains("loopback"),
                "{m}"
            ),
            other => panic!("want denied, got {other:?}"),
        }
        assert_eq!(count.load(Ordering::SeqCst), 0, "no connection may be made");

        // Naming the address literally lets the name through.
        let cap = capability(&[
            format!("http://metadata.test:{port}"),
            format!("http://127.0.0.1:{port}"),
        ]);
        let ok = cap.send(get(&url)).await.unwrap();
        assert_eq!((ok.status, ok.body.as_slice()), (200, &b"ok"[..]));
    }

    #[tokio::test]
    async fn a_literal_guarded_address_under_a_wildcard_is_denied() {
        let cap = capability(&["http://*:*".to_string()]);
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]:8080/",
            "http://0x7f.1:9/",
        ] {
            let err = cap.send(get(url)).await.unwrap_err();
            assert!(matches!(err, WitError::Denied(_)), "{url}: {err:?}");
        }
    }

    #[tokio::test]
    async fn a_denied_request_in_a_batch_fails_alone_without_connecting() {
        let (granted, granted_count) = tiny_server();
        let (denied, denied_count) = tiny_server();
        let cap = capability(&[format!("http://127.0.0.1:{granted}")]);
        let ok = format!("http://127.0.0.1:{granted}/a");
        let refused = format!("http://127.0.0.1:{denied}/b");
        let results = cap
            .send_batch(vec![get(&ok), get(&refused), get(&ok)], 2)
            .await;
        assert_eq!(results.len(), 3);
        for i in [0, 2] {
            let response = results[i].as_ref().unwrap_or_else(|e| panic!("{i}: {e:?}"));
            assert_eq!(response.body, b"ok");
        }
        match &results[1] {
            Err(WitError::Denied(m)) => assert!(m.contains(&denied.to_string()), "{m}"),
            other => panic!("want denied, got {other:?}"),
        }
        assert_eq!(granted_count.load(Ordering::SeqCst), 2);
        assert_eq!(
            denied_count.load(Ordering::SeqCst),
            0,
            "no connection to the denied host"
        );
    }

    #[tokio::test]
    async fn an_empty_batch_and_a_zero_concurrency_are_fine() {
        let (port, count) = tiny_server();
        let cap = capability(&[format!("http://127.0.0.1:{port}")]);
        assert!(cap.send_batch(Vec::new(), 0).await.is_empty());
        let url = format!("http://127.0.0.1:{port}/");
        let results = cap.send_batch(vec![get(&url)], 0).await;
        assert!(results[0].is_ok(), "{results:?}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
