//! `docker/compose`: a Docker Compose project on an SSH host. Command building and the parsing
//! of `docker compose ps --format json` are pure; the methods talk through
//! [`Connector`]/[`Remote`], so they run natively against a fake session in tests.

use crate::remote::{self, Connector, Output, Remote};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Deserializer, Serialize};

fn default_docker_bin() -> String {
    "docker".to_string()
}

remote::ssh_globals! {
    /// Global arguments of `docker/compose`.
    pub struct ComposeGlobals {
        /// Directory of the project on the host (where compose.yaml lives), e.g. `/opt/calamity`.
        pub project_dir: String,
        /// Compose file, relative to projectDir or absolute (default: Compose's own lookup).
        #[serde(default)]
        pub compose_file: Option<String>,
        /// The docker CLI (default `docker`; Compose v2 runs as `docker compose`).
        #[serde(default = "default_docker_bin")]
        pub docker_bin: String,
    }
}

impl ComposeGlobals {
    /// `cd <projectDir> && <docker> compose [-f <file>] <args>`, every value quoted.
    pub fn command(&self, args: &[&str]) -> Result<String> {
        let dir = self.project_dir.trim();
        if dir.is_empty() {
            return Err(error::invalid("projectDir must not be empty"));
        }
        let bin = self.docker_bin.trim();
        if bin.is_empty() {
            return Err(error::invalid("dockerBin must not be empty"));
        }
        let mut command = format!("cd {} && {} compose", shell_quote(dir), shell_quote(bin));
        if let Some(file) = self
            .compose_file
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            command.push_str(&format!(" -f {}", shell_quote(file)));
        }
        for arg in args {
            command.push(' ');
            command.push_str(arg);
        }
        Ok(command)
    }
}

/// `up -d`.
pub const UP: &[&str] = &["up", "-d"];
/// `down`.
pub const DOWN: &[&str] = &["down"];
/// `pull`.
pub const PULL: &[&str] = &["pull"];
/// `ps --all --format json`: `--all` so a crashed (exited) service shows up rather than vanishing.
pub const PS: &[&str] = &["ps", "--all", "--format", "json"];

/// No arguments (the SDK's).
pub use orch_plugin_sdk::NoArgs;

/// What `start`, `stop` and `update` return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionOutput {
    /// The compose commands run, in order.
    pub commands: Vec<String>,
    /// What Compose printed (progress goes to stderr), trimmed and bounded.
    pub output: String,
}

/// One published port of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Publisher {
    /// Host address it is bound to (`0.0.0.0`, `::`, or empty when not published).
    pub url: String,
    /// Port inside the container.
    pub target_port: u32,
    /// Port on the host (0 when only exposed).
    pub published_port: u32,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// One container of the project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceState {
    /// The compose service, e.g. `terraria`.
    pub service: String,
    /// The container, e.g. `calamity-terraria-1`.
    pub name: String,
    /// `running`, `exited`, `restarting`, `created`, `paused`, `dead`.
    pub state: String,
    /// Docker's status text, e.g. `Up 2 hours (healthy)`; empty in older Compose.
    pub status: String,
    /// `healthy`, `unhealthy` or `starting`; null without a health check.
    pub health: Option<String>,
    /// Exit code of a stopped container.
    pub exit_code: Option<i64>,
    /// Published ports.
    pub publishers: Vec<Publisher>,
}

/// Attributes of the `status` resource and `status`'s output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusResource {
    /// The project directory.
    pub project_dir: String,
    /// The project's containers, by service.
    pub services: Vec<ServiceState>,
    /// How many are running.
    pub running: usize,
    /// How many there are.
    pub total: usize,
    /// True when there is at least one container, all run and none is unhealthy.
    pub healthy: bool,
    /// When it was read (RFC 3339, UTC).
    pub timestamp: String,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `Publishers[]` as Compose prints it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPublisher {
    #[serde(rename = "URL", default, deserialize_with = "null_as_empty")]
    url: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    target_port: u32,
    #[serde(default, deserialize_with = "null_as_empty")]
    published_port: u32,
    #[serde(default, deserialize_with = "null_as_empty")]
    protocol: String,
}

/// One entry of `docker compose ps --format json`; unknown fields (ID, Image, Labels…) ignored.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    #[serde(default, deserialize_with = "null_as_empty")]
    name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    service: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    state: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    status: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    health: String,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    publishers: Vec<RawPublisher>,
}

impl From<RawContainer> for ServiceState {
    fn from(raw: RawContainer) -> Self {
        let running = raw.state == "running";
        ServiceState {
            service: raw.service,
            name: raw.name,
            state: raw.state,
            status: raw.status,
            health: Some(raw.health).filter(|h| !h.is_empty()),
            // A running container's ExitCode is a meaningless 0.
            exit_code: raw.exit_code.filter(|_| !running),
            publishers: raw
                .publishers
                .into_iter()
                .map(|p| Publisher {
                    url: p.url,
                    target_port: p.target_port,
                    published_port: p.published_port,
                    protocol: p.protocol,
                })
                .collect(),
        }
    }
}

