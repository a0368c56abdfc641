//! API tokens for `orch serve`: made by `orch token create`, kept in `.orch/tokens.json` as the
//! SHA-256 of the token only (the token is shown once, when it is made), so a copy of the file
//! does not let anyone in. The file is replaced atomically (temp file + rename, mode 0600) and
//! read again on every check, so a revoke takes effect on a running server at once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name of the token list under `.orch/`.
pub const TOKENS_FILE: &str = "tokens.json";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every GET.
    Read,
    /// Read, plus starting and cancelling workflow runs (only its workflows when limited).
    Run,
    /// Everything, including method runs and `eval`.
    Admin,
}

impl Scope {
    /// The scope's name as written in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Run => "run",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "run" => Ok(Scope::Run),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown scope `{other}`: use read, run or admin")),
        }
    }
}

/// One token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenEntry {
    /// The name given at creation (unique).
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// With scope `run`: the only workflows it may start (`None`: every one).
    #[serde(default)]
    pub workflows: Option<Vec<String>>,
    /// Hex SHA-256 of the token text.
    pub sha256: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

/// The file's layout.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

/// What can go wrong with tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file cannot be read or written.
    #[error("{path}: {why}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        why: String,
    },
    /// The token file is not what orch writes.
    #[error("{path}: {why}; fix or delete the file and create the tokens again")]
    Corrupt {
        /// The file.
        path: String,
        /// The parse error (with line and column).
        why: String,
    },
    /// A bad name or scope combination.
    #[error("{0}")]
    Invalid(String),
    /// No token of this name.
    #[error("no token named `{0}` (see `orch token list`)")]
    NotFound(String),
}

/// The tokens of one repository (`.orch/tokens.json`).
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

/// The stored form of a token's text.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token text: `orch_` + 32 random bytes in base64url.
fn new_token_text() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)
        .map_err(|e| TokenError::Invalid(format!("no randomness for a token: {e}")))?;
    Ok(format!("orch_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

impl TokenStore {
    /// The token list of the repository whose state directory is `orch_dir`.
    pub fn in_dir(orch_dir: &Path) -> Self {
        TokenStore {
            path: orch_dir.join(TOKENS_FILE),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, why: impl std::fmt::Display) -> TokenError {
        TokenError::Io {
            path: self.path.display().to_string(),
            why: why.to_string(),
        }
    }

    /// Every token, in creation order; none when the file does not exist.
    pub fn list(&self) -> Result<Vec<TokenEntry>, TokenError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(format!("cannot read: {e}"))),
        };
        let file: TokenFile = serde_json::from_str(&text).map_err(|e| TokenError::Corrupt {
            path: self.path.display().to_string(),
            why: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        Ok(file.tokens)
    }

    fn save(&self, tokens: Vec<TokenEntry>) -> Result<(), TokenError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| self.io(format!("cannot create its directory: {e}")))?;
        let body = serde_json::to_vec_pretty(&TokenFile { tokens })
            .map_err(|e| self.io(format!("cannot encode: {e}")))?;
        let tmp = dir.join(format!(".{TOKENS_FILE}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&tmp).and_then(|mut f| {
            f.write_all(&body)?;
            f.write_all(b"\n")?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &self.path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io(format!("cannot write: {e}")));
        }
        Ok(())
    }

    /// Makes a token; returns its entry and its text, which is never stored and cannot be
    /// shown again.
    pub fn create(
        &self,
        name: &str,
        scope: Scope,
        workflows: Option<Vec<String>>,
    ) -> Result<(TokenEntry, String), TokenError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(TokenError::Invalid(format!(
                "token name {name:?}: use letters, digits, `-`, `_` and `.` only (e.g. chat-bot)"
            )));
        }
        if workflows.is_some() && scope != Scope::Run {
            return Err(TokenError::Invalid(format!(
                "--workflows limits a `run` token; a `{}` token cannot be limited to workflows",
                scope.as_str()
            )));
        }
        if let Some(w) = &workflows
            && (w.is_empty() || w.iter().any(|n| n.trim().is_empty()))
        {
            return Err(TokenError::Invalid(
                "--workflows: give workflow names separated by commas, e.g. sync-fleet,backup"
                    .into(),
            ));
        }
        let mut tokens = self.list()?;
        if tokens.iter().any(|t| t.name == name) {
            return Err(TokenError::Invalid(format!(
                "a token named `{name}` exists; revoke it first (`orch token revoke {name}`) or pick another name"
            )));
        }
        let text = new_token_text()?;
        let entry = TokenEntry {
            name: name.to_string(),
            scope,
            workflows,
            sha256: hash_token(&text),
            created_at: crate::store::now_rfc3339(),
        };
        tokens.push(entry.clone());
        self.save(tokens)?;
        Ok((entry, text))
    }

    /// Removes the token named `name`; requests with it are refused from now on.
    pub fn revoke(&self, name: &str) -> Result<TokenEntry, TokenError> {
        let mut tokens = self.list()?;
        let Some(at) = tokens.iter().position(|t| t.name == name) else {
            return Err(TokenError::NotFound(name.to_string()));
        };
        let removed = tokens.remove(at);
        self.save(tokens)?;
        Ok(removed)
    }

    /// The token whose text is `token`, if one is stored.
    pub fn find(&self, token: &str) -> Result<Option<TokenEntry>, TokenError> {
        let hash = hash_token(token);
        Ok(self.list()?.into_iter().find(|t| t.sha256 == hash))
    }
}

