//! `dns/dnsmasq converge` and its plan: compare the files on the host with the rendered ones;
//! when they differ, stage the new ones as dotfiles, check with `dnsmasq --test`, move them
//! into place and reload (or restart, when the conf file itself changed). The logic talks
//! through [`Connector`]/[`Remote`], so it runs natively against the SDK's fake host.

use crate::remote::{self, Connector, Remote};
use crate::zone::{self, HostEntry, HostRecord};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{JsonSchema, PlannedAction, PlannedChange, Result, Value, error};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

fn default_conf_dir() -> String {
    "/etc/dnsmasq.d".to_string()
}

fn default_file_name() -> String {
    "orch-hosts.conf".to_string()
}

fn default_hosts_file() -> String {
    "/etc/dnsmasq-orch.hosts".to_string()
}

fn default_test_command() -> String {
    "dnsmasq --test".to_string()
}

fn default_reload_command() -> String {
    "systemctl reload dnsmasq".to_string()
}

fn default_restart_command() -> String {
    "systemctl restart dnsmasq".to_string()
}

remote::ssh_globals! {
    /// Global arguments of `dns/dnsmasq`.
    pub struct DnsmasqGlobals {
        /// dnsmasq's conf dir (default `/etc/dnsmasq.d`); gets `<fileName>` with one `addn-hosts=` line.
        #[serde(default = "default_conf_dir")]
        pub conf_dir: String,
        /// The conf file in confDir (default `orch-hosts.conf`).
        #[serde(default = "default_file_name")]
        pub file_name: String,
        /// The hosts-format file holding the names (default `/etc/dnsmasq-orch.hosts`); outside
        /// confDir, because dnsmasq reads every file there as configuration.
        #[serde(default = "default_hosts_file")]
        pub hosts_file: String,
        /// Syntax check; `--conf-file=<the conf file>` is appended (default `dnsmasq --test`).
        #[serde(default = "default_test_command")]
        pub test_command: String,
        /// Run when only the names changed; must send SIGHUP (default `systemctl reload dnsmasq`).
        #[serde(default = "default_reload_command")]
        pub reload_command: String,
        /// Run when the conf file is new or changed, which dnsmasq reads only at start
        /// (default `systemctl restart dnsmasq`).
        #[serde(default = "default_restart_command")]
        pub restart_command: String,
        /// The names to serve: `[{name, ip}]`, usually a CEL expression over the declared
        /// guests, e.g. `${{ model.guests.resource.guest.map(g, …) }}`.
        pub hosts: Vec<HostEntry>,
    }
}

/// Everything `converge` will write and run, checked before any connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// `<confDir>/<fileName>`.
    pub conf_path: String,
    /// The hosts file.
    pub hosts_path: String,
    /// The conf file's content.
    pub conf_text: String,
    /// The hosts file's content.
    pub hosts_text: String,
    /// The records, sorted.
    pub records: Vec<HostRecord>,
    test: String,
    reload: String,
    restart: String,
}

fn command<'a>(what: &str, text: &'a str) -> Result<&'a str> {
    let text = text.trim();
    if text.is_empty() {
        Err(error::invalid(format!("{what} must not be empty")))
    } else {
        Ok(text)
    }
}

impl DnsmasqGlobals {
    /// Checks the globals and renders both files.
    pub fn desired(&self) -> Result<Desired> {
        let records = zone::records(&self.hosts)?;
        let conf_dir = zone::check_path("confDir", self.conf_dir.trim())?;
        let file_name = zone::check_file_name(self.file_name.trim())?;
        let hosts_path = zone::check_path("hostsFile", self.hosts_file.trim())?;
        let conf_path = format!("{conf_dir}/{file_name}");
        if zone::parent_dir(hosts_path) == conf_dir {
            return Err(error::invalid(format!(
                "hostsFile {hosts_path} is inside confDir {conf_dir}: dnsmasq would read it as \
                 configuration; put it elsewhere, e.g. /etc/dnsmasq-orch.hosts"
            )));
        }
        Ok(Desired {
            conf_text: zone::render_conf(hosts_path),
            hosts_text: zone::render_hosts(&records),
            records,
            conf_path,
            hosts_path: hosts_path.to_string(),
            test: command("testCommand", &self.test_command)?.to_string(),
            reload: command("reloadCommand", &self.reload_command)?.to_string(),
            restart: command("restartCommand", &self.restart_command)?.to_string(),
        })
    }
}

