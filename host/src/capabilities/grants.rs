//! The allow-list grammar for outbound access, and the one place that answers yes or no.
//!
//! An HTTP rule is `scheme://host[:port]`: the scheme is required, paths are rejected, `*` may
//! stand for the whole host, a leading label (`*.example.com`) or the port. A rule may hold
//! `{{ globalArguments.x }}` templates, expanded per call from the resolved arguments. What a
//! template brings in is always literal: a whole-rule template must be one origin
//! (`scheme://host[:port]`, nothing else), and a template inside a part fills that part with a
//! literal host or port. A value from a definition (which may come from another model's data)
//! never widens a grant with `*`, an extra port, user info, a path or a query.

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

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

impl HostPattern {
    /// The IP address this pattern names literally, if it names one.
    fn literal_ip(&self) -> Option<IpAddr> {
        match self {
            HostPattern::Exact(h) => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
                .map(|ip| ip.to_canonical()),
            _ => None,
        }
    }
}

impl std::fmt::Display for HttpRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

const TEMPLATE_OPEN: &str = "{{";
const TEMPLATE_CLOSE: &str = "}}";

/// Longest part of a value shown in an error message.
const SHOWN_VALUE_CHARS: usize = 200;

/// A value as shown in a message: quoted, cut, control characters escaped.
fn shown_value(value: &str) -> String {
    match value.char_indices().nth(SHOWN_VALUE_CHARS) {
        Some((cut, _)) => format!("`{}…`", value[..cut].escape_debug()),
        None => format!("`{}`", value.escape_debug()),
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
        if rule.contains(TEMPLATE_OPEN) {
            return Err(format!(
                "`{rule}`: templates are only allowed in a plugin's manifest"
            ));
        }
        let (text, _) = punch_holes(rule)?;
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

/// A rule's host part: `*` and `*.domain` only where the rule may hold wildcards (never in a
/// value that came from a template), otherwise one literal host.
fn host_pattern(rule: &str, host: &str, wildcard: bool) -> Result<HostPattern, String> {
    if wildcard {
        if host == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some(suffix) = host.strip_prefix("*.") {
            let suffix = literal_host(suffix).map_err(|why| format!("`{rule}`: host: {why}"))?;
            return Ok(HostPattern::Suffix(format!(".{suffix}")));
        }
    }
    literal_host(host)
        .map(HostPattern::Exact)
        .map_err(|why| format!("`{rule}`: host: {why}"))
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

/// The values of a rule's template fields; `None` when one is missing or null.
fn template_values(
    rule: &str,
    fields: &[&str],
    globals: &Map<String, Value>,
) -> Result<Option<Vec<String>>, String> {
    let mut values = Vec::with_capacity(fields.len());
    for field in fields {
        match globals.get(*field) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => values.push(s.clone()),
            Some(other) => values.push(other.to_string()),
        }
    }
    if values.iter().any(|v| v.chars().any(char::is_control)) {
        return Err(format!(
            "`{rule}`: a global argument it names holds control characters"
        ));
    }
    Ok(Some(values))
}

/// The `globalArguments` fields a rule's templates name, in order; an error for anything else.
fn template_fields(rule: &str) -> Result<Vec<&str>, String> {
    let mut fields = Vec::new();
    let mut rest = rule;
    while let Some(start) = rest.find(TEMPLATE_OPEN) {
        let after = &rest[start + 2..];
        let end = after
            .find(TEMPLATE_CLOSE)
            .ok_or_else(|| format!("`{rule}`: unterminated `{{{{`"))?;
        let key = after[..end].trim();
        match key.strip_prefix("globalArguments.") {
            Some(field) if !field.is_empty() => fields.push(field),
            _ => {
                return Err(format!(
                    "`{rule}`: templates may only name `globalArguments.<field>`, not `{key}`"
                ));
            }
        }
        rest = &after[end + 2..];
    }
    Ok(fields)
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

/// The URL without user info or query, safe to show.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

/// Where an SSH session goes: what SSH grants are checked against and sessions are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    /// Host name or IP address, lowercase, IPv6 without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login user.
    pub user: String,
}

impl SshTarget {
    /// Checks and normalizes what a plugin asked to open.
    pub fn new(host: &str, port: u16, user: &str) -> Result<Self, String> {
        let host = literal_host(host).map_err(|why| format!("ssh target host: {why}"))?;
        if port == 0 {
            return Err("ssh target port must be 1 to 65535".into());
        }
        let user = literal_user(user).map_err(|why| format!("ssh target user: {why}"))?;
        Ok(SshTarget { host, port, user })
    }

    /// `host:port` as orch shows it and as `orch ssh trust` takes it (`[::1]:22` for IPv6).
    pub fn host_port(&self) -> String {
        host_port(&self.host, self.port)
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.host_port())
    }
}

/// `host:port`, with IPv6 hosts in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One parsed SSH target rule: `[user@]host:port`.
///
/// The grammar is strict: no scheme, no path, and the port is required. `*` may stand for the
/// whole host, a leading label (`*.lan`), the port or the user; no user means any user. A rule
/// may hold `{{ globalArguments.x }}` templates; the values they bring in must be literal (a
/// `*` coming from a definition's data would widen the grant behind the operator's back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshRule {
    user: Option<String>,
    host: HostPattern,
    port: Option<u16>,
    source: String,
}