impl TokenEntry {
    /// Whether this token may start a run of workflow `name`.
    pub fn may_run_workflow(&self, name: &str) -> bool {
        match self.scope {
            Scope::Admin => true,
            Scope::Run => self
                .workflows
                .as_ref()
                .is_none_or(|w| w.iter().any(|n| n == name)),
            Scope::Read => false,
        }
    }

    /// Whether this token may run a single method (not a limited `run` token).
    pub fn may_run_method(&self) -> bool {
        match self.scope {
            Scope::Admin => true,
            Scope::Run => self.workflows.is_none(),
            Scope::Read => false,
        }
    }

    /// The entry as `orch token list --json` and `whoami` show it (no hash).
    pub fn public_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "scope": self.scope.as_str(),
            "workflows": self.workflows,
            "createdAt": self.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::in_dir(&dir.path().join(".orch"));
        (dir, store)
    }

    #[test]
    fn a_created_token_is_found_by_its_text_and_only_its_hash_is_stored() {
        let (_dir, store) = store();
        let (entry, text) = store.create("bot", Scope::Run, None).unwrap();
        assert!(text.starts_with("orch_"), "{text}");
        assert_eq!(text.len(), "orch_".len() + 43, "32 bytes in base64url");
        let stored = std::fs::read_to_string(store.path()).unwrap();
        assert!(!stored.contains(&text), "the token itself is never stored");
        assert!(stored.contains(&entry.sha256));
        assert_eq!(store.find(&text).unwrap(), Some(entry));
        assert_eq!(store.find("orch_wrong").unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_token_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, store) = store();
        store.create("bot", Scope::Read, None).unwrap();
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_revoked_token_is_no_longer_found() {
        let (_dir, store) = store();
        let (_, a) = store.create("a", Scope::Admin, None).unwrap();
        let (_, b) = store.create("b", Scope::Read, None).unwrap();
        store.revoke("a").unwrap();
        assert_eq!(store.find(&a).unwrap(), None);
        assert!(store.find(&b).unwrap().is_some(), "the other token stays");
        assert!(matches!(store.revoke("a"), Err(TokenError::NotFound(_))));
    }

    #[test]
    fn names_are_unique_and_plain() {
        let (_dir, store) = store();
        store.create("bot", Scope::Read, None).unwrap();
        let again = store.create("bot", Scope::Read, None).unwrap_err();
        assert!(again.to_string().contains("exists"), "{again}");
        let bad = store.create("a b", Scope::Read, None).unwrap_err();
        assert!(bad.to_string().contains("letters, digits"), "{bad}");
    }

    #[test]
    fn only_a_run_token_is_limited_to_workflows() {
        let (_dir, store) = store();
        let err = store
            .create("x", Scope::Admin, Some(vec!["sync-fleet".into()]))
            .unwrap_err();
        assert!(err.to_string().contains("--workflows"), "{err}");
        let (limited, _) = store
            .create("bot", Scope::Run, Some(vec!["sync-fleet".into()]))
            .unwrap();
        assert!(limited.may_run_workflow("sync-fleet"));
        assert!(!limited.may_run_workflow("decommission"));
        assert!(
            !limited.may_run_method(),
            "no method runs for a limited token"
        );
        let (open, _) = store.create("ci", Scope::Run, None).unwrap();
        assert!(open.may_run_workflow("decommission") && open.may_run_method());
        let (read, _) = store.create("ro", Scope::Read, None).unwrap();
        assert!(!read.may_run_workflow("sync-fleet") && !read.may_run_method());
    }

    #[test]
    fn a_broken_token_file_names_the_file_and_line() {
        let (_dir, store) = store();
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        std::fs::write(store.path(), "{\n  \"tokens\": [oops]\n}").unwrap();
        let err = store.list().unwrap_err().to_string();
        assert!(
            err.contains("tokens.json") && err.contains("line 2"),
            "{err}"
        );
    }
}