impl Desired {
    /// The test command checking the conf file at `conf`.
    fn test_command(&self, conf: &str) -> String {
        format!("{} --conf-file={}", self.test, shell_quote(conf))
    }

    fn host_count(&self) -> usize {
        let mut names: Vec<&str> = self.records.iter().map(|r| r.name.as_str()).collect();
        names.dedup();
        names.len()
    }
}

/// What converge did to dnsmasq.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing: the files already had this content.
    None,
    /// Only the names changed: reloadCommand (SIGHUP) re-read the hosts file.
    Reload,
    /// The conf file was new or changed: restartCommand.
    Restart,
}

/// Attributes of the `zone` resource (named `zone`) and `converge`'s output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneResource {
    /// The hosts file holding the names.
    pub path: String,
    /// The conf file pointing dnsmasq at it.
    pub conf_path: String,
    /// sha256 of the hosts file's content (hex).
    pub sha256: String,
    /// How many distinct names are served.
    pub host_count: usize,
    /// The name → address pairs, sorted.
    pub records: Vec<HostRecord>,
    /// False when both files already had this content (nothing was written or reloaded).
    pub changed: bool,
    /// What was done to dnsmasq: none, reload or restart.
    pub action: Action,
    /// When it was converged (RFC 3339, UTC).
    pub timestamp: String,
}

/// The two files as they are on the host.
struct Current {
    conf: Option<String>,
    hosts: Option<String>,
}

impl Current {
    fn read(remote: &impl Remote, desired: &Desired) -> Result<Current> {
        Ok(Current {
            conf: remote.read_file(&desired.conf_path)?,
            hosts: remote.read_file(&desired.hosts_path)?,
        })
    }

    fn conf_changed(&self, desired: &Desired) -> bool {
        self.conf.as_deref() != Some(desired.conf_text.as_str())
    }

    fn hosts_changed(&self, desired: &Desired) -> bool {
        self.hosts.as_deref() != Some(desired.hosts_text.as_str())
    }
}

/// A new file uploaded beside the one it replaces.
struct Staged<'a> {
    tmp: String,
    target: &'a str,
    text: &'a str,
    /// What the target held before (None: it did not exist).
    previous: Option<&'a str>,
}

impl<'a> Staged<'a> {
    fn new(target: &'a str, text: &'a str, previous: Option<&'a str>) -> Self {
        Staged {
            tmp: zone::staging_path(target),
            target,
            text,
            previous,
        }
    }
}

/// Puts the previous files back after a failed reload, so that the next converge sees a
/// difference and tries again instead of reporting "unchanged" over names never loaded.
fn put_back(remote: &impl Remote, staged: &[Staged]) -> std::result::Result<(), String> {
    for file in staged {
        let done = match file.previous {
            Some(text) => remote.upload(file.target, text.as_bytes(), 0o644),
            None => remote
                .run_ok(&format!("rm -f {}", shell_quote(file.target)), "removing")
                .map(|_| ()),
        };
        done.map_err(|e| format!("putting back {} failed: {e:?}", file.target))?;
    }
    Ok(())
}

/// Removes staged files after a failure; best effort, the error being reported matters more.
fn discard(remote: &impl Remote, staged: &[Staged]) {
    if staged.is_empty() {
        return;
    }
    let paths: Vec<String> = staged.iter().map(|s| shell_quote(&s.tmp)).collect();
    let _ = remote.run(&format!("rm -f {}", paths.join(" ")));
}

