//! nginx configuration as text: port-map validation, the stream proxy file `configure` writes,
//! the `include` that `init` adds to nginx.conf, and the decision after `nginx -t`.

use orch_plugin_sdk::{JsonSchema, Result, Value, error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Transport of a proxied port.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A port as users write it: a number, or digits in a string (YAML keys and CEL text).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortValue {
    /// `25565`.
    Number(i64),
    /// `"25565"`.
    Text(String),
}

/// One entry of the list form of `portMap`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortEntry {
    /// Port nginx listens on.
    pub listen: PortValue,
    /// Port on the target it forwards to.
    pub backend: PortValue,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: Option<Protocol>,
}

/// `portMap`: which ports to forward.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortMap {
    /// `{"25565": 25565}`: listen port → backend port over TCP; a key may end in `/udp`.
    Object(BTreeMap<String, PortValue>),
    /// `[{"listen": 19132, "backend": 19132, "protocol": "udp"}]`.
    List(Vec<PortEntry>),
    /// Either form as JSON text (what a workflow input often carries).
    Json(String),
}

/// One validated forwarding rule.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PortRule {
    /// Port nginx listens on.
    pub listen: u16,
    /// Transport.
    pub protocol: Protocol,
    /// Port on the target.
    pub backend: u16,
}

fn port(what: &str, value: &PortValue) -> Result<u16> {
    let number = match value {
        PortValue::Number(n) => Some(*n),
        PortValue::Text(t) => t.trim().parse::<i64>().ok(),
    };
    match number {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(error::invalid(format!(
            "{what} {} is not a port (1–65535)",
            match value {
                PortValue::Number(n) => n.to_string(),
                PortValue::Text(t) => format!("{t:?}"),
            }
        ))),
    }
}

fn protocol_from_key(key: &str) -> Result<(&str, Protocol)> {
    match key.trim().split_once('/') {
        None => Ok((key.trim(), Protocol::Tcp)),
        Some((port, "tcp")) => Ok((port, Protocol::Tcp)),
        Some((port, "udp")) => Ok((port, Protocol::Udp)),
        Some(_) => Err(error::invalid(format!(
            "portMap key {key:?} must be a port, optionally with /tcp or /udp"
        ))),
    }
}

/// Checks every port (1–65535, no listen port twice per protocol) and sorts the rules.
pub fn port_rules(map: &PortMap) -> Result<Vec<PortRule>> {
    let mut rules = Vec::new();
    match map {
        PortMap::Json(text) => {
            let parsed: PortMap = serde_json::from_str::<Value>(text)
                .ok()
                .filter(|v| v.is_object() || v.is_array())
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| {
                    error::invalid(
                        "portMap text must be a JSON object {\"listen\": backend} or a list of \
                         {listen, backend, protocol}",
                    )
                })?;
            return port_rules(&parsed);
        }
        PortMap::Object(entries) => {
            for (key, backend) in entries {
                let (listen, protocol) = protocol_from_key(key)?;
                rules.push(PortRule {
                    listen: port("listen port", &PortValue::Text(listen.to_string()))?,
                    protocol,
                    backend: port(&format!("backend port for {key}"), backend)?,
                });
            }
        }
        PortMap::List(entries) => {
            for entry in entries {
                rules.push(PortRule {
                    listen: port("listen port", &entry.listen)?,
                    protocol: entry.protocol.unwrap_or_default(),
                    backend: port("backend port", &entry.backend)?,
                });
            }
        }
    }
    if rules.is_empty() {
        return Err(error::invalid("portMap is empty; give at least one port"));
    }
    rules.sort();
    for pair in rules.windows(2) {
        if (pair[0].listen, pair[0].protocol) == (pair[1].listen, pair[1].protocol) {
            return Err(error::invalid(format!(
                "listen port {}/{} appears twice in portMap",
                pair[0].listen,
                pair[0].protocol.as_str()
            )));
        }
    }
    Ok(rules)
}

/// Checks a proxy name; it becomes a file name and part of nginx upstream names.
pub fn check_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(name)
    } else {
        Err(error::invalid(format!(
            "name {name:?} must be 1–64 letters, digits, `_` or `-` (it names the .conf file)"
        )))
    }
}

/// The backend address as nginx writes it: an IP (IPv6 in brackets) or a host name.
pub fn backend_host(target: &str) -> Result<String> {
    let target = target.trim();
    if let Ok(ip) = target.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    let hostname = !target.is_empty()
        && target.len() <= 253
        && target.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if hostname {
        Ok(target.to_ascii_lowercase())
    } else {
        Err(error::invalid(format!(
            "targetIp {target:?} is not an IP address or host name (is the VM running?)"
        )))
    }
}

/// Checks a path that is written into nginx config or shell commands: absolute, and free of
/// characters nginx would read as syntax.
pub fn check_path<'a>(what: &str, path: &'a str) -> Result<&'a str> {
    let ok = path.starts_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
    if ok {
        Ok(path)
    } else {
        Err(error::invalid(format!(
            "{what} {path:?} must be an absolute path of letters, digits and / . _ - + @"
        )))
    }
}

