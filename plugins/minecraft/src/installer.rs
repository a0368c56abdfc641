//! `minecraft/installer`: puts a server pack on an SSH host (Java, the pack zip, its files,
//! eula.txt and server.properties). The pack reaches the host as a URL the host downloads with
//! curl: a plugin cannot read the operator's files, and packs (hundreds of MB) are far too big
//! to travel as method arguments. Methods talk through [`Connector`]/[`Remote`], so they run
//! natively against a fake session in tests; the first failing remote command stops a method
//! with its exit code and the remote stderr.

use crate::remote::{self, Connector, Remote};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn default_java_bin() -> String {
    "java".to_string()
}

fn default_java_package() -> String {
    "openjdk-17-jre-headless".to_string()
}

remote::ssh_globals! {
    /// Global arguments of `minecraft/installer`.
    pub struct InstallerGlobals {
        /// The Debian package `installDeps` installs for Java (default `openjdk-17-jre-headless`).
        #[serde(default = "default_java_package")]
        pub java_package: String,
        /// The Java command the server runs with (default `java`); `installDeps` checks for it.
        #[serde(default = "default_java_bin")]
        pub java_bin: String,
    }
}

/// What the methods return.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallOutput {
    /// The commands run, in order (uploads as `upload PATH`).
    pub commands: Vec<String>,
    /// False when everything was in place already.
    pub changed: bool,
}

/// Arguments of `upload`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadArgs {
    /// Where the host downloads the pack from (http or https), e.g. a CurseForge server-pack URL.
    pub url: String,
    /// Where the zip goes on the host, e.g. `/opt/minecraft/atm10.zip`.
    pub zip: String,
    /// Expected sha256 of the zip (hex); when given, a download that differs is refused and a
    /// zip already there with this digest is not downloaded again.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Arguments of `extract`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractArgs {
    /// The zip on the host.
    pub zip: String,
    /// The server directory to unpack into (created when missing).
    pub server_dir: String,
}

/// Arguments of `configure`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigureArgs {
    /// The server directory.
    pub server_dir: String,
    /// Accept the Minecraft EULA (writes `eula=true` to eula.txt); required to be true.
    pub eula: bool,
    /// server.properties keys to set (e.g. `motd`, `server-port`); other keys stay as they are.
    #[serde(default)]
    pub properties: BTreeMap<String, serde_json::Value>,
}

fn not_empty<'a>(value: &'a str, field: &str) -> Result<&'a str> {
    let v = value.trim();
    if v.is_empty() {
        return Err(error::invalid(format!("{field} must not be empty")));
    }
    Ok(v)
}

fn step<R: Remote>(
    remote: &R,
    out: &mut InstallOutput,
    command: String,
    what: &str,
) -> Result<String> {
    out.commands.push(command.clone());
    remote.run_ok(&command, what)
}

/// `installDeps`: nothing when `javaBin` and `unzip` are there, else apt-get installs them.
pub fn install_deps<C: Connector>(
    c: &C,
    g: &InstallerGlobals,
    model: &str,
) -> Result<InstallOutput> {
    let package = not_empty(&g.java_package, "javaPackage")?;
    let java = shell_quote(not_empty(&g.java_bin, "javaBin")?);
    let remote = remote::connect(c, &g.ssh(), model)?;
    let check = format!("command -v {java} >/dev/null && command -v unzip >/dev/null");
    let mut out = InstallOutput {
        commands: vec![check.clone()],
        changed: false,
    };
    if remote.run(&check)?.success() {
        return Ok(out);
    }
    step(&remote, &mut out, "apt-get update".into(), "apt-get update")?;
    step(
        &remote,
        &mut out,
        format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y {} unzip",
            shell_quote(package)
        ),
        "apt-get install",
    )?;
    step(
        &remote,
        &mut out,
        format!("{java} -version"),
        "the Java check after the install",
    )?;
    out.changed = true;
    Ok(out)
}

fn check_sha256(value: Option<&str>) -> Result<Option<String>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() != 64 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(error::invalid("sha256 must be 64 hex digits"));
    }
    Ok(Some(v.to_ascii_lowercase()))
}

/// The first word of `sha256sum FILE`'s output.
fn digest_of<R: Remote>(remote: &R, out: &mut InstallOutput, path: &str) -> Result<String> {
    let printed = step(
        remote,
        out,
        format!("sha256sum {}", shell_quote(path)),
        "sha256sum",
    )?;
    Ok(printed
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase())
}