/// `converge`: make the host's files match the definition, test, then reload or restart.
pub fn apply<C: Connector>(
    connector: &C,
    globals: &DnsmasqGlobals,
    model: &str,
    now: &str,
) -> Result<ZoneResource> {
    let desired = globals.desired()?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    let current = Current::read(&remote, &desired)?;
    let (conf_changed, hosts_changed) = (
        current.conf_changed(&desired),
        current.hosts_changed(&desired),
    );
    let mut zone = ZoneResource {
        path: desired.hosts_path.clone(),
        conf_path: desired.conf_path.clone(),
        sha256: hex::encode(Sha256::digest(desired.hosts_text.as_bytes())),
        host_count: desired.host_count(),
        records: desired.records.clone(),
        changed: false,
        action: Action::None,
        timestamp: now.to_string(),
    };
    if !conf_changed && !hosts_changed {
        return Ok(zone);
    }
    remote.run_ok(
        &format!(
            "mkdir -p {} {}",
            shell_quote(zone::parent_dir(&desired.conf_path)),
            shell_quote(zone::parent_dir(&desired.hosts_path))
        ),
        "creating the directories",
    )?;
    // Hosts first: when both move, the conf file never points at a file that is not there.
    let mut staged: Vec<Staged> = Vec::new();
    if hosts_changed {
        staged.push(Staged::new(
            &desired.hosts_path,
            &desired.hosts_text,
            current.hosts.as_deref(),
        ));
    }
    if conf_changed {
        staged.push(Staged::new(
            &desired.conf_path,
            &desired.conf_text,
            current.conf.as_deref(),
        ));
    }
    for (i, file) in staged.iter().enumerate() {
        if let Err(e) = remote.upload(&file.tmp, file.text.as_bytes(), 0o644) {
            discard(&remote, &staged[..i]);
            return Err(e);
        }
    }
    let tested = if conf_changed {
        zone::staging_path(&desired.conf_path)
    } else {
        desired.conf_path.clone()
    };
    let test = desired.test_command(&tested);
    let checked = remote.run(&test)?;
    if !checked.success() {
        discard(&remote, &staged);
        return Err(error::failed(format!(
            "`{test}` failed (exit {}): {}; nothing was changed: {} and {} are as they were and \
             dnsmasq was not reloaded",
            checked.exit_code,
            checked.reason(),
            desired.conf_path,
            desired.hosts_path
        )));
    }
    let moves: Vec<String> = staged
        .iter()
        .map(|s| format!("mv -f {} {}", shell_quote(&s.tmp), shell_quote(s.target)))
        .collect();
    if let Err(e) = remote.run_ok(&moves.join(" && "), "moving the new files into place") {
        discard(&remote, &staged);
        return Err(e);
    }
    let (action, dnsmasq_command, verb) = if conf_changed {
        (Action::Restart, &desired.restart, "restarts")
    } else {
        (Action::Reload, &desired.reload, "reloads")
    };
    let done = remote.run(dnsmasq_command)?;
    if !done.success() {
        let files = match put_back(&remote, &staged) {
            Ok(()) => {
                "the previous files were put back, so the next converge tries again".to_string()
            }
            Err(e) => {
                format!("{e}; the new files stay and dnsmasq serves the old names until it {verb}")
            }
        };
        return Err(error::failed(format!(
            "`{dnsmasq_command}` failed (exit {}): {}; {files}",
            done.exit_code,
            done.reason()
        )));
    }
    zone.changed = true;
    zone.action = action;
    Ok(zone)
}

/// `converge`'s plan: the same comparison, without writing anything.
pub fn plan<C: Connector>(
    connector: &C,
    globals: &DnsmasqGlobals,
    model: &str,
) -> Result<Vec<PlannedChange>> {
    let desired = globals.desired()?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    let current = Current::read(&remote, &desired)?;
    let (conf_changed, hosts_changed) = (
        current.conf_changed(&desired),
        current.hosts_changed(&desired),
    );
    let count = desired.host_count();
    if !conf_changed && !hosts_changed {
        return Ok(vec![PlannedChange::new(
            PlannedAction::None,
            "zone",
            "zone",
            format!("{} serves {count} host(s); unchanged", desired.hosts_path),
        )]);
    }
    let names = zone::name_changes(
        current.hosts.as_deref().unwrap_or_default(),
        &desired.records,
    );
    let (added, removed) = (
        names
            .iter()
            .filter(|(_, before, _)| before.is_none())
            .count(),
        names.iter().filter(|(_, _, after)| after.is_none()).count(),
    );
    let action = if current.hosts.is_none() && current.conf.is_none() {
        PlannedAction::Create
    } else {
        PlannedAction::Update
    };
    let then = if conf_changed {
        format!("write {} and restart dnsmasq", desired.conf_path)
    } else {
        "reload dnsmasq".to_string()
    };
    let mut change = PlannedChange::new(
        action,
        "zone",
        "zone",
        format!(
            "{} {}: {count} host(s), {added} added, {removed} removed, {} changed; then {then}",
            if action == PlannedAction::Create {
                "create"
            } else {
                "update"
            },
            desired.hosts_path,
            names.len() - added - removed,
        ),
    );
    for (path, before, after) in names {
        change = change.field(&path, before, after);
    }
    if conf_changed {
        change = change.field(
            "/confFile",
            current.conf.map(Value::String),
            Some(Value::String(desired.conf_text.clone())),
        );
    }
    Ok(vec![change])
}
