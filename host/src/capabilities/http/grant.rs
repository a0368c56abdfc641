//! The HTTP allow-list grammar.
//!
//! An HTTP rule is `scheme://host[:port]`: the scheme is required, paths are rejected, `*` may
//! stand for the whole host, a leading label (`*.example.com`) or the port. A rule may hold
//! `{{ globalArguments.x }}` templates, expanded per call from the resolved arguments. What a
//! template brings in is always literal: a whole-rule template must be one origin
//! (`scheme://host[:port]`, nothing else), and a template inside a part fills that part with a
//! literal host or port.

use crate::capabilities::grant_rules::{
    Grant, HOLE, HostPattern, Rule, host_pattern, literal_rule_text, punch_holes, shown_value,
    split_host_port, template_values,
};
use reqwest::Url;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// One parsed HTTP origin rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    scheme: String,
    host: HostPattern,
    port: Option<u16>,
    source: String,
}

impl std::fmt::Display for HttpRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// The three parts of an HTTP rule, as written (templates as [`HOLE`]s).
struct HttpRuleParts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
}

/// Splits `scheme://host[:port]`, refusing user info, paths, queries and fragments.
fn split_http_rule<'a>(rule: &str, text: &'a str) -> Result<HttpRuleParts<'a>, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("`{rule}`: a scheme is required, e.g. `https://{rule}`"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(i) = authority.find(['/', '?', '#']) {
        return Err(format!(
            "`{rule}`: paths are not allowed in a grant; use `{scheme}://{}`",
            &authority[..i]
        ));
    }
    if authority.contains('@') {
        return Err(format!("`{rule}`: user info is not allowed in a grant"));
    }
    if authority.chars().any(char::is_whitespace) {
        return Err(format!("`{rule}`: spaces are not allowed in a grant"));
    }
    let (host, port) =
        split_host_port(authority).ok_or_else(|| format!("`{rule}`: bad host or port"))?;
    Ok(HttpRuleParts { scheme, host, port })
}

impl HttpRule {
    /// Checks a manifest rule; parts filled by templates are checked when they are expanded.
    pub fn check_syntax(rule: &str) -> Result<(), String> {
        let (text, fields) = punch_holes(rule)?;
        if fields.is_empty() {
            return Self::parse(rule).map(|_| ());
        }
        if text == HOLE.to_string() {
            return Ok(());
        }
        let parts = split_http_rule(rule, &text)?;
        let literal = |part: &str| !part.contains(HOLE);
        if literal(parts.scheme) {
            http_scheme(rule, parts.scheme)?;
        }
        if literal(parts.host) {
            host_pattern(rule, parts.host, true)?;
        }
        if let Some(port) = parts.port.filter(|p| literal(p)) {
            http_port_pattern(rule, port, true)?;
        }
        Ok(())
    }

    /// Parses a literal rule (no templates).
    pub fn parse(rule: &str) -> Result<HttpRule, String> {
        let text = literal_rule_text(rule)?;
        let parts = split_http_rule(rule, &text)?;
        Self::from_parts(rule, &parts, [true; 2])
    }

    fn from_parts(
        rule: &str,
        parts: &HttpRuleParts<'_>,
        wildcards: [bool; 2],
    ) -> Result<HttpRule, String> {
        let scheme = http_scheme(rule, parts.scheme)?;
        let port = match parts.port {
            None => Some(default_port(&scheme)),
            Some(p) => http_port_pattern(rule, p, wildcards[1])?,
        };
        Ok(HttpRule {
            host: host_pattern(rule, parts.host, wildcards[0])?,
            scheme,
            port,
            source: rule.to_string(),
        })
    }

