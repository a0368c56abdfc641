//! `docker/engine`: the Docker Engine on an SSH host (install, build, run, stop, inspect, exec).
//! Command building is pure; the methods talk through [`Connector`]/[`Remote`], so they run
//! natively against a fake session in tests. Every command is run on its own, so the first one
//! that fails stops the method with its exit code and the remote stderr.

use crate::remote::{self, Connector, Remote};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn default_docker_bin() -> String {
    "docker".to_string()
}

/// How `install` installs the engine when it is missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InstallMethod {
    /// Docker's convenience script from <https://get.docker.com> (fetched with curl).
    #[default]
    Script,
    /// Debian's `docker.io` package with apt-get.
    Apt,
}

remote::ssh_globals! {
    /// Global arguments of `docker/engine`.
    pub struct EngineGlobals {
        /// The docker CLI (default `docker`, looked up on the host's PATH).
        #[serde(default = "default_docker_bin")]
        pub docker_bin: String,
        /// How `install` installs a missing engine: `script` (get.docker.com, default) or `apt`.
        #[serde(default)]
        pub install_method: InstallMethod,
    }
}

/// What every action returns: the commands run, in order, and what the last one printed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionOutput {
    /// The commands run, in order.
    pub commands: Vec<String>,
    /// True when the method changed something (false when it found the work already done).
    pub changed: bool,
    /// The last command's stdout, trimmed and bounded.
    pub output: String,
}

/// Arguments of `build`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildArgs {
    /// Build context directory on the host.
    pub context: String,
    /// Image tag, e.g. `bot:latest`.
    pub tag: String,
    /// Dockerfile path (default: `Dockerfile` in the context).
    #[serde(default)]
    pub dockerfile: Option<String>,
}

/// Arguments of `run`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunArgs {
    /// Image to run.
    pub image: String,
    /// Container name; `run` does nothing when a container of that name runs already.
    pub name: String,
    /// Published ports, as `docker run -p` takes them (`8080:80`, `7777:7777/udp`).
    #[serde(default)]
    pub ports: Vec<String>,
    /// Environment; passed in a 0600 env file that is removed afterwards, never on the command line.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Volumes, as `docker run -v` takes them (`/srv/data:/data`).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Restart policy (`no`, `always`, `unless-stopped`, `on-failure`); default `unless-stopped`.
    #[serde(default)]
    pub restart: Option<String>,
}

/// Arguments naming one container (`stop`, `inspect`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameArgs {
    /// Container name.
    pub name: String,
}

/// Arguments of `exec`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecArgs {
    /// Container name.
    pub name: String,
    /// The command and its arguments, each passed as one word (no shell in between).
    pub command: Vec<String>,
}

/// What `exec` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutput {
    /// The command run on the host.
    pub command: String,
    /// Its stdout, bounded.
    pub stdout: String,
    /// Its stderr, bounded.
    pub stderr: String,
}

/// Attributes of the `container` resource (instance: the container name) and `inspect`'s output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResource {
    /// Container name (without Docker's leading `/`).
    pub name: String,
    /// Container id.
    pub id: String,
    /// The image it was created from.
    pub image: String,
    /// `created`, `running`, `paused`, `restarting`, `exited`, `dead`.
    pub status: String,
    /// True while it runs.
    pub running: bool,
    /// Exit code of the last run.
    pub exit_code: i64,
    /// Restart policy name.
    pub restart_policy: String,
    /// Published ports: `80/tcp` → `0.0.0.0:8080`.
    pub ports: BTreeMap<String, Vec<String>>,
    /// When it was read (RFC 3339, UTC).
    pub timestamp: String,
}

fn not_empty<'a>(value: &'a str, field: &str) -> Result<&'a str> {
    let v = value.trim();
    if v.is_empty() {
        return Err(error::invalid(format!("{field} must not be empty")));
    }
    Ok(v)
}

impl EngineGlobals {
    /// `<docker> <args…>`, every word quoted.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        let mut command = shell_quote(not_empty(&self.docker_bin, "dockerBin")?);
        for arg in args {
            command.push(' ');
            command.push_str(&shell_quote(arg));
        }
        Ok(command)
    }
}

/// The probe `install` starts with: exit 0 when the docker CLI is on the host.
pub fn probe(globals: &EngineGlobals) -> Result<String> {
    Ok(format!(
        "command -v {} >/dev/null",
        shell_quote(not_empty(&globals.docker_bin, "dockerBin")?)
    ))
}

/// The commands that install the engine with `method`.
pub fn install_commands(method: InstallMethod) -> Vec<String> {
    match method {
        InstallMethod::Script => vec![
            "curl -fsSL https://get.docker.com -o /tmp/get-docker.sh".into(),
            "sh /tmp/get-docker.sh".into(),
            "rm -f /tmp/get-docker.sh".into(),
        ],
        InstallMethod::Apt => vec![
            "apt-get update".into(),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io".into(),
        ],
    }
}