fn unexpected(what: &str, e: impl std::fmt::Display) -> orch_plugin_sdk::Error {
    error::failed(format!(
        "docker compose ps printed {what} that is not the expected JSON: {e}"
    ))
}

/// Parses `docker compose ps --format json` in both of its forms: one JSON array (Compose
/// before 2.21) or one JSON object per line (2.21 and later). Lines that are not JSON objects
/// (a stray warning) are skipped; a line that starts like one but does not parse is an error.
pub fn parse_ps(stdout: &str) -> Result<Vec<ServiceState>> {
    let text = stdout.trim();
    let raw: Vec<RawContainer> =
        if text.is_empty() || text == "null" {
            Vec::new()
        } else if text.starts_with('[') {
            serde_json::from_str(text).map_err(|e| unexpected("an array", e))?
        } else {
            let mut entries = Vec::new();
            for line in text.lines().map(str::trim) {
                if !line.starts_with('{') {
                    continue;
                }
                entries.push(serde_json::from_str(line).map_err(|e| {
                    unexpected(&format!("a line ({})", remote::bounded(line, 80)), e)
                })?);
            }
            if entries.is_empty() {
                return Err(unexpected(
                    "output",
                    format!("no JSON in {:?}", remote::bounded(text, 200)),
                ));
            }
            entries
        };
    let mut services: Vec<ServiceState> = raw.into_iter().map(ServiceState::from).collect();
    services.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    Ok(services)
}

/// Summarizes parsed containers into the `status` resource.
pub fn summarize(project_dir: &str, services: Vec<ServiceState>, now: &str) -> StatusResource {
    let running = services.iter().filter(|s| s.state == "running").count();
    let unhealthy = services
        .iter()
        .any(|s| s.health.as_deref() == Some("unhealthy"));
    StatusResource {
        project_dir: project_dir.to_string(),
        total: services.len(),
        healthy: !services.is_empty() && running == services.len() && !unhealthy,
        running,
        services,
        timestamp: now.to_string(),
    }
}

/// Runs compose commands in order, stopping at the first failure.
fn run_all<C: Connector>(
    connector: &C,
    globals: &ComposeGlobals,
    model: &str,
    steps: &[&[&str]],
) -> Result<ActionOutput> {
    let commands = steps
        .iter()
        .map(|args| globals.command(args))
        .collect::<Result<Vec<_>>>()?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    let mut log = String::new();
    for (command, args) in commands.iter().zip(steps) {
        let out: Output = remote.run(command)?;
        let printed = format!("{}{}", out.stderr, out.stdout);
        if !out.success() {
            return Err(error::failed(format!(
                "docker compose {} failed (exit {}): {}",
                args.join(" "),
                out.exit_code,
                out.reason()
            )));
        }
        log.push_str(printed.trim());
        log.push('\n');
    }
    // Keep the tail: the end of Compose's progress output says what finally happened.
    let trimmed = log.trim();
    let tail_start = trimmed.len().saturating_sub(4000);
    let tail_start = (tail_start..=trimmed.len())
        .find(|&i| trimmed.is_char_boundary(i))
        .unwrap_or(trimmed.len());
    Ok(ActionOutput {
        commands,
        output: trimmed[tail_start..].to_string(),
    })
}

/// `start`: `docker compose up -d`.
pub fn start<C: Connector>(c: &C, g: &ComposeGlobals, model: &str) -> Result<ActionOutput> {
    run_all(c, g, model, &[UP])
}

/// `stop`: `docker compose down`.
pub fn stop<C: Connector>(c: &C, g: &ComposeGlobals, model: &str) -> Result<ActionOutput> {
    run_all(c, g, model, &[DOWN])
}

/// `update`: `docker compose pull`, then `up -d` (only when the pull worked).
pub fn update<C: Connector>(c: &C, g: &ComposeGlobals, model: &str) -> Result<ActionOutput> {
    run_all(c, g, model, &[PULL, UP])
}

/// `status`: the project's containers from `docker compose ps`.
pub fn status<C: Connector>(
    connector: &C,
    globals: &ComposeGlobals,
    model: &str,
    now: &str,
) -> Result<StatusResource> {
    let command = globals.command(PS)?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    let out = remote.run(&command)?;
    if !out.success() {
        return Err(error::failed(format!(
            "docker compose ps failed (exit {}): {}",
            out.exit_code,
            out.reason()
        )));
    }
    let services = parse_ps(&out.stdout)?;
    Ok(summarize(globals.project_dir.trim(), services, now))
}

#[cfg(test)]
mod tests;
