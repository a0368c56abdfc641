//! `proxmox/node`: logs in to a Proxmox node and records the ticket the fleet model uses.

use crate::pve::{self, Auth, Pve};
use orch_plugin_sdk::{Error, JsonSchema, Result, Value, error};
use serde::{Deserialize, Serialize};

fn default_realm() -> String {
    "pam".into()
}

/// Global arguments of `proxmox/node`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGlobals {
    /// Base URL of the node's API, e.g. `https://10.0.0.4:8006`.
    pub api_url: String,
    /// User name without realm (`root`), or with it (`root@pam`).
    pub username: String,
    /// Password; usually `${{ vault.get("proxmox-vault", "password") }}`. Give this or `apiToken`.
    #[serde(default)]
    pub password: Option<String>,
    /// Authentication realm appended to a bare `username`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// The node name, e.g. `keeb-dev-02`.
    pub node: String,
    /// API token `USER@REALM!ID=SECRET`, used instead of a password (wins when both are set).
    #[serde(default)]
    pub api_token: Option<String>,
    /// Accept the node's self-signed certificate.
    #[serde(default)]
    pub insecure_tls: bool,
    /// SHA-256 fingerprint (hex) of the node's certificate, pinned on every request.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// The `node` resource: what the fleet model needs to call the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeResource {
    /// The `PVEAuthCookie` ticket; null when an API token is used (the token is never stored).
    /// `writeOnly`: `orch data` shows that it changed, never its value.
    #[schemars(extend("writeOnly" = true))]
    pub ticket: Option<String>,
    /// The `CSRFPreventionToken` for writes; null with an API token.
    #[schemars(extend("writeOnly" = true))]
    pub csrf_token: Option<String>,
    /// `user@realm` the ticket or token belongs to.
    pub username: String,
    /// True when the fleet should authenticate with its own `apiToken` instead of the ticket.
    pub api_token: bool,
    /// The node name.
    pub node: String,
    /// When the ticket was issued or the token verified (RFC 3339, UTC).
    pub timestamp: String,
}

#[derive(Deserialize)]
struct TicketData {
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default, rename = "CSRFPreventionToken")]
    csrf: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default, rename = "NeedTFA")]
    need_tfa: Option<Value>,
}

/// `user@realm` from the globals.
pub fn user_id(globals: &NodeGlobals) -> String {
    let user = globals.username.trim();
    if user.contains('@') {
        user.to_string()
    } else {
        format!("{user}@{}", globals.realm.trim())
    }
}

/// How `auth` will authenticate, decided from the globals before any request.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    /// Ask for a ticket with this user and password.
    Password {
        /// `user@realm`.
        user: String,
        /// The password.
        password: String,
    },
    /// Verify this API token.
    Token {
        /// The whole token.
        token: String,
        /// Its parsed, showable parts.
        parsed: pve::ApiToken,
    },
}

/// Chooses the login from the globals; an API token wins over a password.
pub fn login(globals: &NodeGlobals) -> Result<Login> {
    if let Some(token) = globals
        .api_token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        let parsed = pve::parse_api_token(token)?;
        return Ok(Login::Token {
            token: token.trim().to_string(),
            parsed,
        });
    }
    match globals.password.as_deref() {
        Some(p) if !p.is_empty() => Ok(Login::Password {
            user: user_id(globals),
            password: p.to_string(),
        }),
        _ => Err(error::invalid(format!(
            "proxmox/node needs `password` or `apiToken` to log in as {}; set one in globalArguments \
             (e.g. password: '${{{{ vault.get(\"proxmox-vault\", \"password\") }}}}')",
            user_id(globals)
        ))),
    }
}

/// The request `auth` would send first, for dry runs and logs.
pub fn first_request(login: &Login) -> &'static str {
    match login {
        Login::Password { .. } => "POST /access/ticket",
        Login::Token { .. } => "GET /version",
    }
}