impl std::fmt::Display for SshRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Stands for a template while a rule's structure is checked; rules never hold control characters.
const HOLE: char = '\u{1}';

/// The three parts of an SSH rule, as written.
struct SshRuleParts<'a> {
    user: Option<&'a str>,
    host: &'a str,
    port: &'a str,
}

impl SshRule {
    /// Checks a manifest rule; parts filled by templates are checked when they are expanded.
    pub fn check_syntax(rule: &str) -> Result<(), String> {
        let (text, fields) = punch_holes(rule)?;
        if fields.is_empty() {
            return Self::parse(rule).map(|_| ());
        }
        if text == HOLE.to_string() {
            return Ok(());
        }
        let parts = split_ssh_rule(rule, &text)?;
        let literal = |part: &str| !part.contains(HOLE);
        if let Some(user) = parts.user.filter(|u| literal(u)) {
            ssh_user_pattern(rule, user, true)?;
        }
        if literal(parts.host) {
            host_pattern(rule, parts.host, true)?;
        }
        if literal(parts.port) {
            ssh_port_pattern(rule, parts.port, true)?;
        }
        Ok(())
    }

    /// Parses a literal rule (no templates).
    pub fn parse(rule: &str) -> Result<SshRule, String> {
        if rule.contains(TEMPLATE_OPEN) {
            return Err(format!(
                "`{rule}`: templates are only allowed in a plugin's manifest"
            ));
        }
        let (text, _) = punch_holes(rule)?;
        let parts = split_ssh_rule(rule, &text)?;
        Self::from_parts(rule, &parts, [true; 3])
    }

    fn from_parts(
        rule: &str,
        parts: &SshRuleParts<'_>,
        wildcards: [bool; 3],
    ) -> Result<SshRule, String> {
        let user = match parts.user {
            Some(u) => ssh_user_pattern(rule, u, wildcards[0])?,
            None => None,
        };
        Ok(SshRule {
            user,
            host: host_pattern(rule, parts.host, wildcards[1])?,
            port: ssh_port_pattern(rule, parts.port, wildcards[2])?,
            source: rule.to_string(),
        })
    }