/// `docker build -t TAG [-f FILE] CONTEXT`.
pub fn build_command(globals: &EngineGlobals, args: &BuildArgs) -> Result<String> {
    let tag = not_empty(&args.tag, "tag")?;
    let context = not_empty(&args.context, "context")?;
    let mut words = vec!["build", "-t", tag];
    if let Some(file) = args
        .dockerfile
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        words.extend(["-f", file]);
    }
    words.push(context);
    globals.docker(&words)
}

/// `docker run -d --name NAME --restart R [-p …] [-v …] [--env-file FILE] IMAGE`.
pub fn run_command(
    globals: &EngineGlobals,
    args: &RunArgs,
    env_file: Option<&str>,
) -> Result<String> {
    let name = not_empty(&args.name, "name")?;
    let image = not_empty(&args.image, "image")?;
    let restart = args
        .restart
        .as_deref()
        .map(str::trim)
        .unwrap_or("unless-stopped");
    let mut words = vec!["run", "-d", "--name", name, "--restart", restart];
    for port in &args.ports {
        words.extend(["-p", not_empty(port, "ports[]")?]);
    }
    for volume in &args.volumes {
        words.extend(["-v", not_empty(volume, "volumes[]")?]);
    }
    if let Some(file) = env_file {
        words.extend(["--env-file", file]);
    }
    words.push(image);
    globals.docker(&words)
}

/// The env file's text: one `KEY=value` a line. Docker's env files cannot hold a newline.
pub fn env_file_text(env: &BTreeMap<String, String>) -> Result<String> {
    let mut text = String::new();
    for (key, value) in env {
        let ok_key = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok_key {
            return Err(error::invalid(format!(
                "env: `{key}` is not a variable name (letters, digits and `_`, not starting with a digit)"
            )));
        }
        if value.contains('\n') || value.contains('\r') {
            return Err(error::invalid(format!(
                "env.{key}: the value holds a line break, which Docker env files cannot carry"
            )));
        }
        text.push_str(&format!("{key}={value}\n"));
    }
    Ok(text)
}

/// Runs `command`; a non-zero exit fails with `what`, the exit code and the remote stderr.
fn step<R: Remote>(
    remote: &R,
    commands: &mut Vec<String>,
    command: String,
    what: &str,
) -> Result<String> {
    commands.push(command.clone());
    remote.run_ok(&command, what)
}

/// `install`: nothing when the docker CLI is there, else the install commands in order.
pub fn install<C: Connector>(c: &C, g: &EngineGlobals, model: &str) -> Result<ActionOutput> {
    let remote = remote::connect(c, &g.ssh(), model)?;
    let check = probe(g)?;
    let mut out = ActionOutput {
        commands: vec![check.clone()],
        ..ActionOutput::default()
    };
    if remote.run(&check)?.success() {
        return Ok(out);
    }
    for command in install_commands(g.install_method) {
        let what = command.clone();
        out.output = remote::bounded(
            step(&remote, &mut out.commands, command, &what)?.trim(),
            4000,
        );
    }
    remote.run_ok(
        &check,
        "docker is still missing after the install; the check",
    )?;
    out.commands.push(check);
    out.changed = true;
    Ok(out)
}

/// `build`: `docker build`.
pub fn build<C: Connector>(
    c: &C,
    g: &EngineGlobals,
    model: &str,
    args: &BuildArgs,
) -> Result<ActionOutput> {
    let command = build_command(g, args)?;
    let remote = remote::connect(c, &g.ssh(), model)?;
    let mut out = ActionOutput {
        changed: true,
        ..ActionOutput::default()
    };
    let printed = step(&remote, &mut out.commands, command, "docker build")?;
    out.output = remote::bounded(printed.trim(), 4000);
    Ok(out)
}

/// `docker container inspect --format '{{.State.Running}}' NAME`.
fn running_probe(g: &EngineGlobals, name: &str) -> Result<String> {
    g.docker(&[
        "container",
        "inspect",
        "--format",
        "{{.State.Running}}",
        name,
    ])
}

/// `run`: nothing when the container runs, `docker start` when it exists stopped, else
/// `docker run` with the environment in a 0600 file that is removed whatever happens.
pub fn run<C: Connector>(
    c: &C,
    g: &EngineGlobals,
    model: &str,
    args: &RunArgs,
) -> Result<ActionOutput> {
    let name = not_empty(&args.name, "name")?;
    let env_text = env_file_text(&args.env)?;
    let env_file = format!("/tmp/.orch-env-{name}");
    let command = run_command(g, args, (!args.env.is_empty()).then_some(env_file.as_str()))?;
    let remote = remote::connect(c, &g.ssh(), model)?;
    let probe = running_probe(g, name)?;
    let mut out = ActionOutput {
        commands: vec![probe.clone()],
        ..ActionOutput::default()
    };
    let state = remote.run(&probe)?;
    if state.success() {
        if state.stdout.trim() == "true" {
            return Ok(out);
        }
        step(
            &remote,
            &mut out.commands,
            g.docker(&["start", name])?,
            "docker start",
        )?;
        out.changed = true;
        return Ok(out);
    }
    if !args.env.is_empty() {
        remote.upload(&env_file, env_text.as_bytes(), 0o600)?;
    }
    let result = step(&remote, &mut out.commands, command, "docker run");
    if !args.env.is_empty() {
        let rm = format!("rm -f {}", shell_quote(&env_file));
        out.commands.push(rm.clone());
        let removed = remote.run_ok(&rm, "removing the env file");
        if result.is_ok() {
            removed?;
        }
    }
    out.output = remote::bounded(result?.trim(), 4000);
    out.changed = true;
    Ok(out)
}

