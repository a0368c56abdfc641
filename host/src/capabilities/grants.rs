//! The allow-list grammar for outbound access, and the one place that answers yes or no.
//!
//! A rule is `scheme://host[:port]`: the scheme is required, paths are rejected, `*` may stand
//! for the whole host, a leading label (`*.example.com`) or the port. A rule may be a
//! `{{ globalArguments.x }}` template; it is expanded per call from the resolved arguments and
//! may then carry a path, which is ignored (users paste API URLs).

use reqwest::Url;
use serde_json::{Map, Value};

/// One parsed HTTP origin rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    scheme: String,
    host: HostPattern,
    port: Option<u16>,
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

impl std::fmt::Display for HttpRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

const TEMPLATE_OPEN: &str = "{{";
const TEMPLATE_CLOSE: &str = "}}";

impl HttpRule {
    /// Checks a manifest rule without expanding templates.
    pub fn check_syntax(rule: &str) -> Result<(), String> {
        if rule.contains(TEMPLATE_OPEN) {
            let mut rest = rule;
            while let Some(start) = rest.find(TEMPLATE_OPEN) {
                let after = &rest[start + 2..];
                let end = after
                    .find(TEMPLATE_CLOSE)
                    .ok_or_else(|| format!("`{rule}`: unterminated `{{{{`"))?;
                let key = after[..end].trim();
                if key
                    .strip_prefix("globalArguments.")
                    .is_none_or(str::is_empty)
                {
                    return Err(format!(
                        "`{rule}`: templates may only name `globalArguments.<field>`, not `{key}`"
                    ));
                }
                rest = &after[end + 2..];
            }
            return Ok(());
        }
        Self::parse(rule, false).map(|_| ())
    }

    /// Parses a literal rule; with `allow_path` a path after the origin is ignored.
    pub fn parse(rule: &str, allow_path: bool) -> Result<HttpRule, String> {
        let (scheme, rest) = rule
            .split_once("://")
            .ok_or_else(|| format!("`{rule}`: a scheme is required, e.g. `https://{rule}`"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{rule}`: scheme must be http or https"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !allow_path && !path.is_empty() && path != "/" {
            return Err(format!(
                "`{rule}`: paths are not allowed in a grant; use `{scheme}://{authority}`"
            ));
        }
        if authority.contains('@') {
            return Err(format!("`{rule}`: user info is not allowed in a grant"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| format!("`{rule}`: bad host or port"))?;
        let port = match port {
            None => Some(if scheme == "https" { 443 } else { 80 }),
            Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("`{rule}`: bad port `{p}`"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!(
                    "`{rule}`: `*` may only be the first label of a host"
                ));
            }
            HostPattern::Suffix(format!(".{suffix}"))
        } else if host.is_empty() || host.contains('*') {
            return Err(format!(
                "`{rule}`: `*` may only be the whole host or its first label"
            ));
        } else {
            HostPattern::Exact(host)
        };
        Ok(HttpRule {
            scheme,
            host,
            port,
            source: rule.to_string(),
        })
    }

    /// Expands `{{ globalArguments.x }}` from the call's arguments. `Ok(None)` when a named
    /// argument is absent or null: such a rule grants nothing.
    pub fn expand(rule: &str, globals: &Map<String, Value>) -> Result<Option<HttpRule>, String> {
        if !rule.contains(TEMPLATE_OPEN) {
            return Self::parse(rule, false).map(Some);
        }
        let Some(text) = expand_template(rule, globals)? else {
            return Ok(None);
        };
        let mut parsed = Self::parse(&text, true)?;
        parsed.source = format!("{rule} = {}", parsed.origin());
        Ok(Some(parsed))
    }

    fn origin(&self) -> String {
        let host = match &self.host {
            HostPattern::Any => "*".to_string(),
            HostPattern::Suffix(s) => format!("*{s}"),
            HostPattern::Exact(h) => h.clone(),
        };
        match self.port {
            Some(p) => format!("{}://{host}:{p}", self.scheme),
            None => format!("{}://{host}:*", self.scheme),
        }
    }

    /// True when the URL's scheme, host and port fall under this rule.
    pub fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Suffix(s) => host.ends_with(s.as_str()),
            HostPattern::Exact(h) => h.trim_start_matches('[').trim_end_matches(']') == host,
        };
        let port_ok = match self.port {
            None => true,
            Some(p) => url.port_or_known_default() == Some(p),
        };
        host_ok && port_ok
    }
}

