//! A small Proxmox VE API client: request building, authentication headers, error mapping and
//! task waiting. It talks through [`Transport`] so the logic runs in native unit tests with a
//! fake server, and through the host's `http` import inside the plugin.

use crate::encode;
use crate::task::{self, MAX_POLLS, TaskState};
use orch_plugin_sdk::{Error, Http, HttpRequest, HttpResponse, Result, Value, error};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Sends one HTTP request; only transport failures are errors.
pub trait Transport {
    /// Sends `request` and returns the response, whatever its status.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse>;

    /// Sends `requests` with at most `max_concurrency` in flight; results in request order.
    /// By default one after another.
    fn send_batch(
        &self,
        requests: Vec<HttpRequest>,
        _max_concurrency: u32,
    ) -> Vec<Result<HttpResponse>> {
        requests.into_iter().map(|r| self.send(r)).collect()
    }
}

impl Transport for Http {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        Http::send(self, request)
    }

    fn send_batch(
        &self,
        requests: Vec<HttpRequest>,
        max_concurrency: u32,
    ) -> Vec<Result<HttpResponse>> {
        Http::send_batch(self, requests, max_concurrency)
    }
}

/// How requests prove who they are.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No credentials (the ticket request itself).
    Anonymous,
    /// A login ticket sent as the `PVEAuthCookie` cookie; writes also need the CSRF token.
    Ticket {
        /// The `PVE:user@realm:…` ticket.
        ticket: String,
        /// The `CSRFPreventionToken`, required on POST/PUT/DELETE.
        csrf: Option<String>,
    },
    /// An API token (`USER@REALM!ID=SECRET`) sent as `Authorization: PVEAPIToken=…`.
    Token(String),
}

/// The parts of an API token; the secret never leaves this struct except in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    /// `USER@REALM!ID`, safe to show.
    pub token_id: String,
    /// `USER@REALM`.
    pub user: String,
}

/// Checks the `USER@REALM!ID=SECRET` shape without ever echoing the secret.
pub fn parse_api_token(token: &str) -> Result<ApiToken> {
    let bad = || {
        error::invalid(
            "apiToken must look like USER@REALM!TOKENID=SECRET (e.g. root@pam!orch=xxxxxxxx-…)",
        )
    };
    let (token_id, secret) = token.trim().split_once('=').ok_or_else(bad)?;
    let (user, id) = token_id.split_once('!').ok_or_else(bad)?;
    if secret.is_empty() || id.is_empty() || !user.contains('@') || user.starts_with('@') {
        return Err(bad());
    }
    Ok(ApiToken {
        token_id: token_id.to_string(),
        user: user.to_string(),
    })
}

/// `https://host:8006` from what a user may type (`…/`, `…/api2/json`), checked for a scheme.
pub fn normalize_api_url(api_url: &str) -> Result<String> {
    let mut url = api_url.trim().trim_end_matches('/');
    if let Some(stripped) = url.strip_suffix("/api2/json") {
        url = stripped.trim_end_matches('/');
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(url.to_string()),
        _ => Err(error::invalid(format!(
            "apiUrl {api_url:?} must be an http(s) URL such as https://10.0.0.4:8006"
        ))),
    }
}

/// The message PVE put in an error body (`{"data":null,"message":"…\n","errors":{…}}`),
/// trimmed, with per-parameter errors appended; falls back to the body text.
pub fn pve_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let mut message = value
            .get("message")
            .and_then(Value::as_str)
            .map(|m| m.trim().to_string())
            .unwrap_or_default();
        if let Some(errors) = value.get("errors").and_then(Value::as_object) {
            let details: Vec<String> = errors
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or(&v.to_string()).trim()))
                .collect();
            if !details.is_empty() {
                if !message.is_empty() {
                    message.push(' ');
                }
                message.push_str(&format!("({})", details.join("; ")));
            }
        }
        // A JSON answer without a message (`{"data":null}`) says nothing more than its status.
        return message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('<') && text.to_ascii_lowercase().contains("<html") {
        return match html_title(text) {
            Some(title) => format!("an HTML page titled {title:?} instead of PVE's JSON"),
            None => "an HTML page instead of PVE's JSON".to_string(),
        };
    }
    let cut = (0..=text.len().min(300))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text[..cut].to_string()
}

