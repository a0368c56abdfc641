//! Webhooks: `POST /hooks/<path>` signed GitHub-style (`X-Hub-Signature-256: sha256=<hex>`,
//! HMAC-SHA256 of the body with the hook's secret). A request with a missing or bad signature
//! starts nothing; a good one runs the hook's workflow with the body as `inputs.body`.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::expr::{DataSource, Evaluator, Vars};
use crate::repo::Repo;
use crate::workflow::Trigger;

/// The signature header (compared case-insensitively).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The largest body a hook accepts (1 MiB, GitHub's payloads stay far below).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a signature does not check out. Never carries the secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("missing {SIGNATURE_HEADER} header; sign the body with the hook's secret")]
    Missing,
    /// Not `sha256=<64 hex digits>`.
    #[error("malformed {SIGNATURE_HEADER} header; expected sha256=<64 hex digits>")]
    Malformed,
    /// Well formed, but not the body's HMAC with this secret.
    #[error("the signature does not match the body; check the hook's secret")]
    Mismatch,
}

/// Checks `signature` (the header's value, `sha256=<hex>`) against the HMAC-SHA256 of `body`
/// with `secret`, in constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: Option<&str>) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?.trim();
    let hex_digits = signature
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let tag = hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)?;
    if tag.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
}

/// A refused webhook request: the HTTP status and a message safe to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WebhookError {
    /// 401, 404, 413 or 500.
    pub status: u16,
    /// What went wrong; never holds the secret.
    pub message: String,
}

impl WebhookError {
    fn new(status: u16, message: impl Into<String>) -> WebhookError {
        WebhookError {
            status,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
struct Hook {
    workflow: String,
    trigger: String,
    secret: String,
}

/// The webhooks of a repository, by path.
#[derive(Clone, Debug, Default)]
pub struct Webhooks {
    hooks: BTreeMap<String, Hook>,
}

impl Webhooks {
    /// Every webhook trigger of every loaded workflow (the first one wins a path used twice;
    /// `orch check` reports the duplicate).
    pub fn from_repo(repo: &Repo) -> Webhooks {
        let mut hooks = BTreeMap::new();
        for wf in repo.workflows.values() {
            for (i, trigger) in wf.triggers.iter().enumerate() {
                if let Trigger::Webhook { webhook } = trigger {
                    hooks.entry(webhook.path.clone()).or_insert_with(|| Hook {
                        workflow: wf.name.clone(),
                        trigger: format!("triggers[{i}]"),
                        secret: webhook.secret.clone(),
                    });
                }
            }
        }
        Webhooks { hooks }
    }

    /// The hook paths with their workflow and trigger.
    pub fn list(&self) -> Vec<(String, String, String)> {
        self.hooks
            .iter()
            .map(|(p, h)| (p.clone(), h.workflow.clone(), h.trigger.clone()))
            .collect()
    }

    /// Checks a request to `POST /hooks/<path>` and returns the workflow to run with its
    /// inputs (`{"body": <JSON if the body is JSON, else its text>}`). Unknown path: 404;
    /// missing or bad signature: 401; body over [`MAX_BODY_BYTES`]: 413. `data` evaluates the
    /// secret expression (the vault); the secret never appears in an error or log.
    pub fn handle<K, V>(
        &self,
        path: &str,
        headers: impl IntoIterator<Item = (K, V)>,
        body: &[u8],
        data: &dyn DataSource,
    ) -> Result<(String, Map<String, Value>), WebhookError>
    where
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let path = path.trim_matches('/');
        let Some(hook) = self.hooks.get(path) else {
            return Err(WebhookError::new(
                404,
                format!("no webhook at /hooks/{}", crate::excerpt::excerpt(path)),
            ));
        };
        if body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::new(
                413,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        let signature = headers
            .into_iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(SIGNATURE_HEADER))
            .map(|(_, v)| String::from_utf8_lossy(v.as_ref()).into_owned());
        let secret = self.secret(hook, data)?;
        if let Err(e) = verify(secret.as_bytes(), body, signature.as_deref()) {
            tracing::warn!(path, workflow = %hook.workflow, reason = %e, "webhook refused");
            return Err(WebhookError::new(401, e.to_string()));
        }
        let mut inputs = Map::new();
        inputs.insert("body".to_string(), body_value(body));
        Ok((hook.workflow.clone(), inputs))
    }

    fn secret(&self, hook: &Hook, data: &dyn DataSource) -> Result<String, WebhookError> {
        let evaluator = Evaluator::new();
        let scope = evaluator.scope(data, Vars::default());
        let field = format!("{}.webhook.secret", hook.trigger);
        let value = scope.resolve_str(&hook.secret, &field);
        let redactor = crate::vault::Redactor::default();
        for s in evaluator.secrets() {
            redactor.add(&s);
        }
        let failed = |why: String| {
            let why = redactor.redact(&why);
            tracing::error!(workflow = %hook.workflow, trigger = %hook.trigger, error = %why, "webhook secret unavailable");
            WebhookError::new(
                500,
                format!(
                    "the secret of this hook cannot be read ({why}); see workflow `{}` {}",
                    hook.workflow, field
                ),
            )
        };
        match value {
            Ok(Value::String(s)) if !s.is_empty() => Ok(s),
            Ok(_) => Err(failed("it is not a non-empty string".to_string())),
            Err(e) => Err(failed(e.to_string())),
        }
    }
}

/// The body as the workflow sees it: parsed JSON, or the text.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_good_signature_is_accepted() {
        let sig = sign(b"s3cret", b"{\"ref\":\"main\"}");
        assert_eq!(verify(b"s3cret", b"{\"ref\":\"main\"}", Some(&sig)), Ok(()));
    }