    /// Expands `{{ globalArguments.x }}` from the call's arguments. `Ok(None)` when a named
    /// argument is absent or null: such a rule grants nothing. An error when a value is not
    /// literal (a wildcard, user info, a path, a query, or a part it does not stand for).
    pub fn expand(rule: &str, globals: &Map<String, Value>) -> Result<Option<HttpRule>, String> {
        let (text, fields) = punch_holes(rule)?;
        if fields.is_empty() {
            return Self::parse(rule).map(Some);
        }
        let Some(values) = template_values(rule, &fields, globals)? else {
            return Ok(None);
        };
        let mut parsed = if text == HOLE.to_string() {
            literal_origin(rule, fields[0], &values[0])?
        } else {
            let parts = split_http_rule(rule, &text)?;
            let mut values = values.iter();
            let mut fill = |part: &str| -> String {
                part.chars()
                    .map(|c| {
                        if c == HOLE {
                            values.next().cloned().unwrap_or_default()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect()
            };
            let scheme = fill(parts.scheme);
            let host = fill(parts.host);
            let port = parts.port.map(&mut fill);
            let filled = HttpRuleParts {
                scheme: &scheme,
                host: &host,
                port: port.as_deref(),
            };
            let literal = [
                !parts.host.contains(HOLE),
                parts.port.is_none_or(|p| !p.contains(HOLE)),
            ];
            let expanded = format!(
                "{scheme}://{host}{}",
                port.as_deref().map(|p| format!(":{p}")).unwrap_or_default()
            );
            Self::from_parts(rule, &filled, literal).map_err(|why| {
                format!(
                    "{why} (expanded to {}; a value from globalArguments must be a literal host or port)",
                    shown_value(&expanded)
                )
            })?
        };
        parsed.source = format!("{rule} = {}", parsed.origin());
        Ok(Some(parsed))
    }

    fn origin(&self) -> String {
        let host = match &self.host {
            HostPattern::Any => "*".to_string(),
            HostPattern::Suffix(s) => format!("*{s}"),
            HostPattern::Exact(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            HostPattern::Exact(h) => h.clone(),
        };
        match self.port {
            Some(p) => format!("{}://{host}:{p}", self.scheme),
            None => format!("{}://{host}:*", self.scheme),
        }
    }

    fn scheme_and_port_match(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && self
                .port
                .is_none_or(|p| url.port_or_known_default() == Some(p))
    }

    /// True when the URL's scheme, host and port fall under this rule.
    pub fn matches(&self, url: &Url) -> bool {
        if !self.scheme_and_port_match(url) {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Suffix(s) => host.ends_with(s.as_str()),
            HostPattern::Exact(h) => h.trim_start_matches('[').trim_end_matches(']') == host,
        }
    }

    /// True when this rule names `ip` literally for the URL's scheme and port.
    pub fn names_address(&self, url: &Url, ip: IpAddr) -> bool {
        self.scheme_and_port_match(url) && self.host.literal_ip() == Some(ip.to_canonical())
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

fn http_scheme(rule: &str, scheme: &str) -> Result<String, String> {
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "http" || scheme == "https" {
        Ok(scheme)
    } else {
        Err(format!("`{rule}`: scheme must be http or https"))
    }
}

fn http_port_pattern(rule: &str, port: &str, wildcard: bool) -> Result<Option<u16>, String> {
    if port == "*" && wildcard {
        return Ok(None);
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(p)),
        _ if port.contains('*') => Err(format!(
            "`{rule}`: bad port `{port}`: `*` is never allowed in a value from globalArguments"
        )),
        _ => Err(format!("`{rule}`: bad port `{port}` (1 to 65535)")),
    }
}

/// A whole-rule template's value: exactly one origin `scheme://host[:port]`, parsed by the
/// same URL parser as the requests it will be checked against.
fn literal_origin(rule: &str, field: &str, value: &str) -> Result<HttpRule, String> {
    let refuse = |why: &str| {
        Err(format!(
            "`{rule}`: globalArguments.{field} is {}: {why}; a grant from a definition is one literal origin `scheme://host[:port]`, e.g. `https://10.0.0.4:8006`",
            shown_value(value)
        ))
    };
    if value.contains('*') {
        return refuse("`*` is never allowed in a value from globalArguments");
    }
    if value.chars().any(char::is_whitespace) || value.contains('\\') {
        return refuse("it holds spaces or backslashes");
    }
    let Ok(url) = Url::parse(value) else {
        return refuse("it is not a URL");
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        return refuse("the scheme must be http or https");
    }
    if !url.username().is_empty() || url.password().is_some() || value.contains('@') {
        return refuse("user info is not allowed");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return refuse("a query or fragment is not allowed");
    }
    // The raw text too: the parser folds `/..` and `/.` into `/`.
    let after_scheme = value.split_once("://").map_or(value, |(_, rest)| rest);
    let raw_path = after_scheme
        .strip_suffix('/')
        .unwrap_or(after_scheme)
        .contains('/');
    if url.path() != "/" || raw_path {
        return refuse(&format!(
            "it carries the path `{}`, and a grant covers a whole origin; write the origin only",
            after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
        ));
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return refuse("it names no host");
    };
    Ok(HttpRule {
        scheme: url.scheme().to_string(),
        host: HostPattern::Exact(host.to_ascii_lowercase()),
        port: Some(port),
        source: rule.to_string(),
    })
}

/// The URL without user info or query, safe to show.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

impl Rule for HttpRule {
    type Target = Url;
    const KIND: &'static str = "http";
    fn expand_for_call(rule: &str, globals: &Map<String, Value>) -> Result<Option<Self>, String> {
        HttpRule::expand(rule, globals)
    }
    fn parse_literal(rule: &str) -> Result<Self, String> {
        HttpRule::parse(rule)
    }
    fn allows(&self, target: &Url) -> bool {
        self.matches(target)
    }
    fn literal_ip(&self) -> Option<IpAddr> {
        self.host.literal_ip()
    }
    fn names_address(&self, target: &Url, ip: IpAddr) -> bool {
        HttpRule::names_address(self, target, ip)
    }
    fn show(target: &Url) -> String {
        redact_url(target)
    }
}

/// What a call may reach over HTTP.
pub type HttpGrant = Grant<HttpRule>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn exact_rule_matches_only_its_origin() {
        let r = HttpRule::parse("https://10.0.0.4:8006").unwrap();
        assert!(r.matches(&url("https://10.0.0.4:8006/api2/json/nodes")));
        assert!(!r.matches(&url("http://10.0.0.4:8006/")));
        assert!(!r.matches(&url("https://10.0.0.4:8007/")));
        assert!(!r.matches(&url("https://10.0.0.5:8006/")));
    }

    #[test]
    fn default_port_is_implied() {
        let r = HttpRule::parse("https://example.com").unwrap();
        assert!(r.matches(&url("https://example.com/x")));
        assert!(!r.matches(&url("https://example.com:8443/x")));
    }

    #[test]
    fn wildcards_cover_subdomains_and_ports() {
        let r = HttpRule::parse("https://*.example.com:*").unwrap();
        assert!(r.matches(&url("https://a.example.com:9/")));
        assert!(!r.matches(&url("https://example.com/")));
        assert!(!r.matches(&url("https://evilexample.com/")));
    }

    #[test]
    fn loose_rules_are_rejected() {
        assert!(
            HttpRule::parse("example.com")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            HttpRule::parse("https://example.com/api")
                .unwrap_err()
                .contains("paths")
        );
        assert!(HttpRule::parse("https://ex*ample.com").is_err());
        assert!(HttpRule::parse("ftp://example.com").is_err());
        assert!(HttpRule::check_syntax("{{ env.X }}").is_err());
        assert!(HttpRule::check_syntax("{{ globalArguments.apiUrl }}").is_ok());
    }

    #[test]
    fn a_whole_rule_template_expands_to_exactly_one_origin() {
        let globals = json!({"apiUrl": "https://127.0.0.1:8006", "slash": "http://Example.COM/"});
        let globals = globals.as_object().unwrap();
        let r = HttpRule::expand("{{ globalArguments.apiUrl }}", globals)
            .unwrap()
            .unwrap();
        assert!(r.matches(&url("https://127.0.0.1:8006/api2/json/access/ticket")));
        assert!(!r.matches(&url("https://127.0.0.1:9999/")));
        assert!(!r.matches(&url("http://127.0.0.1:8006/")));
        assert!(r.to_string().ends_with("= https://127.0.0.1:8006"), "{r}");
        let r = HttpRule::expand("{{ globalArguments.slash }}", globals)
            .unwrap()
            .unwrap();
        assert!(r.matches(&url("http://example.com/x")));
        assert!(!r.matches(&url("http://example.com:8080/x")));
    }

    #[test]
    fn a_template_value_is_never_a_pattern_nor_more_than_an_origin() {
        for (value, why) in [
            ("http://*:8080", "`*`"),
            ("http://*.example.com", "`*`"),
            ("http://127.0.0.1:*", "`*`"),
            ("https://10.0.0.4:8006/api2/json", "path"),
            ("https://10.0.0.4:8006/..", "path"),
            ("https://user:pw@10.0.0.4:8006", "user info"),
            ("https://good.example@evil.example", "user info"),
            ("https://10.0.0.4:8006?x=1", "query"),
            ("https://10.0.0.4:8006#frag", "fragment"),
            ("https://good.example\\@evil.example", "backslash"),
            ("ftp://10.0.0.4", "scheme"),
            ("10.0.0.4:8006", "URL"),
        ] {
            let globals = json!({ "apiUrl": value });
            let err =
                HttpRule::expand("{{ globalArguments.apiUrl }}", globals.as_object().unwrap())
                    .unwrap_err();
            assert!(
                err.contains(why) && err.contains("globalArguments.apiUrl"),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn a_template_inside_a_part_fills_it_with_a_literal_host_or_port() {
        let rule = "https://{{ globalArguments.host }}:8006";
        assert!(HttpRule::check_syntax(rule).is_ok());
        let ok = json!({"host": "10.0.0.4"});
        let r = HttpRule::expand(rule, ok.as_object().unwrap())
            .unwrap()
            .unwrap();
        assert!(r.matches(&url("https://10.0.0.4:8006/x")));
        assert!(!r.matches(&url("https://10.0.0.4:9999/x")));
        for value in [
            "evil.example:9999",
            "evil.example:9999/",
            "evil.example/x",
            "*",
            "*.example.com",
            "user@evil.example",
            "evil.example?q",
        ] {
            let globals = json!({ "host": value });
            assert!(
                HttpRule::expand(rule, globals.as_object().unwrap()).is_err(),
                "{value} must be refused"
            );
        }
        let ported = "https://10.0.0.4:{{ globalArguments.port }}";
        let ok = json!({"port": 8006});
        let r = HttpRule::expand(ported, ok.as_object().unwrap())
            .unwrap()
            .unwrap();
        assert!(r.matches(&url("https://10.0.0.4:8006/")));
        for value in [
            json!("*"),
            json!("8006/x"),
            json!("+80"),
            json!(0),
            json!("80 "),
        ] {
            let globals = json!({ "port": value });
            assert!(
                HttpRule::expand(ported, globals.as_object().unwrap()).is_err(),
                "{value} must be refused"
            );
        }
        assert!(HttpRule::check_syntax("https://{{ globalArguments.host }}/api").is_err());
        assert!(HttpRule::check_syntax("https://{{ globalArguments.host }}@x:1").is_err());
    }

    #[test]
    fn a_grant_names_an_address_only_through_a_literal_rule_on_every_layer() {
        let globals = json!({"baseUrl": "http://127.0.0.1:8080"});
        let g = HttpGrant::new(
            &[
                "{{ globalArguments.baseUrl }}".to_string(),
                "http://*:*".to_string(),
            ],
            None,
            globals.as_object().unwrap(),
        )
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let policy = g.named_addresses(&url("http://localhost:8080/"));
        assert!(policy.check("localhost", ip("127.0.0.1")).is_ok());
        assert!(policy.check("localhost", ip("169.254.169.254")).is_err());
        // Another port: the literal rule does not cover it, the wildcard names nothing.
        let other = g.named_addresses(&url("http://localhost:9999/"));
        assert!(other.check("localhost", ip("127.0.0.1")).is_err());
        // orch.yaml narrowing with a wildcard does not name the address.
        let narrowed = HttpGrant::new(
            &["http://127.0.0.1:8080".to_string()],
            Some(&["http://*:8080".to_string()]),
            &Map::new(),
        )
        .unwrap();
        let policy = narrowed.named_addresses(&url("http://localhost:8080/"));
        assert!(policy.check("localhost", ip("127.0.0.1")).is_err());
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