/// The text of an HTML page's `<title>`, trimmed and at most 100 characters.
fn html_title(page: &str) -> Option<String> {
    let lower = page.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    let title: String = page[start..end].trim().chars().take(100).collect();
    (!title.is_empty()).then_some(title)
}

/// Maps a non-2xx PVE answer to a typed error. `what` names the request (`POST /nodes/…`);
/// `denied_hint` says what to do about a 401.
pub fn api_error(what: &str, status: u16, body: &[u8], denied_hint: &str) -> Error {
    let mut message = pve_message(body);
    if message.is_empty() {
        message = match status {
            401 => "authentication failure".into(),
            // pveproxy's own status when the cluster node that holds the resource does not
            // answer it (its reason phrase is `Connection timed out`).
            596 => "a cluster node did not answer the proxy (connection timed out); check that \
                    every node is up, then retry"
                .into(),
            _ => "no message".into(),
        };
    }
    let lower = message.to_ascii_lowercase();
    let text = format!("{what}: {message} (HTTP {status})");
    if status == 401 {
        return Error::Denied(format!(
            "{what}: Proxmox answered 401 ({message}); {denied_hint}"
        ));
    }
    if status == 403 {
        return Error::Denied(text);
    }
    if status == 404 || lower.contains("does not exist") || lower.contains("no such") {
        return Error::NotFound(text);
    }
    const CONFLICTS: &[&str] = &[
        "already exists",
        "already running",
        "is running",
        "not running",
        "is locked",
        // A `PUT …/config` whose `digest` no longer matches: someone changed it since the read.
        "file changed by other user",
    ];
    if status == 409 || CONFLICTS.iter().any(|c| lower.contains(c)) {
        return Error::Conflict(text);
    }
    // 596 is pveproxy's "cannot reach the other cluster node"; all of these pass on retry.
    if matches!(status, 429 | 502 | 503 | 504 | 596) {
        return Error::Transient(text);
    }
    Error::Failed(text)
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

/// Parses the `data` of a 2xx PVE answer as `T`.
pub fn parse_data<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice::<Envelope<T>>(body)
        .map(|e| e.data)
        .map_err(|e| {
            error::failed(format!(
                "{what}: Proxmox's answer is not the expected JSON ({e}); it starts {:?}",
                String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(120)
                    .collect::<String>()
            ))
        })
}

/// One Proxmox endpoint plus how to authenticate, log and wait.
pub struct Pve<'a> {
    transport: &'a dyn Transport,
    base: String,
    auth: Auth,
    denied_hint: String,
    sleep: fn(Duration),
    warn: &'a dyn Fn(&str),
}

impl<'a> Pve<'a> {
    /// A client for `api_url` (already normalized) that uses `auth` on every request.
    pub fn new(
        transport: &'a dyn Transport,
        api_url: &str,
        auth: Auth,
        denied_hint: impl Into<String>,
        sleep: fn(Duration),
        warn: &'a dyn Fn(&str),
    ) -> Self {
        Pve {
            transport,
            base: format!("{api_url}/api2/json"),
            auth,
            denied_hint: denied_hint.into(),
            sleep,
            warn,
        }
    }

    /// Logs a warning into the run.
    pub fn warn(&self, message: &str) {
        (self.warn)(message);
    }

    /// Sleeps (a no-op in tests).
    pub fn sleep(&self, duration: Duration) {
        (self.sleep)(duration);
    }

