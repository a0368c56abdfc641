//! `orch:plugin/http`: outbound HTTP through reqwest (rustls), checked against the call's grant
//! on every request. Redirects are not followed, so a granted host cannot bounce a plugin to
//! one that is not granted.

use super::grants::{HttpGrant, redact_url};
use crate::runtime::bindings::orch::plugin::{http as wit, types::Error as WitError};
use reqwest::{Client, Method, Url};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Per-call HTTP state.
pub struct HttpCapability {
    grant: HttpGrant,
    max_response_bytes: u64,
    max_timeout: Duration,
}

fn build_client(insecure: bool) -> Result<Client, String> {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(insecure)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

// One client per TLS mode for the whole process: building one loads the root store.
fn client(insecure: bool) -> Result<Client, String> {
    static SECURE: OnceLock<Result<Client, String>> = OnceLock::new();
    static INSECURE: OnceLock<Result<Client, String>> = OnceLock::new();
    let cell = if insecure { &INSECURE } else { &SECURE };
    cell.get_or_init(|| build_client(insecure)).clone()
}

// One client per pinned fingerprint: the pin lives in the client's TLS configuration.
fn pinned_client(fingerprint: &str) -> Result<Client, String> {
    static PINNED: OnceLock<Mutex<HashMap<[u8; 32], Client>>> = OnceLock::new();
    let sha = super::pinning::parse_fingerprint(fingerprint)?;
    let cache = PINNED.get_or_init(Mutex::default);
    let mut cache = cache
        .lock()
        .map_err(|_| "HTTP client cache poisoned".to_string())?;
    if let Some(c) = cache.get(&sha) {
        return Ok(c.clone());
    }
    let tls = super::pinning::PinnedCertVerifier::client_config(sha)?;
    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| format!("cannot build the pinned HTTP client: {e}"))?;
    cache.insert(sha, c.clone());
    Ok(c)
}

impl HttpCapability {
    /// HTTP under `grant`, with a response-size cap and the call's timeout as the upper bound.
    pub fn new(grant: HttpGrant, max_response_bytes: u64, max_timeout: Duration) -> Self {
        HttpCapability {
            grant,
            max_response_bytes,
            max_timeout,
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
        let client = match &request.pinned_cert_sha256 {
            Some(pin) => pinned_client(pin).map_err(WitError::InvalidArguments)?,
            None => client(request.insecure_tls).map_err(WitError::Failed)?,
        };
        let mut builder = client.request(method, url).timeout(timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(|e| {
            let detail = error_chain(&e);
            if e.is_timeout() {
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

impl wit::Host for HttpCapability {
    async fn send(
        &mut self,
        request: wit::Request,
    ) -> wasmtime::Result<Result<wit::Response, WitError>> {
        Ok(HttpCapability::send(self, request).await)
    }
}