    /// Expands `{{ globalArguments.x }}` from the call's arguments. `Ok(None)` when a named
    /// argument is absent or null: such a rule grants nothing.
    pub fn expand(rule: &str, globals: &Map<String, Value>) -> Result<Option<SshRule>, String> {
        let (text, fields) = punch_holes(rule)?;
        if fields.is_empty() {
            return Self::parse(rule).map(Some);
        }
        let mut values = Vec::with_capacity(fields.len());
        for field in &fields {
            match globals.get(*field) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(s)) => values.push(s.clone()),
                Some(other) => values.push(other.to_string()),
            }
        }
        if values.iter().any(|v| v.chars().any(char::is_control)) {
            return Err(format!(
                "`{rule}`: a global argument it names holds control characters"
            ));
        }
        let mut parsed = if text == HOLE.to_string() {
            // The whole target comes from one argument: parse it, with no wildcards.
            let expanded = &values[0];
            let parts = split_ssh_rule(rule, expanded)
                .map_err(|why| format!("{why} (expanded to `{expanded}`)"))?;
            Self::from_parts(rule, &parts, [false; 3])
                .map_err(|why| format!("{why} (expanded to `{expanded}`)"))?
        } else {
            let parts = split_ssh_rule(rule, &text)?;
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
            let user = parts.user.map(&mut fill);
            let host = fill(parts.host);
            let port = fill(parts.port);
            let filled = SshRuleParts {
                user: user.as_deref(),
                host: &host,
                port: &port,
            };
            let literal = [
                parts.user.is_none_or(|u| !u.contains(HOLE)),
                !parts.host.contains(HOLE),
                !parts.port.contains(HOLE),
            ];
            Self::from_parts(rule, &filled, literal)?
        };
        parsed.source = format!("{rule} = {}", parsed.canonical());
        Ok(Some(parsed))
    }

    fn canonical(&self) -> String {
        let host = match &self.host {
            HostPattern::Any => "*".to_string(),
            HostPattern::Suffix(s) => format!("*{s}"),
            HostPattern::Exact(h) if h.contains(':') => format!("[{h}]"),
            HostPattern::Exact(h) => h.clone(),
        };
        let port = self.port.map_or("*".to_string(), |p| p.to_string());
        match &self.user {
            Some(u) => format!("{u}@{host}:{port}"),
            None => format!("{host}:{port}"),
        }
    }

    /// True when the target's user, host and port fall under this rule.
    pub fn matches(&self, target: &SshTarget) -> bool {
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Suffix(s) => target.host.ends_with(s.as_str()),
            HostPattern::Exact(h) => *h == target.host,
        };
        host_ok && self.user_and_port_match(target)
    }

    fn user_and_port_match(&self, target: &SshTarget) -> bool {
        self.user.as_ref().is_none_or(|u| *u == target.user)
            && self.port.is_none_or(|p| p == target.port)
    }

    /// True when this rule names `ip` literally for the target's user and port.
    pub fn names_address(&self, target: &SshTarget, ip: IpAddr) -> bool {
        self.user_and_port_match(target) && self.host.literal_ip() == Some(ip.to_canonical())
    }
}

/// The rule with each template replaced by [`HOLE`], and the fields the templates name.
fn punch_holes(rule: &str) -> Result<(String, Vec<&str>), String> {
    if rule.chars().any(char::is_control) {
        return Err(format!(
            "`{}`: control characters are not allowed",
            rule.escape_debug()
        ));
    }
    let fields = template_fields(rule)?;
    let mut text = String::with_capacity(rule.len());
    let mut rest = rule;
    while let Some(start) = rest.find(TEMPLATE_OPEN) {
        text.push_str(&rest[..start]);
        text.push(HOLE);
        let after = &rest[start + 2..];
        let end = after.find(TEMPLATE_CLOSE).unwrap_or(after.len());
        rest = after.get(end + 2..).unwrap_or("");
    }
    text.push_str(rest);
    Ok((text, fields))
}

