//! The host names as text: checking `hosts`, rendering the addn-hosts file and the conf file
//! that points dnsmasq at it, and comparing a file found on the host with the desired one.
//!
//! Why two files: dnsmasq reads its conf files (and so `host-record=` or `address=` lines) only
//! when it starts; a SIGHUP (what `systemctl reload dnsmasq` sends) re-reads only the hosts
//! files named by `addn-hosts=`. So the names go into a hosts-format file, and the conf dir gets
//! one small file with `addn-hosts=<that file>`: changing names needs a reload, and only a new
//! or changed conf file needs a restart. The hosts file cannot live in the conf dir itself,
//! because Debian's dnsmasq reads every file there as configuration.

use orch_plugin_sdk::{JsonSchema, Result, Value, error};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One entry of `hosts`, as the definition (usually a CEL expression) gives it.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// DNS name (`web.lab`): labels of letters, digits and `-`, joined by dots.
    #[serde(default)]
    pub name: Option<String>,
    /// IPv4 or IPv6 address. Null (a stopped guest) is refused: filter such guests out in the
    /// expression.
    #[serde(default)]
    pub ip: Option<String>,
}

/// One validated name → address pair, as written to the hosts file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostRecord {
    /// The name, lower-case.
    pub name: String,
    /// The address in its canonical text form.
    pub ip: String,
}

/// Why `name` is not a DNS name, if it is not.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.len() > 253 {
        return Some("is longer than 253 characters");
    }
    if name.parse::<IpAddr>().is_ok() {
        return Some("is an address, not a name (are name and ip swapped?)");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("has an empty label (two dots in a row, or a dot at either end)");
        }
        if label.len() > 63 {
            return Some("has a label longer than 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Some("may only hold letters, digits, `-` and dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("has a label that starts or ends with `-`");
        }
    }
    None
}

/// Checks every entry and returns the records sorted by name, then address, without exact
/// duplicates (aggregations over guests often repeat one). A name may have several addresses
/// (IPv4 and IPv6, or round robin). A bad entry is refused naming its index and field.
pub fn records(hosts: &[HostEntry]) -> Result<Vec<HostRecord>> {
    let mut set: BTreeSet<(String, IpAddr)> = BTreeSet::new();
    for (i, entry) in hosts.iter().enumerate() {
        let Some(name) = entry.name.as_deref().map(str::trim) else {
            return Err(error::invalid(format!(
                "hosts[{i}].name is missing or null; every entry needs a name and an ip"
            )));
        };
        if let Some(problem) = name_problem(name) {
            return Err(error::invalid(format!(
                "hosts[{i}].name {name:?} {problem}; a DNS name is labels of letters, digits \
                 and `-` joined by dots, like web.lab"
            )));
        }
        let ip = match entry.ip.as_deref().map(str::trim) {
            None => {
                return Err(error::invalid(format!(
                    "hosts[{i}].ip is null for {name} (a stopped guest has no IP); filter such \
                     entries out in the expression, e.g. `.filter(g, g.ip != null)`"
                )));
            }
            Some(text) => text.parse::<IpAddr>().map_err(|_| {
                error::invalid(format!(
                    "hosts[{i}].ip {text:?} for {name} is not an IPv4 or IPv6 address"
                ))
            })?,
        };
        set.insert((name.to_ascii_lowercase(), ip));
    }
    Ok(set
        .into_iter()
        .map(|(name, ip)| HostRecord {
            name,
            ip: ip.to_string(),
        })
        .collect())
}

/// The first line of both files.
const HEADER: &str = "# Managed by orch (dns/dnsmasq converge); edits here are overwritten.\n";

/// The addn-hosts file: `<ip> <name>` per record, in the order of `records` (sorted).
pub fn render_hosts(records: &[HostRecord]) -> String {
    let mut text =
        format!("{HEADER}# Read by dnsmasq through addn-hosts=; a SIGHUP (reload) re-reads it.\n");
    for record in records {
        text.push_str(&format!("{} {}\n", record.ip, record.name));
    }
    text
}

/// The conf-dir file that makes dnsmasq read `hosts_file`.
pub fn render_conf(hosts_file: &str) -> String {
    format!(
        "{HEADER}# dnsmasq reads conf files only at start but re-reads addn-hosts files on SIGHUP,\n\
         # so the names live in {hosts_file} and changing them needs only a reload.\n\
         addn-hosts={hosts_file}\n"
    )
}

/// The addresses per name in a hosts-format file (comments and blank lines skipped).
pub fn parse_hosts(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(ip) = words.next() else { continue };
        for name in words {
            names
                .entry(name.to_ascii_lowercase())
                .or_default()
                .insert(ip.to_string());
        }
    }
    names
}

fn addresses_value(ips: &BTreeSet<String>) -> Value {
    if ips.len() == 1 {
        Value::String(ips.iter().next().cloned().unwrap_or_default())
    } else {
        Value::Array(ips.iter().cloned().map(Value::String).collect())
    }
}

/// One name whose addresses differ: (JSON Pointer `/hosts/<name>`, before, after); an address
/// list is a string for one address and an array for several, absent is None.
pub type NameChange = (String, Option<Value>, Option<Value>);

/// The names whose addresses differ between the file on the host (`before`, hosts format) and
/// the desired records, sorted by name.
pub fn name_changes(before: &str, records: &[HostRecord]) -> Vec<NameChange> {
    let old = parse_hosts(before);
    let mut new: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for record in records {
        new.entry(record.name.clone())
            .or_default()
            .insert(record.ip.clone());
    }
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .map(|name| {
            // JSON Pointer escaping; a valid DNS name has neither character, a hand edit might.
            let pointer = name.replace('~', "~0").replace('/', "~1");
            (
                format!("/hosts/{pointer}"),
                old.get(name).map(addresses_value),
                new.get(name).map(addresses_value),
            )
        })
        .collect()
}

/// Checks a path that is written into dnsmasq config and shell commands: absolute, and made of
/// characters neither dnsmasq nor a shell reads as syntax.
pub fn check_path<'a>(what: &str, path: &'a str) -> Result<&'a str> {
    let trimmed = path.trim_end_matches('/');
    let ok = path.starts_with('/')
        && !trimmed.is_empty()
        && !path.split('/').any(|part| part == "..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
    if ok {
        Ok(trimmed)
    } else {
        Err(error::invalid(format!(
            "{what} {path:?} must be an absolute path (not /) of letters, digits and / . _ - + @, \
             without `..`"
        )))
    }
}

/// Checks a file name inside the conf dir: no slash, and not hidden (dnsmasq skips dotfiles
/// and files ending in `~` in a conf dir, so such a file would silently never be read).
pub fn check_file_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('~')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+@".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(error::invalid(format!(
            "fileName {name:?} must be a file name of letters, digits and . _ - + @ that does not \
             start with `.` or end with `~` (dnsmasq skips those in its conf dir)"
        )))
    }
}

/// The directory of an absolute path (`/etc` for `/etc/x.hosts`, `/` for `/x`).
pub fn parent_dir(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

/// Where a new version of `path` is staged: a dotfile beside it, which dnsmasq's conf dir
/// scan skips, so a half-done converge never leaves a file dnsmasq would read.
pub fn staging_path(path: &str) -> String {
    let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
    format!("{dir}/.{base}.orch-new")
}

#[cfg(test)]
mod tests;