    /// Builds the request for `method path` (path below `/api2/json`) with an optional form.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        form: Option<&[(String, String)]>,
    ) -> Result<HttpRequest> {
        let mut headers = Vec::new();
        let is_write = method != "GET";
        match &self.auth {
            Auth::Anonymous => {}
            Auth::Ticket { ticket, csrf } => {
                headers.push(("cookie".into(), format!("PVEAuthCookie={ticket}")));
                if is_write {
                    let csrf = csrf.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
                        Error::Denied(format!(
                            "{method} {path} needs the CSRF token that comes with the ticket, but csrfToken is empty; {}",
                            self.denied_hint
                        ))
                    })?;
                    headers.push(("CSRFPreventionToken".into(), csrf.to_string()));
                }
            }
            Auth::Token(token) => {
                headers.push(("authorization".into(), format!("PVEAPIToken={token}")));
            }
        }
        let body = form.map(|pairs| {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
            encode::form(pairs).into_bytes()
        });
        Ok(HttpRequest {
            method: method.to_string(),
            url: format!("{}{path}", self.base),
            headers,
            body,
        })
    }

    /// Sends a request and returns the response whatever its status.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        form: Option<&[(String, String)]>,
    ) -> Result<HttpResponse> {
        let request = self.request(method, path, form)?;
        self.transport.send(request)
    }

    /// Sends requests built with [`Pve::request`] concurrently; results in request order.
    pub fn send_batch(
        &self,
        requests: Vec<HttpRequest>,
        max_concurrency: u32,
    ) -> Vec<Result<HttpResponse>> {
        self.transport.send_batch(requests, max_concurrency)
    }

    /// The typed error for a non-2xx response to `what`.
    pub fn error(&self, what: &str, response: &HttpResponse) -> Error {
        api_error(what, response.status, &response.body, &self.denied_hint)
    }

    /// Turns a non-2xx response into the matching typed error.
    pub fn check(&self, what: &str, response: HttpResponse) -> Result<HttpResponse> {
        if (200..300).contains(&response.status) {
            Ok(response)
        } else {
            Err(self.error(what, &response))
        }
    }

    /// `GET path` and parse its `data` as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let what = format!("GET {path}");
        let response = self.check(&what, self.send("GET", path, None)?)?;
        parse_data(&what, &response.body)
    }

    /// `GET path` and return its `data`, with typed errors for HTML pages, non-JSON bodies and
    /// answers without `data` (see [`crate::fields`]).
    pub fn get_data(&self, path: &str) -> Result<Value> {
        let what = format!("GET {path}");
        let response = self.check(&what, self.send("GET", path, None)?)?;
        crate::fields::data(&what, &response)
    }

    /// A write (`POST`/`PUT`/`DELETE`); returns the answer's `data` (a UPID or null).
    pub fn write(
        &self,
        method: &str,
        path: &str,
        form: Option<&[(String, String)]>,
    ) -> Result<Value> {
        let what = format!("{method} {path}");
        let response = self.check(&what, self.send(method, path, form)?)?;
        parse_data(&what, &response.body)
    }

    /// A write that may start a task; waits for the task to finish when it does.
    pub fn write_and_wait(
        &self,
        node: &str,
        method: &str,
        path: &str,
        form: Option<&[(String, String)]>,
    ) -> Result<()> {
        let data = self.write(method, path, form)?;
        match task::started_task(&data)? {
            Some(upid) => self.wait_task(node, &upid),
            None => Ok(()),
        }
    }

    /// Polls the task's status until it stops, at most [`MAX_POLLS`] times.
    pub fn wait_task(&self, node: &str, upid: &task::Upid) -> Result<()> {
        let path = format!(
            "/nodes/{}/tasks/{}/status",
            encode::path_segment(node),
            encode::path_segment(&upid.raw)
        );
        for poll in 0..MAX_POLLS {
            if let Some(delay) = task::poll_delay(poll) {
                self.sleep(delay);
            }
            let data: Value = self.get(&path)?;
            match task::task_state(&data)? {
                TaskState::Running => continue,
                TaskState::Succeeded { warnings: None } => return Ok(()),
                TaskState::Succeeded { warnings: Some(w) } => {
                    self.warn(&format!("task {} finished with {w}", upid.label()));
                    return Ok(());
                }
                TaskState::Failed(exit) => {
                    return Err(error::failed(format!(
                        "task {} failed: {exit} ({})",
                        upid.label(),
                        upid.raw
                    )));
                }
            }
        }
        Err(error::transient(format!(
            "task {} is still running after {MAX_POLLS} status checks; follow it in the Proxmox task log ({})",
            upid.label(),
            upid.raw
        )))
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted Proxmox for tests: routes by `METHOD path` and records every request.

    use super::Transport;
    use orch_plugin_sdk::{HttpRequest, HttpResponse, Result, Value, json};
    use std::cell::RefCell;

    type Handler = Box<dyn Fn(&HttpRequest) -> Result<HttpResponse>>;

    /// `assert_eq!` for the SDK's error type, which has no `PartialEq`: compares variant and text.
    macro_rules! assert_error {
        ($actual:expr, $expected:expr $(,)?) => {
            assert_eq!(format!("{:?}", $actual), format!("{:?}", $expected))
        };
    }
    pub(crate) use assert_error;

    /// The fake server.
    pub struct FakePve {
        /// Requests seen, in order.
        pub seen: RefCell<Vec<HttpRequest>>,
        handler: Handler,
    }

    impl FakePve {
        /// A fake whose answers come from `handler(method, path below /api2/json, request)`.
        pub fn new(handler: impl Fn(&str, &str, &HttpRequest) -> HttpResponse + 'static) -> Self {
            FakePve {
                seen: RefCell::new(Vec::new()),
                handler: Box::new(move |req| {
                    let path = req
                        .url
                        .split_once("/api2/json")
                        .map(|(_, p)| p.to_string())
                        .unwrap_or_default();
                    Ok(handler(&req.method, &path, req))
                }),
            }
        }

        /// `METHOD path` of every request seen.
        pub fn calls(&self) -> Vec<String> {
            self.seen
                .borrow()
                .iter()
                .map(|r| {
                    let path = r.url.split_once("/api2/json").map_or("", |(_, p)| p);
                    format!("{} {path}", r.method)
                })
                .collect()
        }
    }

    impl Transport for FakePve {
        fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
            self.seen.borrow_mut().push(request.clone());
            (self.handler)(&request)
        }
    }

    /// A 200 answer `{"data": data}`.
    pub fn ok(data: Value) -> HttpResponse {
        respond(200, json!({ "data": data }))
    }

    /// An error answer in PVE's shape.
    pub fn fail(status: u16, message: &str) -> HttpResponse {
        respond(
            status,
            json!({ "data": null, "message": format!("{message}\n") }),
        )
    }

    fn respond(status: u16, body: Value) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// The header's value in a request.
    pub fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request body as text.
    pub fn body(req: &HttpRequest) -> String {
        String::from_utf8_lossy(req.body.as_deref().unwrap_or_default()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{self, FakePve, assert_error};
    use super::*;
    use orch_plugin_sdk::json;
    use std::cell::Cell;

    fn no_sleep(_: Duration) {}
    fn no_warn(_: &str) {}

    fn ticket_auth() -> Auth {
        Auth::Ticket {
            ticket: "PVE:root@pam:6819A3C2::sig+/=".into(),
            csrf: Some("6819A3C2:csrf".into()),
        }
    }

    #[test]
    fn pve_error_bodies_map_to_typed_errors() {
        let body = |m: &str| json!({"data": null, "message": format!("{m}\n")}).to_string();
        let cases = [
            (401, "authentication failure", "Denied"),
            (
                403,
                "Permission check failed (/vms/101, VM.PowerMgmt)",
                "Denied",
            ),
            (404, "Not Found", "NotFound"),
            (
                500,
                "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist",
                "NotFound",
            ),
            (500, "VM 110 already exists on node 'pve'", "Conflict"),
            (500, "VM 108 already running", "Conflict"),
            (500, "VM 101 is not running", "Conflict"),
            (
                500,
                "detected modified configuration - file changed by other user? Try again.",
                "Conflict",
            ),
            (503, "service unavailable", "Transient"),
            (500, "unable to create VM 110 - no space left", "Failed"),
        ];
        for (status, message, kind) in cases {
            let e = api_error("POST /x", status, body(message).as_bytes(), "run auth");
            // The generated error type has Debug but no PartialEq; its Debug names the variant.
            let shown = format!("{e:?}");
            assert!(
                shown.starts_with(&format!("Error::{kind}(")),
                "{status} {message}: {shown}"
            );
        }
    }

    #[test]
    fn error_text_carries_the_trimmed_message_status_and_request() {
        let e = api_error(
            "POST /nodes/pve/qemu/101/status/stop",
            500,
            br#"{"data":null,"message":"VM 101 is not running\n"}"#,
            "",
        );
        assert_error!(
            e,
            Error::Conflict(
                "POST /nodes/pve/qemu/101/status/stop: VM 101 is not running (HTTP 500)".into()
            )
        );
    }

    #[test]
    fn parameter_errors_are_listed() {
        let body = br#"{"data":null,"message":"Parameter verification failed.\n","errors":{"name":"invalid format - value does not look like a valid DNS name\n"}}"#;
        assert_eq!(
            pve_message(body),
            "Parameter verification failed. (name: invalid format - value does not look like a valid DNS name)"
        );
        assert!(matches!(
            api_error("POST /q", 400, body, ""),
            Error::Failed(_)
        ));
    }

    #[test]
    fn a_596_says_a_cluster_node_did_not_answer_and_is_transient() {
        let e = api_error("GET /nodes/pve2/qemu", 596, br#"{"data":null}"#, "");
        let Error::Transient(text) = e else {
            panic!("not transient: {e:?}")
        };
        assert_eq!(
            text,
            "GET /nodes/pve2/qemu: a cluster node did not answer the proxy (connection timed out); check that every node is up, then retry (HTTP 596)"
        );
    }

    #[test]
    fn a_401_without_message_says_authentication_failure_and_the_hint() {
        let e = api_error("GET /nodes/pve/qemu", 401, b"", "run keebDev02.auth");
        let Error::Denied(text) = e else {
            panic!("not denied: {e:?}")
        };
        assert!(text.contains("authentication failure") && text.contains("run keebDev02.auth"));
    }

    #[test]
    fn non_json_bodies_are_shown_not_parsed() {
        assert_eq!(
            pve_message(b"  <html>bad gateway</html>\n"),
            "an HTML page instead of PVE's JSON"
        );
        assert_eq!(
            pve_message(
                b"<!DOCTYPE html>\n<html><head><TITLE> 502 Bad Gateway </TITLE></head></html>"
            ),
            "an HTML page titled \"502 Bad Gateway\" instead of PVE's JSON"
        );
        assert_eq!(pve_message(b"proxy says no"), "proxy says no");
        assert_eq!(pve_message(br#"{"data":null}"#), "");
        let long = "é".repeat(400);
        assert!(pve_message(long.as_bytes()).len() <= 300);
    }

    #[test]
    fn data_envelope_parsing_is_typed() {
        let vms: Vec<Value> = parse_data("GET /q", br#"{"data":[{"vmid":100}]}"#).unwrap();
        assert_eq!(vms.len(), 1);
        let e = parse_data::<Vec<Value>>("GET /q", br#"{"data":null}"#).unwrap_err();
        assert!(matches!(e, Error::Failed(ref m) if m.starts_with("GET /q:")));
        assert!(parse_data::<Vec<Value>>("GET /q", b"not json").is_err());
    }

    #[test]
    fn api_tokens_are_checked_without_showing_the_secret() {
        let t = parse_api_token("root@pam!orch=0b4c-secret").unwrap();
        assert_eq!(t.token_id, "root@pam!orch");
        assert_eq!(t.user, "root@pam");
        for bad in [
            "root@pam!orch",
            "root@pam=abc",
            "root!orch=abc",
            "root@pam!=abc",
            "@pam!x=y",
            "root@pam!orch=",
        ] {
            let e = parse_api_token(bad).unwrap_err();
            let Error::InvalidArguments(text) = e else {
                panic!("{bad}")
            };
            assert!(!text.contains("abc"), "{text}");
        }
    }

    #[test]
    fn api_urls_are_normalized() {
        assert_eq!(
            normalize_api_url("https://10.0.0.4:8006/").unwrap(),
            "https://10.0.0.4:8006"
        );
        assert_eq!(
            normalize_api_url(" https://pve:8006/api2/json/ ").unwrap(),
            "https://pve:8006"
        );
        assert!(normalize_api_url("10.0.0.4:8006").is_err());
        assert!(normalize_api_url("https://").is_err());
    }

    #[test]
    fn ticket_reads_send_the_cookie_and_writes_add_csrf() {
        let fake = FakePve::new(|_, _, _| fake::ok(Value::Null));
        let pve = Pve::new(
            &fake,
            "https://pve:8006",
            ticket_auth(),
            "hint",
            no_sleep,
            &no_warn,
        );
        let get = pve.request("GET", "/nodes/pve/qemu", None).unwrap();
        assert_eq!(get.url, "https://pve:8006/api2/json/nodes/pve/qemu");
        assert_eq!(
            fake::header(&get, "cookie"),
            Some("PVEAuthCookie=PVE:root@pam:6819A3C2::sig+/=")
        );
        assert_eq!(fake::header(&get, "CSRFPreventionToken"), None);
        assert!(get.body.is_none());

        let form = [("vmid".to_string(), "110".to_string())];
        let post = pve.request("POST", "/nodes/pve/qemu", Some(&form)).unwrap();
        assert_eq!(
            fake::header(&post, "CSRFPreventionToken"),
            Some("6819A3C2:csrf")
        );
        assert_eq!(
            fake::header(&post, "content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(fake::body(&post), "vmid=110");
    }

    #[test]
    fn a_write_without_csrf_is_refused_before_sending() {
        let fake = FakePve::new(|_, _, _| fake::ok(Value::Null));
        let auth = Auth::Ticket {
            ticket: "PVE:t".into(),
            csrf: None,
        };
        let pve = Pve::new(
            &fake,
            "https://pve:8006",
            auth,
            "run auth",
            no_sleep,
            &no_warn,
        );
        let e = pve
            .write("DELETE", "/nodes/pve/qemu/101", None)
            .unwrap_err();
        assert!(matches!(e, Error::Denied(ref m) if m.contains("run auth")));
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn tokens_go_in_the_authorization_header_without_csrf() {
        let fake = FakePve::new(|_, _, _| fake::ok(Value::Null));
        let pve = Pve::new(
            &fake,
            "https://pve:8006",
            Auth::Token("root@pam!orch=s3cret".into()),
            "",
            no_sleep,
            &no_warn,
        );
        let post = pve.request("POST", "/x", Some(&[])).unwrap();
        assert_eq!(
            fake::header(&post, "authorization"),
            Some("PVEAPIToken=root@pam!orch=s3cret")
        );
        assert_eq!(fake::header(&post, "cookie"), None);
        assert_eq!(fake::header(&post, "CSRFPreventionToken"), None);
    }

    #[test]
    fn task_waiting_polls_the_urlencoded_upid_until_stopped() {
        let polls = std::rc::Rc::new(Cell::new(0));
        let counter = polls.clone();
        let fake = FakePve::new(move |method, path, _| match (method, path) {
            ("POST", "/nodes/pve/qemu/108/status/start") => {
                fake::ok(json!("UPID:pve:0001:0002:6819A3C2:qmstart:108:root@pam:"))
            }
            ("GET", p) if p.starts_with("/nodes/pve/tasks/") => {
                counter.set(counter.get() + 1);
                if counter.get() < 3 {
                    fake::ok(json!({"status": "running"}))
                } else {
                    fake::ok(json!({"status": "stopped", "exitstatus": "OK"}))
                }
            }
            _ => fake::fail(404, "no route"),
        });
        thread_local! { static SLEPT: Cell<u32> = const { Cell::new(0) }; }
        fn count_sleep(_: Duration) {
            SLEPT.with(|s| s.set(s.get() + 1));
        }
        let pve = Pve::new(
            &fake,
            "https://pve:8006",
            ticket_auth(),
            "",
            count_sleep,
            &no_warn,
        );
        pve.write_and_wait("pve", "POST", "/nodes/pve/qemu/108/status/start", Some(&[]))
            .unwrap();
        assert_eq!(polls.get(), 3);
        // Only the third poll waited.
        assert_eq!(SLEPT.with(Cell::get), 1);
        assert_eq!(
            fake.calls()[1],
            "GET /nodes/pve/tasks/UPID%3Apve%3A0001%3A0002%3A6819A3C2%3Aqmstart%3A108%3Aroot%40pam%3A/status"
        );
    }

    #[test]
    fn failed_task_carries_the_exit_status() {
        let fake = FakePve::new(|method, _, _| match method {
            "DELETE" => fake::ok(json!("UPID:pve:1:2:3:qmdestroy:101:root@pam:")),
            _ => fake::ok(json!({"status": "stopped", "exitstatus": "VM is locked (backup)"})),
        });
        let pve = Pve::new(
            &fake,
            "https://pve:8006",
            ticket_auth(),
            "",
            no_sleep,
            &no_warn,
        );
        let e = pve
            .write_and_wait("pve", "DELETE", "/nodes/pve/qemu/101", None)
            .unwrap_err();
        assert!(
            matches!(e, Error::Failed(ref m) if m.contains("qmdestroy 101 failed: VM is locked (backup)")),
            "{e:?}"
        );
    }

    #[test]
    fn a_task_that_never_stops_gives_up_after_max_polls() {
        let fake = FakePve::new(|method, _, _| match method {
            "POST" => fake::ok(json!("UPID:pve:1:2:3:qmstart:108:root@pam:")),
            _ => fake::ok(json!({"status": "running"})),
        });
        let pve = Pve::new(
            &fake,
            "https://pve:8006",
            ticket_auth(),
            "",
            no_sleep,
            &no_warn,
        );
        let e = pve
            .write_and_wait("pve", "POST", "/x", Some(&[]))
            .unwrap_err();
        assert!(matches!(e, Error::Transient(_)));
        assert_eq!(fake.calls().len(), 1 + MAX_POLLS as usize);
    }
}