/// Splits `[user@]host:port`, refusing schemes, paths and a missing port.
fn split_ssh_rule<'a>(rule: &str, text: &'a str) -> Result<SshRuleParts<'a>, String> {
    if let Some((scheme, rest)) = text.split_once("://") {
        return Err(format!(
            "`{rule}`: SSH rules are `[user@]host:port` without a scheme; write `{}` rather than `{scheme}://…`",
            rest.trim_end_matches('/')
        ));
    }
    if text.contains('/') || text.contains('?') || text.contains('#') {
        return Err(format!(
            "`{rule}`: paths are not allowed in an SSH rule; it is `[user@]host:port`"
        ));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(format!("`{rule}`: spaces are not allowed in an SSH rule"));
    }
    let (user, authority) = match text.split_once('@') {
        Some((u, a)) => (Some(u), a),
        None => (None, text),
    };
    let (host, port) = split_host_port(authority)
        .ok_or_else(|| format!("`{rule}`: bad host or port (IPv6 hosts go in brackets)"))?;
    let port = port.ok_or_else(|| {
        format!("`{rule}`: a port is required, e.g. `{text}:22` (or `{text}:*` for any port)")
    })?;
    Ok(SshRuleParts { user, host, port })
}

fn ssh_user_pattern(rule: &str, user: &str, wildcard: bool) -> Result<Option<String>, String> {
    if user == "*" && wildcard {
        return Ok(None);
    }
    literal_user(user)
        .map(Some)
        .map_err(|why| format!("`{rule}`: user: {why}"))
}

fn ssh_port_pattern(rule: &str, port: &str, wildcard: bool) -> Result<Option<u16>, String> {
    if port == "*" && wildcard {
        return Ok(None);
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(Some(p)),
        _ => Err(format!("`{rule}`: bad port `{port}` (1 to 65535)")),
    }
}

/// A host name or IP address, normalized: lowercase, IPv6 canonical and without brackets.
fn literal_host(host: &str) -> Result<String, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.contains(':') {
        return bare
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("`{host}` is not an IPv6 address"));
    }
    if bare.contains('*') {
        return Err(format!(
            "`{host}`: `*` may only be the whole host or its first label, and never in a value from globalArguments"
        ));
    }
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !ok {
        return Err(format!(
            "`{host}` is not a host name or IP address (letters, digits, `-`, `.`, `_`)"
        ));
    }
    Ok(bare.to_ascii_lowercase())
}

/// A login name: what OpenSSH and POSIX accept, nothing a shell or URL would reinterpret.
fn literal_user(user: &str) -> Result<String, String> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '$'));
    if ok {
        Ok(user.to_string())
    } else if user.contains('*') {
        Err(format!(
            "`{user}`: `*` may only be the whole user, and never in a value from globalArguments"
        ))
    } else {
        Err(format!(
            "`{user}` is not a login name (letters, digits, `-`, `.`, `_`, `$`)"
        ))
    }
}

