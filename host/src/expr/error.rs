//! Errors of template resolution, worded for the person who wrote the YAML.

/// How many existing keys a "does not exist" message lists before it elides the rest.
const MAX_LISTED: usize = 10;

/// Why an expression could not be checked or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprErrorKind {
    /// The template or the CEL expression does not parse.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// `model.<name>` (or `data.latest`) names no model definition.
    #[error("unknown model `{name}`{}", did_you_mean(suggestion.as_deref()))]
    UnknownModel {
        /// The name as written.
        name: String,
        /// The closest defined model name, when one is close enough.
        suggestion: Option<String>,
    },
    /// The model is defined but no method has written any of its resources yet.
    #[error("model `{model}` has no data yet; run a method that writes it first")]
    NoData {
        /// The model's name.
        model: String,
    },
    /// A key, instance, attribute, input or variable does not exist.
    #[error("{missing} does not exist{}", hint(suggestion.as_deref(), available))]
    NoSuchKey {
        /// What is missing and where, e.g. "instance `gold-imag` of spec `vm` in model `fleet`".
        missing: String,
        /// The closest existing key, when one is close enough.
        suggestion: Option<String>,
        /// The keys that do exist there (only filled when there is no suggestion).
        available: Box<[String]>,
    },
    /// The resource's latest version is a tombstone: something saw it gone.
    #[error("{resource} was removed {by}")]
    Retired {
        /// Which resource, e.g. "vm/atm10 of model fleet".
        resource: String,
        /// Who removed it and when, and where its history is: "by run R at T (…); …".
        by: String,
    },
    /// `vault.get` found no such vault or no such key in it.
    #[error("vault `{vault}` has no secret `{key}`; add it with `orch vault put {vault} {key}`")]
    Vault {
        /// The vault's name.
        vault: String,
        /// The key within the vault.
        key: String,
    },
    /// A value has a type the operation, or JSON, cannot take.
    #[error("type error: {0}")]
    Type(String),
    /// Any other failure reported by the CEL interpreter.
    #[error("evaluation failed: {0}")]
    Eval(String),
    /// The data source (store or vault) failed.
    #[error("could not read data: {0}")]
    DataSource(String),
    /// The expression is too long or nests too deeply to be evaluated safely.
    #[error("too complex: {0}")]
    TooComplex(String),
    /// Evaluating the expression exceeded its budget of steps, bytes or time.
    #[error("budget exceeded: {0}")]
    Budget(String),
}

impl ExprErrorKind {
    /// A `NoSuchKey` for `wanted`, suggesting the closest of `existing` or else listing them.
    pub(super) fn missing(
        missing: String,
        wanted: &str,
        existing: impl IntoIterator<Item = String>,
    ) -> Self {
        let existing = sorted(existing);
        let suggestion = suggest(wanted, existing.iter().map(String::as_str));
        Self::NoSuchKey {
            missing,
            available: if suggestion.is_some() {
                Box::default()
            } else {
                existing.into()
            },
            suggestion,
        }
    }

    /// Applies `f` to every free-text part, so values can be scrubbed from messages.
    pub(super) fn map_text(self, f: impl Fn(String) -> String) -> Self {
        match self {
            Self::Syntax(m) => Self::Syntax(f(m)),
            Self::UnknownModel { name, suggestion } => Self::UnknownModel {
                name: f(name),
                suggestion: suggestion.map(&f),
            },
            Self::NoData { model } => Self::NoData { model: f(model) },
            Self::NoSuchKey {
                missing,
                suggestion,
                available,
            } => Self::NoSuchKey {
                missing: f(missing),
                suggestion: suggestion.map(&f),
                available: available.into_iter().map(&f).collect(),
            },
            Self::Retired { resource, by } => Self::Retired {
                resource: f(resource),
                by: f(by),
            },
            Self::Vault { vault, key } => Self::Vault {
                vault: f(vault),
                key: f(key),
            },
            Self::Type(m) => Self::Type(f(m)),
            Self::Eval(m) => Self::Eval(f(m)),
            Self::DataSource(m) => Self::DataSource(f(m)),
            Self::TooComplex(m) => Self::TooComplex(f(m)),
            Self::Budget(m) => Self::Budget(f(m)),
        }
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean `{s}`?"))
}

fn hint(suggestion: Option<&str>, available: &[String]) -> String {
    if suggestion.is_some() {
        return did_you_mean(suggestion);
    }
    if available.is_empty() {
        return String::new();
    }
    let mut listed: Vec<String> = available
        .iter()
        .take(MAX_LISTED)
        .map(|k| format!("`{k}`"))
        .collect();
    if available.len() > MAX_LISTED {
        listed.push(format!("and {} more", available.len() - MAX_LISTED));
    }
    format!("; it has {}", listed.join(", "))
}

/// A failed template or expression, with the field it sits in and the expression as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ExprError {
    /// Dotted path of the field holding the template, e.g. `globalArguments.ticket` or `args[0]`; empty for a bare expression.
    pub field: String,
    /// The CEL expression, trimmed, without the `${{ }}` delimiters.
    pub expr: String,
    /// True when the expression was written as a `${{ }}` template rather than bare CEL.
    pub templated: bool,
    /// What went wrong.
    pub kind: ExprErrorKind,
}

