//! The SSH allow-list grammar and the target sessions are keyed by.

use crate::capabilities::grant_rules::{
    Grant, HOLE, HostPattern, Rule, host_pattern, literal_host, literal_rule_text, punch_holes,
    split_host_port,
};
use serde_json::{Map, Value};
use std::net::IpAddr;

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
        let text = literal_rule_text(rule)?;
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

/// What a call may reach over SSH.
pub type SshGrant = Grant<SshRule>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn an_ssh_grant_names_an_address_only_through_a_literal_rule_for_that_user() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let ssh = SshGrant::new(&["root@127.0.0.1:22".to_string()], None, &Map::new()).unwrap();
        let policy = ssh.named_addresses(&target("root", "localhost", 22));
        assert!(policy.check("localhost", ip("127.0.0.1")).is_ok());
        let policy = ssh.named_addresses(&target("admin", "localhost", 22));
        assert!(policy.check("localhost", ip("127.0.0.1")).is_err());
    }
}