/// `upload`: the host downloads `url` with curl to `zip.part`, checks the digest when given,
/// then renames it to `zip` (an interrupted download never leaves a half zip under `zip`).
pub fn upload<C: Connector>(
    c: &C,
    g: &InstallerGlobals,
    model: &str,
    args: &UploadArgs,
) -> Result<InstallOutput> {
    let url = not_empty(&args.url, "url")?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(error::invalid(format!(
            "url `{}` must start with https:// or http:// (the host downloads it with curl)",
            remote::bounded(url, 200)
        )));
    }
    let zip = not_empty(&args.zip, "zip")?;
    let want = check_sha256(args.sha256.as_deref())?;
    let remote = remote::connect(c, &g.ssh(), model)?;
    let mut out = InstallOutput::default();
    if let Some(want) = &want {
        let probe = format!("test -f {}", shell_quote(zip));
        out.commands.push(probe.clone());
        if remote.run(&probe)?.success() && digest_of(&remote, &mut out, zip)? == *want {
            return Ok(out);
        }
    }
    let part = format!("{zip}.part");
    step(
        &remote,
        &mut out,
        format!("curl -fsSL -o {} {}", shell_quote(&part), shell_quote(url)),
        "downloading the server pack with curl",
    )?;
    if let Some(want) = &want {
        let got = digest_of(&remote, &mut out, &part)?;
        if got != *want {
            let _ = remote.run(&format!("rm -f {}", shell_quote(&part)));
            return Err(error::failed(format!(
                "the download from {url} has sha256 {got}, not the expected {want}; nothing was replaced"
            )));
        }
    }
    step(
        &remote,
        &mut out,
        format!("mv -f {} {}", shell_quote(&part), shell_quote(zip)),
        "moving the download into place",
    )?;
    out.changed = true;
    Ok(out)
}

/// `extract`: `unzip -tq` first (a corrupt zip fails here and nothing is unpacked), then
/// `unzip -oq` into the server directory.
pub fn extract<C: Connector>(
    c: &C,
    g: &InstallerGlobals,
    model: &str,
    args: &ExtractArgs,
) -> Result<InstallOutput> {
    let zip = not_empty(&args.zip, "zip")?;
    let dir = not_empty(&args.server_dir, "serverDir")?;
    let remote = remote::connect(c, &g.ssh(), model)?;
    let mut out = InstallOutput::default();
    let test = format!("unzip -tq {}", shell_quote(zip));
    out.commands.push(test.clone());
    let tested = remote.run(&test)?;
    if !tested.success() {
        return Err(error::failed(format!(
            "{zip} is not a readable zip archive (unzip -t exit {}): {}; download it again with upload",
            tested.exit_code,
            tested.reason()
        )));
    }
    step(
        &remote,
        &mut out,
        format!(
            "mkdir -p {d} && unzip -oq {z} -d {d}",
            d = shell_quote(dir),
            z = shell_quote(zip)
        ),
        "unzip",
    )?;
    out.changed = true;
    Ok(out)
}

/// A property value as server.properties writes it.
fn property_text(key: &str, value: &serde_json::Value) -> Result<String> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(_) | serde_json::Value::Number(_) => value.to_string(),
        _ => {
            return Err(error::invalid(format!(
                "properties.{key}: must be a string, number or boolean"
            )));
        }
    };
    if text.contains('\n') || text.contains('\r') {
        return Err(error::invalid(format!(
            "properties.{key}: must not hold a line break"
        )));
    }
    Ok(text)
}

/// Merges `set` into server.properties text key by key: a key already there keeps its line's
/// place, a new one is appended; comments and other keys stay as they are.
pub fn merge_properties(
    current: &str,
    set: &BTreeMap<String, serde_json::Value>,
) -> Result<String> {
    let mut pending: BTreeMap<&str, String> = BTreeMap::new();
    for (key, value) in set {
        let ok = !key.is_empty() && !key.contains(['=', ':', '#', '!', ' ', '\n', '\r']);
        if !ok {
            return Err(error::invalid(format!(
                "properties: `{key}` is not a property name"
            )));
        }
        pending.insert(key, property_text(key, value)?);
    }
    let mut lines = Vec::new();
    for line in current.lines() {
        let trimmed = line.trim_start();
        let key = trimmed
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|_| !trimmed.starts_with('#') && !trimmed.starts_with('!'));
        match key.and_then(|k| pending.remove(k).map(|v| (k, v))) {
            Some((k, v)) => lines.push(format!("{k}={v}")),
            None => lines.push(line.to_string()),
        }
    }
    for (k, v) in pending {
        lines.push(format!("{k}={v}"));
    }
    if lines.is_empty() {
        return Ok(String::new());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

/// `configure`: eula.txt and server.properties, each written only when it would change.
pub fn configure<C: Connector>(
    c: &C,
    g: &InstallerGlobals,
    model: &str,
    args: &ConfigureArgs,
) -> Result<InstallOutput> {
    let dir = not_empty(&args.server_dir, "serverDir")?.trim_end_matches('/');
    if !args.eula {
        return Err(error::invalid(
            "eula must be true: the server does not start until the Minecraft EULA \
             (https://aka.ms/MinecraftEULA) is accepted",
        ));
    }
    let remote = remote::connect(c, &g.ssh(), model)?;
    let mut out = InstallOutput::default();
    let eula_path = format!("{dir}/eula.txt");
    let eula = "eula=true\n";
    let current = remote.read_file(&eula_path)?;
    out.commands.push(format!("read {eula_path}"));
    if current.as_deref().map(str::trim) != Some(eula.trim()) {
        remote.upload(&eula_path, eula.as_bytes(), 0o644)?;
        out.commands.push(format!("upload {eula_path}"));
        out.changed = true;
    }
    let props_path = format!("{dir}/server.properties");
    let current = remote.read_file(&props_path)?.unwrap_or_default();
    out.commands.push(format!("read {props_path}"));
    let merged = merge_properties(&current, &args.properties)?;
    if merged != current {
        remote.upload(&props_path, merged.as_bytes(), 0o644)?;
        out.commands.push(format!("upload {props_path}"));
        out.changed = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