    #[test]
    fn a_signature_of_another_body_or_secret_is_refused() {
        let sig = sign(b"s3cret", b"body");
        assert_eq!(
            verify(b"s3cret", b"bodY", Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", b"body", Some(&sig)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_missing_or_malformed_signature_is_refused() {
        assert_eq!(verify(b"k", b"b", None), Err(SignatureError::Missing));
        let sig = sign(b"k", b"b");
        let short = &sig[..sig.len() - 2];
        assert_eq!(
            verify(b"k", b"b", Some(short)),
            Err(SignatureError::Malformed)
        );
        let long = format!("{sig}00");
        assert_eq!(
            verify(b"k", b"b", Some(&long)),
            Err(SignatureError::Malformed)
        );
        let sha1 = sig.replace("sha256=", "sha1=");
        assert_eq!(
            verify(b"k", b"b", Some(&sha1)),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"k", b"b", Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_json_body_is_parsed_and_any_other_is_text() {
        assert_eq!(body_value(b"{\"a\":1}"), serde_json::json!({"a": 1}));
        assert_eq!(body_value(b"a=1&b=2"), Value::String("a=1&b=2".into()));
    }

    struct Vault;

    impl DataSource for Vault {
        fn model_exists(&self, _model: &str) -> bool {
            false
        }
        fn model_names(&self) -> Vec<String> {
            Vec::new()
        }
        fn model_resources(&self, _model: &str) -> Result<Vec<crate::expr::ResourceData>, String> {
            Ok(Vec::new())
        }
        fn vault_get(&self, vault: &str, key: &str) -> Result<Option<String>, String> {
            Ok((vault == "hooks" && key == "github").then(|| "hook-s3cret-value".to_string()))
        }
    }

    fn hooks(secret: &str) -> Webhooks {
        let mut hooks = BTreeMap::new();
        hooks.insert(
            "deploy".to_string(),
            Hook {
                workflow: "deploy-site".into(),
                trigger: "triggers[1]".into(),
                secret: secret.into(),
            },
        );
        Webhooks { hooks }
    }

    const SECRET: &str = "${{ vault.get('hooks', 'github') }}";

    #[test]
    fn a_signed_request_runs_the_workflow_with_the_body() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let sig = sign(b"hook-s3cret-value", body);
        let (workflow, inputs) = hooks(SECRET)
            .handle(
                "deploy",
                [("X-Hub-Signature-256", sig.as_str())],
                body,
                &Vault,
            )
            .unwrap();
        assert_eq!(workflow, "deploy-site");
        assert_eq!(
            Value::Object(inputs),
            serde_json::json!({"body": {"ref": "refs/heads/main"}})
        );
    }

    #[test]
    fn unknown_path_is_404_and_bad_signature_401_without_the_secret() {
        let body = b"payload";
        let err = hooks(SECRET)
            .handle("nope", [("x-hub-signature-256", "sha256=00")], body, &Vault)
            .unwrap_err();
        assert_eq!(err.status, 404);
        let wrong = sign(b"guess", body);
        for headers in [vec![], vec![("x-hub-signature-256", wrong.as_str())]] {
            let err = hooks(SECRET)
                .handle("deploy", headers, body, &Vault)
                .unwrap_err();
            assert_eq!(err.status, 401, "{err}");
            assert!(!err.message.contains("hook-s3cret-value"), "{err}");
        }
    }

    #[test]
    fn a_body_over_the_cap_is_refused_before_anything_else() {
        let body = vec![b'x'; MAX_BODY_BYTES + 1];
        let sig = sign(b"hook-s3cret-value", &body);
        let err = hooks(SECRET)
            .handle(
                "deploy",
                [("x-hub-signature-256", sig.as_str())],
                &body,
                &Vault,
            )
            .unwrap_err();
        assert_eq!(err.status, 413);
        let body = vec![b'x'; MAX_BODY_BYTES];
        let sig = sign(b"hook-s3cret-value", &body);
        assert!(
            hooks(SECRET)
                .handle(
                    "deploy",
                    [("x-hub-signature-256", sig.as_str())],
                    &body,
                    &Vault
                )
                .is_ok()
        );
    }

    #[test]
    fn a_missing_vault_key_is_500_and_names_no_secret() {
        let err = hooks("${{ vault.get('hooks', 'gitlab') }}")
            .handle(
                "deploy",
                [("x-hub-signature-256", "sha256=00")],
                b"b",
                &Vault,
            )
            .unwrap_err();
        assert_eq!(err.status, 500, "{err}");
        assert!(err.message.contains("triggers[1].webhook.secret"), "{err}");
    }
}
