//! What the HTTP and SSH allow-lists share: `{{ globalArguments.x }}` template expansion, the one
//! host-pattern parser, literal hosts, and the generic [`Grant`] that answers yes or no.
//!
//! The grammars themselves live beside their capability ([`super::http::grant`],
//! [`super::ssh::grant`]). A value a template brings in is always literal: a value from a
//! definition (which may come from another model's data) never widens a grant with `*`, an extra
//! port, user info, a path or a query.

use serde_json::{Map, Value};
use std::net::IpAddr;

/// A rule's host: any host, a `*.domain` suffix, or one literal host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

impl HostPattern {
    /// The IP address this pattern names literally, if it names one.
    pub(crate) fn literal_ip(&self) -> Option<IpAddr> {
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
pub(crate) const TEMPLATE_OPEN: &str = "{{";
pub(crate) const TEMPLATE_CLOSE: &str = "}}";

/// Longest part of a value shown in an error message.
pub(crate) const SHOWN_VALUE_CHARS: usize = 200;

/// A value as shown in a message: quoted, cut, control characters escaped.
pub(crate) fn shown_value(value: &str) -> String {
    match value.char_indices().nth(SHOWN_VALUE_CHARS) {
        Some((cut, _)) => format!("`{}…`", value[..cut].escape_debug()),
        None => format!("`{}`", value.escape_debug()),
    }
}
/// A rule's host part: `*` and `*.domain` only where the rule may hold wildcards (never in a
/// value that came from a template), otherwise one literal host.
pub(crate) fn host_pattern(rule: &str, host: &str, wildcard: bool) -> Result<HostPattern, String> {
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
/// The values of a rule's template fields; `None` when one is missing or null.
pub(crate) fn template_values(
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
pub(crate) fn template_fields(rule: &str) -> Result<Vec<&str>, String> {
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

/// Splits `host[:port]` (IPv6 hosts in brackets); `None` when it is malformed.
pub(crate) fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
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

/// Stands for a template while a rule's structure is checked; rules never hold control characters.
pub(crate) const HOLE: char = '\u{1}';

/// The text of a literal rule (an operator's, in orch.yaml): templates are refused, since only
/// a plugin's manifest may hold them.
pub(crate) fn literal_rule_text(rule: &str) -> Result<String, String> {
    if rule.contains(TEMPLATE_OPEN) {
        return Err(format!(
            "`{rule}`: templates are only allowed in a plugin's manifest"
        ));
    }
    Ok(punch_holes(rule)?.0)
}

/// The rule with each template replaced by [`HOLE`], and the fields the templates name.
pub(crate) fn punch_holes(rule: &str) -> Result<(String, Vec<&str>), String> {
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

/// A host name or IP address, normalized: lowercase, IPv6 canonical and without brackets.
pub(crate) fn literal_host(host: &str) -> Result<String, String> {
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

/// The grant of one call for one capability: the manifest's rules, narrowed by `orch.yaml`.
#[derive(Debug, Clone)]
pub struct Grant<R> {
    manifest: Vec<R>,
    operator: Option<Vec<R>>,
}

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
