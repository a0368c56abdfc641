//! JSON over HTTP through the host's `http` import.

use crate::bindings::orch::plugin::http as wit;
use crate::{Result, error};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Settings shared by the requests a method makes.
#[derive(Clone, Debug, Default)]
pub struct Http {
    /// Accept self-signed certificates.
    pub insecure_tls: bool,
    /// Accept only the certificate with this SHA-256 fingerprint.
    pub pinned_cert_sha256: Option<String>,
    /// Headers sent with every request.
    pub headers: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout_ms: Option<u32>,
}

/// One request.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// GET, POST, …
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Option<Vec<u8>>,
}

/// A response, whatever its status.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl From<wit::Response> for HttpResponse {
    fn from(response: wit::Response) -> Self {
        HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

impl HttpResponse {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            error::failed(format!(
                "response (HTTP {}) is not the expected JSON: {e}",
                self.status
            ))
        })
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Http {
    fn wit_request(&self, request: HttpRequest) -> wit::Request {
        let mut headers = self.headers.clone();
        headers.extend(request.headers);
        wit::Request {
            method: request.method,
            url: request.url,
            headers,
            body: request.body,
            timeout_ms: self.timeout_ms,
            insecure_tls: self.insecure_tls,
            pinned_cert_sha256: self.pinned_cert_sha256.clone(),
        }
    }

    /// Sends a request; any status is a response, only transport failures are errors.
    pub fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let response = crate::host::http_send(&self.wit_request(request))?;
        Ok(response.into())
    }

    /// Sends `requests` with at most `max_concurrency` in flight (the host bounds it too); each
    /// is checked against the grants on its own. Results are in request order.
    pub fn send_batch(
        &self,
        requests: Vec<HttpRequest>,
        max_concurrency: u32,
    ) -> Vec<Result<HttpResponse>> {
        let requests: Vec<wit::Request> =
            requests.into_iter().map(|r| self.wit_request(r)).collect();
        crate::host::http_send_batch(&requests, max_concurrency)
            .into_iter()
            .map(|r| r.map(HttpResponse::from))
            .collect()
    }

    /// GET a URL.
    pub fn get(&self, url: &str) -> Result<HttpResponse> {
        self.send(HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        })
    }

    /// GET a URL and parse a JSON body, failing on a non-2xx status.
    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T> {
        ensure_success(self.get(url)?)?.json()
    }

    /// POST a JSON body and parse the JSON response, failing on a non-2xx status.
    pub fn post_json<B: Serialize, T: DeserializeOwned>(&self, url: &str, body: &B) -> Result<T> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| error::failed(format!("cannot serialize request body: {e}")))?;
        let response = self.send(HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(bytes),
        })?;
        ensure_success(response)?.json()
    }
}

/// Turns a non-2xx response into an error that carries the status and the body's start.
pub fn ensure_success(response: HttpResponse) -> Result<HttpResponse> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let mut text = response.text();
    text.truncate(300);
    let msg = format!("HTTP {}: {}", response.status, text.trim());
    Err(match response.status {
        401 | 403 => crate::Error::Denied(msg),
        404 => error::not_found(msg),
        409 => error::conflict(msg),
        429 | 502..=504 => error::transient(msg),
        _ => error::failed(msg),
    })
}