impl ExprError {
    /// The expression as the user wrote it: `${{ expr }}` for a template, the bare text otherwise.
    pub fn source_text(&self) -> String {
        if self.templated {
            format!("${{{{ {} }}}}", self.expr)
        } else {
            self.expr.clone()
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if !self.field.is_empty() {
            out.push_str(&format!("field `{}`: ", self.field));
        }
        if !self.expr.is_empty() {
            out.push_str(&format!("`{}`: ", self.source_text()));
        }
        out.push_str(&self.kind.to_string());
        out
    }
}

/// Lists keys for messages in a stable order.
fn sorted(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut keys: Vec<String> = keys.into_iter().collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Picks the candidate closest to `wanted`, if it is close enough to be a likely typo.
pub(super) fn suggest<'c>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    let wanted_lower = wanted.to_lowercase();
    let len = wanted.chars().count();
    // About one typo per three characters; a candidate sharing nothing with a short
    // name (`b` for `a`) is a guess, not a suggestion.
    let limit = (len / 3).max(1).min(len.saturating_sub(1));
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == wanted {
            continue;
        }
        let distance = if candidate.to_lowercase() == wanted_lower {
            0
        } else {
            strsim::damerau_levenshtein(wanted, candidate)
        };
        let better = match best {
            None => true,
            Some((d, c)) => distance < d || (distance == d && candidate < c),
        };
        if distance <= limit && better {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Replaces every secret in `text`, raw or debug-escaped as CEL errors print values.
pub(super) fn scrub(text: String, secrets: &[String]) -> String {
    let mut text = text;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        let escaped = secret.escape_debug().to_string();
        if escaped != *secret && text.contains(&escaped) {
            text = text.replace(&escaped, "[redacted]");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggest_picks_close_names_only() {
        let names = ["gold-image", "web1", "web2"];
        assert_eq!(suggest("gold-imag", names).as_deref(), Some("gold-image"));
        assert_eq!(suggest("web3", names).as_deref(), Some("web1"));
        assert_eq!(suggest("database", names), None);
        assert_eq!(suggest("WEB1", names).as_deref(), Some("web1"));
        assert_eq!(suggest("b", ["a"]), None);
        assert_eq!(
            suggest("vmNam", ["vmName", "count"]).as_deref(),
            Some("vmName")
        );
    }

    #[test]
    fn scrub_hides_raw_and_escaped_secrets() {
        let secrets = vec!["s3cr\"et".to_string(), String::new()];
        assert_eq!(
            scrub("got s3cr\"et and \"s3cr\\\"et\"".into(), &secrets),
            "got [redacted] and \"[redacted]\""
        );
    }

    #[test]
    fn display_lists_available_keys_without_suggestion() {
        let kind = ExprErrorKind::NoSuchKey {
            missing: "input `zzz`".into(),
            suggestion: None,
            available: vec!["a".into(), "b".into()].into(),
        };
        assert_eq!(
            kind.to_string(),
            "input `zzz` does not exist; it has `a`, `b`"
        );
    }
}