/// Substitutes every `{{ globalArguments.x }}`; `None` when one is missing or null.
pub fn expand_template(rule: &str, globals: &Map<String, Value>) -> Result<Option<String>, String> {
    let mut out = String::new();
    let mut rest = rule;
    while let Some(start) = rest.find(TEMPLATE_OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find(TEMPLATE_CLOSE)
            .ok_or_else(|| format!("`{rule}`: unterminated `{{{{`"))?;
        let key = after[..end].trim();
        let field = key.strip_prefix("globalArguments.").ok_or_else(|| {
            format!("`{rule}`: templates may only name `globalArguments.<field>`")
        })?;
        match globals.get(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        let tail = &rest[end + 1..];
        return match tail.strip_prefix(':') {
            Some(p) => Some((host, Some(p))),
            None if tail.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// The HTTP grant of one call: the manifest's rules, narrowed by the operator's `orch.yaml`.
#[derive(Debug, Clone, Default)]
pub struct HttpGrant {
    manifest: Vec<HttpRule>,
    operator: Option<Vec<HttpRule>>,
}

impl HttpGrant {
    /// Builds the grant for one call from the manifest's rules and the operator's narrowing.
    pub fn new(
        manifest_rules: &[String],
        operator_rules: Option<&[String]>,
        globals: &Map<String, Value>,
    ) -> Result<Self, String> {
        let mut manifest = Vec::new();
        for rule in manifest_rules {
            if let Some(r) = HttpRule::expand(rule, globals)? {
                manifest.push(r);
            }
        }
        let operator = match operator_rules {
            None => None,
            Some(rules) => Some(
                rules
                    .iter()
                    .map(|r| HttpRule::parse(r, false))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(HttpGrant { manifest, operator })
    }

    /// A grant that allows nothing (used for `describe`).
    pub fn none() -> Self {
        HttpGrant::default()
    }

    /// `Ok` when the URL is allowed; otherwise the reason, naming the rules consulted.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        let shown = redact_url(url);
        if !self.manifest.iter().any(|r| r.matches(url)) {
            let rules = if self.manifest.is_empty() {
                "none".to_string()
            } else {
                join(&self.manifest)
            };
            return Err(format!(
                "{shown} is not covered by the plugin's manifest (capabilities.http: {rules})"
            ));
        }
        if let Some(op) = &self.operator
            && !op.iter().any(|r| r.matches(url))
        {
            let rules = if op.is_empty() {
                "none".to_string()
            } else {
                join(op)
            };
            return Err(format!(
                "{shown} is not granted by orch.yaml (grants.<plugin>.http: {rules})"
            ));
        }
        Ok(())
    }
}

fn join(rules: &[HttpRule]) -> String {
    rules
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The URL without user info or query, safe to show.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn exact_rule_matches_only_its_origin() {
        let r = HttpRule::parse("https://10.0.0.4:8006", false).unwrap();
        assert!(r.matches(&url("https://10.0.0.4:8006/api2/json/nodes")));
        assert!(!r.matches(&url("http://10.0.0.4:8006/")));
        assert!(!r.matches(&url("https://10.0.0.4:8007/")));
        assert!(!r.matches(&url("https://10.0.0.5:8006/")));
    }

    #[test]
    fn default_port_is_implied() {
        let r = HttpRule::parse("https://example.com", false).unwrap();
        assert!(r.matches(&url("https://example.com/x")));
        assert!(!r.matches(&url("https://example.com:8443/x")));
    }

    #[test]
    fn wildcards_cover_subdomains_and_ports() {
        let r = HttpRule::parse("https://*.example.com:*", false).unwrap();
        assert!(r.matches(&url("https://a.example.com:9/")));
        assert!(!r.matches(&url("https://example.com/")));
        assert!(!r.matches(&url("https://evilexample.com/")));
    }

    #[test]
    fn loose_rules_are_rejected() {
        assert!(
            HttpRule::parse("example.com", false)
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            HttpRule::parse("https://example.com/api", false)
                .unwrap_err()
                .contains("paths")
        );
        assert!(HttpRule::parse("https://ex*ample.com", false).is_err());
        assert!(HttpRule::parse("ftp://example.com", false).is_err());
        assert!(HttpRule::check_syntax("{{ env.X }}").is_err());
        assert!(HttpRule::check_syntax("{{ globalArguments.apiUrl }}").is_ok());
    }

    #[test]
    fn template_expands_from_global_arguments_and_drops_the_path() {
        let globals = json!({"apiUrl": "https://127.0.0.1:8006/api2/json"});
        let r = HttpRule::expand("{{ globalArguments.apiUrl }}", globals.as_object().unwrap())
            .unwrap()
            .unwrap();
        assert!(r.matches(&url("https://127.0.0.1:8006/api2/json/access/ticket")));
        assert!(!r.matches(&url("https://127.0.0.1:9999/")));
    }

    #[test]
    fn template_with_missing_argument_grants_nothing() {
        let globals = json!({});
        assert!(
            HttpRule::expand("{{ globalArguments.apiUrl }}", globals.as_object().unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn operator_grant_narrows_the_manifest() {
        let g = HttpGrant::new(
            &["https://*:*".to_string()],
            Some(&["https://10.0.0.4:8006".to_string()]),
            &Map::new(),
        )
        .unwrap();
        assert!(g.check(&url("https://10.0.0.4:8006/x")).is_ok());
        let err = g
            .check(&url("https://evil.example:443/x?token=abc"))
            .unwrap_err();
        assert!(
            err.contains("orch.yaml") && err.contains("https://10.0.0.4:8006"),
            "{err}"
        );
        assert!(!err.contains("token=abc"), "query must not be shown: {err}");
    }

    #[test]
    fn denial_names_the_url_and_the_rules() {
        let g = HttpGrant::new(&["http://127.0.0.1:8080".to_string()], None, &Map::new()).unwrap();
        let err = g.check(&url("http://127.0.0.2:8080/")).unwrap_err();
        assert!(
            err.contains("http://127.0.0.2:8080/") && err.contains("http://127.0.0.1:8080"),
            "{err}"
        );
    }
}