/// Logs in (or verifies the token) and returns the `node` resource to write.
pub fn authenticate(
    transport: &dyn pve::Transport,
    api_url: &str,
    globals: &NodeGlobals,
    login: Login,
    timestamp: String,
    warn: &dyn Fn(&str),
) -> Result<NodeResource> {
    // Logging in starts no task, so nothing ever waits.
    fn no_sleep(_: std::time::Duration) {}
    match login {
        Login::Password { user, password } => {
            let client = Pve::new(transport, api_url, Auth::Anonymous, "", no_sleep, warn);
            let form = [
                ("username".to_string(), user.clone()),
                ("password".to_string(), password),
            ];
            let path = "/access/ticket";
            let response = client.send("POST", path, Some(&form))?;
            if response.status == 401 {
                return Err(Error::Denied(format!(
                    "Proxmox rejected the credentials for {user}: {}",
                    message_or(&response.body, "authentication failure")
                )));
            }
            let response = client.check(&format!("POST {path}"), response)?;
            let data: TicketData = pve::parse_data(&format!("POST {path}"), &response.body)?;
            if data.need_tfa.as_ref().is_some_and(|v| v != &Value::from(0)) {
                return Err(Error::Denied(format!(
                    "{user} needs a second factor, which orch cannot answer; use an API token (apiToken) instead"
                )));
            }
            let ticket = data.ticket.filter(|t| !t.is_empty()).ok_or_else(|| {
                error::failed(format!("POST {path}: Proxmox's answer has no ticket"))
            })?;
            let csrf = data.csrf.filter(|c| !c.is_empty()).ok_or_else(|| {
                error::failed(format!(
                    "POST {path}: Proxmox's answer has no CSRFPreventionToken"
                ))
            })?;
            Ok(NodeResource {
                ticket: Some(ticket),
                csrf_token: Some(csrf),
                username: data.username.unwrap_or(user),
                api_token: false,
                node: globals.node.clone(),
                timestamp,
            })
        }
        Login::Token { token, parsed } => {
            let client = Pve::new(transport, api_url, Auth::Token(token), "", no_sleep, warn);
            let path = "/version";
            let response = client.send("GET", path, None)?;
            if response.status == 401 {
                return Err(Error::Denied(format!(
                    "Proxmox rejected the API token {}: {}",
                    parsed.token_id,
                    message_or(&response.body, "authentication failure")
                )));
            }
            client.check(&format!("GET {path}"), response)?;
            Ok(NodeResource {
                ticket: None,
                csrf_token: None,
                username: parsed.user,
                api_token: true,
                node: globals.node.clone(),
                timestamp,
            })
        }
    }
}