/// `stop`: `docker stop NAME`.
pub fn stop<C: Connector>(
    c: &C,
    g: &EngineGlobals,
    model: &str,
    args: &NameArgs,
) -> Result<ActionOutput> {
    let command = g.docker(&["stop", not_empty(&args.name, "name")?])?;
    let remote = remote::connect(c, &g.ssh(), model)?;
    let mut out = ActionOutput {
        changed: true,
        ..ActionOutput::default()
    };
    step(&remote, &mut out.commands, command, "docker stop")?;
    Ok(out)
}

/// `docker container inspect` output, the fields `inspect` keeps.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInspect {
    id: String,
    name: String,
    #[serde(default)]
    config: RawConfig,
    state: RawState,
    #[serde(default)]
    host_config: RawHostConfig,
    #[serde(default)]
    network_settings: RawNetwork,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    #[serde(default)]
    image: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawState {
    status: String,
    running: bool,
    #[serde(default)]
    exit_code: i64,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHostConfig {
    #[serde(default)]
    restart_policy: RawRestart,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRestart {
    #[serde(default)]
    name: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNetwork {
    #[serde(default)]
    ports: Option<BTreeMap<String, Option<Vec<RawBinding>>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawBinding {
    #[serde(default)]
    host_ip: String,
    #[serde(default)]
    host_port: String,
}

/// Parses `docker container inspect NAME` (a JSON array of one object).
pub fn parse_inspect(stdout: &str, now: &str) -> Result<ContainerResource> {
    let mut all: Vec<RawInspect> = serde_json::from_str(stdout.trim()).map_err(|e| {
        error::failed(format!(
            "docker container inspect printed something that is not the expected JSON ({e}): {}",
            remote::bounded(stdout.trim(), 200)
        ))
    })?;
    if all.len() != 1 {
        return Err(error::failed(format!(
            "docker container inspect printed {} containers, expected 1",
            all.len()
        )));
    }
    let raw = all.remove(0);
    let ports = raw
        .network_settings
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|(port, bindings)| {
            let hosts = bindings
                .unwrap_or_default()
                .into_iter()
                .map(|b| format!("{}:{}", b.host_ip, b.host_port))
                .collect();
            (port, hosts)
        })
        .collect();
    Ok(ContainerResource {
        name: raw.name.trim_start_matches('/').to_string(),
        id: raw.id,
        image: raw.config.image,
        status: raw.state.status,
        running: raw.state.running,
        exit_code: raw.state.exit_code,
        restart_policy: raw.host_config.restart_policy.name,
        ports,
        timestamp: now.to_string(),
    })
}

/// `inspect`: `docker container inspect NAME`, parsed.
pub fn inspect<C: Connector>(
    c: &C,
    g: &EngineGlobals,
    model: &str,
    args: &NameArgs,
    now: &str,
) -> Result<ContainerResource> {
    let command = g.docker(&["container", "inspect", not_empty(&args.name, "name")?])?;
    let remote = remote::connect(c, &g.ssh(), model)?;
    let stdout = remote.run_ok(&command, "docker container inspect")?;
    parse_inspect(&stdout, now)
}

/// `exec`: `docker exec NAME CMD…`; a non-zero exit fails with the remote stderr.
pub fn exec<C: Connector>(
    c: &C,
    g: &EngineGlobals,
    model: &str,
    args: &ExecArgs,
) -> Result<ExecOutput> {
    let name = not_empty(&args.name, "name")?;
    if args.command.is_empty() {
        return Err(error::invalid("command must hold at least one word"));
    }
    let mut words = vec!["exec", name];
    words.extend(args.command.iter().map(String::as_str));
    let command = g.docker(&words)?;
    let remote = remote::connect(c, &g.ssh(), model)?;
    let out = remote.run(&command)?;
    if !out.success() {
        return Err(error::failed(format!(
            "docker exec failed (exit {}): {}",
            out.exit_code,
            out.reason()
        )));
    }
    Ok(ExecOutput {
        command,
        stdout: remote::bounded(&out.stdout, 16000),
        stderr: remote::bounded(&out.stderr, 4000),
    })
}

#[cfg(test)]
mod tests;