/// The include dir without a trailing slash (`/` stays `/`).
pub fn normalize_dir(dir: &str) -> &str {
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

/// The file `configure` writes for proxy `name`.
pub fn proxy_path(include_dir: &str, name: &str) -> String {
    format!(
        "{}/{name}.conf",
        normalize_dir(include_dir).trim_end_matches('/')
    )
}

/// The stream config for one proxy: an `upstream` and a `server` block per rule.
pub fn render_proxy(name: &str, backend: &str, rules: &[PortRule]) -> String {
    let mut text = format!(
        "# Managed by orch (nginx/stream configure) for `{name}`; edits here are overwritten.\n"
    );
    for rule in rules {
        let protocol = rule.protocol.as_str();
        let upstream = format!("{name}_{}_{protocol}", rule.listen);
        let listen = match rule.protocol {
            Protocol::Tcp => rule.listen.to_string(),
            Protocol::Udp => format!("{} udp", rule.listen),
        };
        text.push_str(&format!(
            "\nupstream {upstream} {{\n    server {backend}:{};\n}}\n\n\
             server {{\n    listen {listen};\n    proxy_pass {upstream};\n}}\n",
            rule.backend
        ));
    }
    text
}

/// One nginx statement: its words (quotes removed) and what ended it.
#[derive(Debug, PartialEq, Eq)]
struct Statement {
    words: Vec<String>,
    /// `;`, `{` or `}`.
    terminator: char,
    /// Byte offset of the terminator.
    end: usize,
    /// Block depth the statement is at (0 = main context).
    depth: usize,
}

/// Splits nginx config into statements, skipping comments and honouring quotes. Malformed text
/// (an unclosed quote) simply ends the scan: nothing here may panic on what is on the host.
fn statements(conf: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    for (i, c) in conf.char_indices() {
        if comment {
            comment = c != '\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                word.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '#' => comment = true,
            '"' | '\'' => quote = Some(c),
            ';' | '{' | '}' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                out.push(Statement {
                    words: std::mem::take(&mut words),
                    terminator: c,
                    end: i,
                    depth,
                });
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    out
}

/// True when the config already includes something from `dir` (e.g. `dir/*.conf`). Relative
/// include paths are read against `conf_dir`, the directory of nginx.conf, as nginx does.
pub fn includes_dir(conf: &str, conf_dir: &str, dir: &str) -> bool {
    let dir = normalize_dir(dir);
    statements(conf).iter().any(|s| {
        s.terminator == ';'
            && s.words.first().is_some_and(|w| w == "include")
            && s.words.get(1).is_some_and(|path| {
                let path = if path.starts_with('/') {
                    path.clone()
                } else {
                    format!("{}/{path}", normalize_dir(conf_dir).trim_end_matches('/'))
                };
                path.rsplit_once('/')
                    .is_some_and(|(parent, _)| normalize_dir(parent) == dir)
            })
    })
}

/// The directory of a file path (`/etc/nginx` for `/etc/nginx/nginx.conf`).
pub fn parent_dir(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

/// Byte offset just after the `{` of a top-level `stream` block, if there is one.
fn stream_block_body(conf: &str) -> Option<usize> {
    statements(conf)
        .iter()
        .find(|s| s.terminator == '{' && s.depth == 0 && s.words == ["stream"])
        .map(|s| s.end + 1)
}

/// nginx.conf with `include <dir>/*.conf;` in its stream block (added when missing), or None
/// when an include of `dir` is already there.
pub fn with_stream_include(conf: &str, conf_dir: &str, dir: &str) -> Option<String> {
    let dir = normalize_dir(dir);
    if includes_dir(conf, conf_dir, dir) {
        return None;
    }
    let include = format!("include {}/*.conf;", dir.trim_end_matches('/'));
    // A second `stream` block is an error ("directive is duplicate"), so join an existing one.
    if let Some(at) = stream_block_body(conf) {
        let mut text = conf.to_string();
        text.insert_str(at, &format!("\n    {include}"));
        return Some(text);
    }
    let mut text = conf.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "\n# Added by orch (nginx/stream init).\nstream {{\n    {include}\n}}\n"
    ));
    Some(text)
}

/// What to do with the new file once `nginx -t` has judged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterTest<'a> {
    /// The config is valid: reload nginx.
    Reload,
    /// Invalid: put the previous content back.
    Restore(&'a str),
    /// Invalid and there was no file before: remove the new one.
    Remove,
}

/// The decision after `nginx -t`: never leave an invalid file behind.
pub fn after_test(test_passed: bool, previous: Option<&str>) -> AfterTest<'_> {
    match (test_passed, previous) {
        (true, _) => AfterTest::Reload,
        (false, Some(text)) => AfterTest::Restore(text),
        (false, None) => AfterTest::Remove,
    }
}

/// nginx's complaint, with a hint for the common missing-module case.
pub fn test_failure(nginx_output: &str) -> String {
    let text = nginx_output.trim();
    if text.contains("unknown directive \"stream\"") {
        format!(
            "{text}\n(nginx has no stream module: install it, e.g. libnginx-mod-stream or nginx-mod-stream)"
        )
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests;
