//! Grafana's HTTP API through the host's HTTP client: the token header and what each status
//! means to a user.

use orch_plugin_sdk::{Error, Http, HttpRequest, HttpResponse, Result, Value, error};

/// A client for one Grafana instance with one service-account token.
pub struct Client {
    http: Http,
    base: String,
}

impl Client {
    /// A client for `url` (scheme required; a trailing `/` is dropped) sending `token`.
    pub fn new(url: &str, token: &str) -> Result<Client> {
        let base = url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(error::invalid(format!(
                "globalArguments.url `{base}` is not an http:// or https:// URL; write e.g. https://grafana.lab:3000"
            )));
        }
        if token.trim().is_empty() {
            return Err(error::invalid(
                "globalArguments.token is empty; set it to ${{ vault.get(\"grafana\", \"token\") }} and store a service-account token with `orch vault put grafana token`",
            ));
        }
        let http = Http {
            headers: vec![
                ("authorization".into(), format!("Bearer {}", token.trim())),
                ("accept".into(), "application/json".into()),
            ],
            ..Http::default()
        };
        Ok(Client { http, base })
    }

    /// The instance's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request; a 2xx answer's JSON body (`null` when empty), or an error that says
    /// what the status means.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let response = self.send(method, path, body)?;
        check(method, path, &response)?;
        parse(method, path, &response)
    }

    /// Like [`Client::call`], but a 404 is `None`.
    pub fn find(&self, path: &str) -> Result<Option<Value>> {
        let response = self.send("GET", path, None)?;
        if response.status == 404 {
            return Ok(None);
        }
        check("GET", path, &response)?;
        parse("GET", path, &response).map(Some)
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<HttpResponse> {
        let mut headers = Vec::new();
        let body = match body {
            Some(body) => {
                headers.push(("content-type".into(), "application/json".into()));
                Some(serde_json::to_vec(body).map_err(|e| {
                    error::failed(format!("cannot encode the body of {method} {path}: {e}"))
                })?)
            }
            None => None,
        };
        self.http.send(HttpRequest {
            method: method.into(),
            url: format!("{}{path}", self.base),
            headers,
            body,
        })
    }
}

fn parse(method: &str, path: &str, response: &HttpResponse) -> Result<Value> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        error::failed(format!(
            "{method} {path} answered HTTP {} with a body that is not JSON ({e}); is globalArguments.url a Grafana instance?",
            response.status
        ))
    })
}

/// Grafana's own explanation: the body's `message`, at most 300 characters.
fn grafana_message(response: &HttpResponse) -> String {
    let text = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| response.text());
    text.trim().chars().take(300).collect()
}

/// Turns a non-2xx answer into an error a user can act on.
pub fn check(method: &str, path: &str, response: &HttpResponse) -> Result<()> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let said = grafana_message(response);
    Err(match status {
        // Never the token, nor Grafana's body: only where to look.
        401 => Error::Denied(format!(
            "Grafana denied the token (401) on {method} {path}; check vault grafana/token (a service-account token, `glsa_…`)"
        )),
        403 => Error::Denied(format!(
            "Grafana refused {method} {path} (403: {said}); give the token's service account the Editor or Admin role"
        )),
        404 => error::not_found(format!("{method} {path}: 404 {said}")),
        409 => error::conflict(format!("{method} {path}: 409 {said}")),
        412 => error::conflict(format!(
            "{method} {path}: 412 {said}; the dashboard changed in Grafana while orch pushed it, run the push again"
        )),
        429 | 502..=504 => error::transient(format!("{method} {path}: HTTP {status} {said}")),
        _ => error::failed(format!("{method} {path}: HTTP {status} {said}")),
    })
}