fn message_or(body: &[u8], fallback: &str) -> String {
    let message = pve::pve_message(body);
    if message.is_empty() || message.starts_with('{') {
        fallback.to_string()
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;
    use crate::pve::fake::{self, FakePve, assert_error};
    use orch_plugin_sdk::json;

    fn globals() -> NodeGlobals {
        serde_json::from_value(json!({
            "apiUrl": "https://10.0.0.4:8006",
            "username": "root",
            "password": "p@ss word&=",
            "node": "keeb-dev-02",
            "insecureTls": true
        }))
        .expect("globals")
    }

    fn no_warn(_: &str) {}

    #[test]
    fn globals_default_the_realm_and_reject_unknown_fields() {
        let g = globals();
        assert_eq!(g.realm, "pam");
        assert_eq!(user_id(&g), "root@pam");
        let bad = serde_json::from_value::<NodeGlobals>(json!({
            "apiUrl": "https://x", "username": "root", "node": "n", "pasword": "typo"
        }));
        assert!(bad.is_err());
    }

    #[test]
    fn password_login_posts_the_form_and_returns_the_ticket() {
        let fake = FakePve::new(|method, path, req| {
            assert_eq!((method, path), ("POST", "/access/ticket"));
            assert_eq!(
                fake::body(req),
                format!(
                    "username=root@pam&password={}",
                    encode::form_component("p@ss word&=")
                )
            );
            assert_eq!(fake::header(req, "cookie"), None);
            fake::ok(json!({
                "ticket": "PVE:root@pam:6819A3C2::sig",
                "CSRFPreventionToken": "6819A3C2:tok",
                "username": "root@pam"
            }))
        });
        let g = globals();
        let login = login(&g).unwrap();
        let r = authenticate(
            &fake,
            "https://10.0.0.4:8006",
            &g,
            login,
            "T".into(),
            &no_warn,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "ticket": "PVE:root@pam:6819A3C2::sig",
                "csrfToken": "6819A3C2:tok",
                "username": "root@pam",
                "apiToken": false,
                "node": "keeb-dev-02",
                "timestamp": "T"
            })
        );
    }

    #[test]
    fn wrong_password_is_denied_with_pves_message() {
        let fake = FakePve::new(|_, _, _| fake::fail(401, "authentication failure"));
        let g = globals();
        let e = authenticate(
            &fake,
            "https://h",
            &g,
            login(&g).unwrap(),
            "T".into(),
            &no_warn,
        )
        .unwrap_err();
        assert_error!(
            e,
            Error::Denied(
                "Proxmox rejected the credentials for root@pam: authentication failure".into()
            )
        );
    }

    #[test]
    fn wrong_password_with_empty_body_still_says_authentication_failure() {
        let fake = FakePve::new(|_, _, _| orch_plugin_sdk::HttpResponse {
            status: 401,
            headers: vec![],
            body: br#"{"data":null}"#.to_vec(),
        });
        let g = globals();
        let e = authenticate(
            &fake,
            "https://h",
            &g,
            login(&g).unwrap(),
            "T".into(),
            &no_warn,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Denied(ref m) if m.ends_with(": authentication failure")));
    }

    #[test]
    fn other_failures_carry_status_and_message() {
        let fake = FakePve::new(|_, _, _| fake::fail(500, "realm 'pom' does not allow logins"));
        let g = globals();
        let e = authenticate(
            &fake,
            "https://h",
            &g,
            login(&g).unwrap(),
            "T".into(),
            &no_warn,
        )
        .unwrap_err();
        assert_error!(
            e,
            Error::Failed(
                "POST /access/ticket: realm 'pom' does not allow logins (HTTP 500)".into()
            )
        );
    }

    #[test]
    fn answer_without_ticket_is_a_typed_failure() {
        let fake = FakePve::new(|_, _, _| fake::ok(json!({"username": "root@pam"})));
        let g = globals();
        let e = authenticate(
            &fake,
            "https://h",
            &g,
            login(&g).unwrap(),
            "T".into(),
            &no_warn,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Failed(ref m) if m.contains("no ticket")));
        let fake = FakePve::new(|_, _, _| fake::ok(json!("garbage")));
        assert!(matches!(
            authenticate(
                &fake,
                "https://h",
                &g,
                login(&g).unwrap(),
                "T".into(),
                &no_warn
            ),
            Err(Error::Failed(_))
        ));
    }

    #[test]
    fn two_factor_users_are_told_to_use_a_token() {
        let fake = FakePve::new(|_, _, _| {
            fake::ok(json!({"ticket": "PVE:!tfa!x", "CSRFPreventionToken": "c", "NeedTFA": 1}))
        });
        let g = globals();
        let e = authenticate(
            &fake,
            "https://h",
            &g,
            login(&g).unwrap(),
            "T".into(),
            &no_warn,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Denied(ref m) if m.contains("apiToken")));
    }

    #[test]
    fn token_login_verifies_and_never_stores_the_token() {
        let fake = FakePve::new(|method, path, req| {
            assert_eq!((method, path), ("GET", "/version"));
            assert_eq!(
                fake::header(req, "authorization"),
                Some("PVEAPIToken=root@pam!orch=4f1c-secret")
            );
            fake::ok(json!({"version": "8.2.4", "release": "8.2"}))
        });
        let mut g = globals();
        g.password = None;
        g.api_token = Some("root@pam!orch=4f1c-secret".into());
        let r = authenticate(
            &fake,
            "https://h",
            &g,
            login(&g).unwrap(),
            "T".into(),
            &no_warn,
        )
        .unwrap();
        let stored = serde_json::to_string(&r).unwrap();
        assert!(!stored.contains("4f1c-secret"));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"ticket": null, "csrfToken": null, "username": "root@pam", "apiToken": true,
                   "node": "keeb-dev-02", "timestamp": "T"})
        );
    }

    #[test]
    fn rejected_token_is_denied_without_the_secret() {
        let fake = FakePve::new(|_, _, _| fake::fail(401, "invalid token value!"));
        let mut g = globals();
        g.api_token = Some("root@pam!orch=4f1c-secret".into());
        let e = authenticate(
            &fake,
            "https://h",
            &g,
            login(&g).unwrap(),
            "T".into(),
            &no_warn,
        )
        .unwrap_err();
        let Error::Denied(text) = e else {
            panic!("{e:?}")
        };
        assert!(
            text.contains("root@pam!orch") && !text.contains("4f1c-secret"),
            "{text}"
        );
    }

    #[test]
    fn missing_credentials_are_invalid_arguments() {
        let mut g = globals();
        g.password = Some(String::new());
        assert!(matches!(login(&g), Err(Error::InvalidArguments(_))));
        g.password = None;
        assert!(matches!(login(&g), Err(Error::InvalidArguments(_))));
    }

    #[test]
    fn explicit_realm_in_username_is_kept() {
        let mut g = globals();
        g.username = "orch@pve".into();
        g.realm = "pam".into();
        assert_eq!(user_id(&g), "orch@pve");
    }
}