/// A kind of allow-list rule: how it is written, expanded and matched.
pub trait Rule: Sized + std::fmt::Display {
    /// What a rule is checked against (a URL, an SSH target).
    type Target: ?Sized;
    /// The capability's name in `plugin.toml` and `orch.yaml` (`http`, `ssh`).
    const KIND: &'static str;
    /// A manifest rule for one call: templates expanded; `None` when an argument is missing.
    fn expand_for_call(rule: &str, globals: &Map<String, Value>) -> Result<Option<Self>, String>;
    /// A literal rule from `orch.yaml`.
    fn parse_literal(rule: &str) -> Result<Self, String>;
    /// Whether the target falls under this rule.
    fn allows(&self, target: &Self::Target) -> bool;
    /// The IP address this rule's host names literally, if any.
    fn literal_ip(&self) -> Option<IpAddr>;
    /// Whether this rule names `ip` literally for the target's other parts (scheme, port, user).
    fn names_address(&self, target: &Self::Target, ip: IpAddr) -> bool;
    /// The target as it may be shown (no secrets).
    fn show(target: &Self::Target) -> String;
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

impl Rule for SshRule {
    type Target = SshTarget;
    const KIND: &'static str = "ssh";
    fn expand_for_call(rule: &str, globals: &Map<String, Value>) -> Result<Option<Self>, String> {
        SshRule::expand(rule, globals)
    }
    fn parse_literal(rule: &str) -> Result<Self, String> {
        SshRule::parse(rule)
    }
    fn allows(&self, target: &SshTarget) -> bool {
        self.matches(target)
    }
    fn literal_ip(&self) -> Option<IpAddr> {
        self.host.literal_ip()
    }
    fn names_address(&self, target: &SshTarget, ip: IpAddr) -> bool {
        SshRule::names_address(self, target, ip)
    }
    fn show(target: &SshTarget) -> String {
        target.to_string()
    }
}

/// The grant of one call for one capability: the manifest's rules, narrowed by `orch.yaml`.
#[derive(Debug, Clone)]
pub struct Grant<R> {
    manifest: Vec<R>,
    operator: Option<Vec<R>>,
}

/// What a call may reach over HTTP.
pub type HttpGrant = Grant<HttpRule>;
/// What a call may reach over SSH.
pub type SshGrant = Grant<SshRule>;

impl<R: Rule> Grant<R> {
    /// Builds the grant for one call from the manifest's rules and the operator's narrowing.
    pub fn new(
        manifest_rules: &[String],
        operator_rules: Option<&[String]>,
        globals: &Map<String, Value>,
    ) -> Result<Self, String> {
        let mut manifest = Vec::new();
        for rule in manifest_rules {
            if let Some(r) = R::expand_for_call(rule, globals)? {
                manifest.push(r);
            }
        }
        let operator = operator_rules
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| R::parse_literal(r))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Grant { manifest, operator })
    }

    /// A grant that allows nothing (used for `describe`).
    pub fn none() -> Self {
        Grant {
            manifest: Vec::new(),
            operator: None,
        }
    }

    /// `Ok` when the target is allowed; otherwise the reason, naming the rules consulted.
    pub fn check(&self, target: &R::Target) -> Result<(), String> {
        let list = |rules: &[R]| {
            if rules.is_empty() {
                "none".to_string()
            } else {
                rules
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let shown = R::show(target);
        if !self.manifest.iter().any(|r| r.allows(target)) {
            return Err(format!(
                "{shown} is not covered by the plugin's manifest (capabilities.{}: {})",
                R::KIND,
                list(&self.manifest)
            ));
        }
        if let Some(op) = &self.operator
            && !op.iter().any(|r| r.allows(target))
        {
            return Err(format!(
                "{shown} is not granted by orch.yaml (grants.<plugin>.{}: {})",
                R::KIND,
                list(op)
            ));
        }
        Ok(())
    }
}

impl<R: Rule> Grant<R> {
    /// The loopback, link-local and metadata addresses this grant names literally for the
    /// target: a connection to the target may reach those (after DNS) and no other such address.
    /// Every layer (the manifest, and `orch.yaml` when it narrows) must name the address.
    pub fn named_addresses(&self, target: &R::Target) -> super::egress::AddressPolicy {
        let named = |rules: &[R], ip: IpAddr| rules.iter().any(|r| r.names_address(target, ip));
        let candidates = self
            .manifest
            .iter()
            .filter_map(R::literal_ip)
            .filter(|ip| super::egress::guarded_kind(*ip).is_some());
        super::egress::AddressPolicy::allowing(candidates.filter(|ip| {
            named(&self.manifest, *ip) && self.operator.as_deref().is_none_or(|op| named(op, *ip))
        }))
    }
}

impl<R> Default for Grant<R> {
    fn default() -> Self {
        Grant {
            manifest: Vec::new(),
            operator: None,
        }
    }
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
        let ssh = SshGrant::new(&["root@127.0.0.1:22".to_string()], None, &Map::new()).unwrap();
        let policy = ssh.named_addresses(&target("root", "localhost", 22));
        assert!(policy.check("localhost", ip("127.0.0.1")).is_ok());
        let policy = ssh.named_addresses(&target("admin", "localhost", 22));
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

    fn target(user: &str, host: &str, port: u16) -> SshTarget {
        SshTarget::new(host, port, user).unwrap()
    }

    #[test]
    fn ssh_rule_matches_host_port_and_optional_user() {
        let r = SshRule::parse("10.0.0.4:22").unwrap();
        assert!(r.matches(&target("root", "10.0.0.4", 22)));
        assert!(!r.matches(&target("root", "10.0.0.4", 2222)));
        assert!(!r.matches(&target("root", "10.0.0.5", 22)));
        let r = SshRule::parse("deploy@*.lan:*").unwrap();
        assert!(r.matches(&target("deploy", "web.lan", 2200)));
        assert!(!r.matches(&target("root", "web.lan", 22)));
        assert!(!r.matches(&target("deploy", "lan", 22)));
        let r = SshRule::parse("[::1]:22").unwrap();
        assert!(r.matches(&target("u", "0:0::1", 22)));
    }

    #[test]
    fn loose_ssh_rules_are_rejected() {
        for (rule, why) in [
            ("ssh://10.0.0.4:22", "scheme"),
            ("10.0.0.4:22/root", "paths"),
            ("10.0.0.4", "port is required"),
            ("10.0.0.4:0", "bad port"),
            ("ex*ample.com:22", "`*`"),
            ("ro ot@h:22", "spaces"),
        ] {
            let err = SshRule::check_syntax(rule).unwrap_err();
            assert!(err.contains(why), "{rule}: {err}");
        }
        assert!(SshRule::check_syntax("{{ env.HOST }}:22").is_err());
        assert!(SshRule::check_syntax("{{ globalArguments.sshHost }}:22").is_ok());
        assert!(
            SshRule::check_syntax("{{ globalArguments.sshHost }}:{{ globalArguments.sshPort }}")
                .is_ok()
        );
        assert!(SshRule::check_syntax("{{ globalArguments.sshHost }}/x:22").is_err());
        assert!(SshRule::check_syntax("{{ globalArguments.sshHost }}").is_ok());
    }

    #[test]
    fn ssh_templates_expand_per_part_and_never_bring_wildcards() {
        let globals = json!({"sshHost": "127.0.0.1", "sshPort": 2222, "wild": "*"});
        let globals = globals.as_object().unwrap();
        let r = SshRule::expand(
            "{{ globalArguments.sshHost }}:{{ globalArguments.sshPort }}",
            globals,
        )
        .unwrap()
        .unwrap();
        assert!(r.matches(&target("root", "127.0.0.1", 2222)));
        assert!(!r.matches(&target("root", "127.0.0.1", 22)));
        assert!(r.to_string().ends_with("= 127.0.0.1:2222"), "{r}");
        let err = SshRule::expand("{{ globalArguments.wild }}:22", globals).unwrap_err();
        assert!(err.contains("`*`"), "{err}");
        assert!(
            SshRule::expand("{{ globalArguments.missing }}:22", globals)
                .unwrap()
                .is_none()
        );
        let inject = json!({"sshHost": "10.0.0.1:2222"});
        assert!(
            SshRule::expand(
                "{{ globalArguments.sshHost }}:22",
                inject.as_object().unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn ssh_grant_denial_names_the_target_and_the_rules() {
        let globals = json!({"sshHost": "127.0.0.1"});
        let g = SshGrant::new(
            &["{{ globalArguments.sshHost }}:22".to_string()],
            None,
            globals.as_object().unwrap(),
        )
        .unwrap();
        assert!(g.check(&target("root", "127.0.0.1", 22)).is_ok());
        let err = g.check(&target("root", "10.9.9.9", 22)).unwrap_err();
        assert!(
            err.contains("root@10.9.9.9:22") && err.contains("{{ globalArguments.sshHost }}:22"),
            "{err}"
        );
        let narrowed = SshGrant::new(
            &["*:*".to_string()],
            Some(&["admin@10.0.0.4:22".to_string()]),
            &Map::new(),
        )
        .unwrap();
        assert!(narrowed.check(&target("admin", "10.0.0.4", 22)).is_ok());
        let err = narrowed.check(&target("root", "10.0.0.4", 22)).unwrap_err();
        assert!(err.contains("orch.yaml"), "{err}");
    }
}
