//! `nginx/stream`: TCP/UDP proxies in nginx's stream module on an SSH host. `init` makes
//! nginx.conf include a directory; `configure` writes one file per proxy there, tests it with
//! `nginx -t` and reloads, or puts the old file back. The logic talks through
//! [`Connector`]/[`Remote`], so it runs natively against a fake session in tests.

use crate::conf::{self, AfterTest, PortMap, PortRule};
use crate::remote::{self, Connector, Remote};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{JsonSchema, PlannedAction, PlannedChange, Result, error};
use serde::{Deserialize, Serialize};

fn default_include_dir() -> String {
    "/etc/nginx/stream.d".to_string()
}

fn default_nginx_conf() -> String {
    "/etc/nginx/nginx.conf".to_string()
}

fn default_nginx_bin() -> String {
    "nginx".to_string()
}

fn default_reload_command() -> String {
    "nginx -s reload".to_string()
}

remote::ssh_globals! {
    /// Global arguments of `nginx/stream`.
    pub struct StreamGlobals {
        /// Directory of the proxy files, included from nginx.conf's stream block (default `/etc/nginx/stream.d`).
        #[serde(default = "default_include_dir")]
        pub include_dir: String,
        /// The main config file `init` edits and `nginx -t` checks (default `/etc/nginx/nginx.conf`).
        #[serde(default = "default_nginx_conf")]
        pub nginx_conf: String,
        /// The nginx binary (default `nginx`).
        #[serde(default = "default_nginx_bin")]
        pub nginx_bin: String,
        /// Shell command that reloads nginx (default `nginx -s reload`; e.g. `systemctl reload nginx`).
        #[serde(default = "default_reload_command")]
        pub reload_command: String,
    }
}

/// The globals, checked.
pub struct Paths<'a> {
    /// The include directory, without a trailing slash.
    pub include_dir: &'a str,
    /// nginx.conf.
    pub nginx_conf: &'a str,
}

impl StreamGlobals {
    /// The checked include dir and nginx.conf.
    pub fn paths(&self) -> Result<Paths<'_>> {
        let include_dir =
            conf::normalize_dir(conf::check_path("includeDir", self.include_dir.trim())?);
        if include_dir == "/" {
            return Err(error::invalid("includeDir must not be /"));
        }
        Ok(Paths {
            include_dir,
            nginx_conf: conf::check_path("nginxConf", self.nginx_conf.trim())?,
        })
    }

    /// `nginx -t` against nginxConf.
    pub fn test_command(&self) -> Result<String> {
        let paths = self.paths()?;
        let bin = self.nginx_bin.trim();
        if bin.is_empty() {
            return Err(error::invalid("nginxBin must not be empty"));
        }
        Ok(format!(
            "{} -t -c {}",
            shell_quote(bin),
            shell_quote(paths.nginx_conf)
        ))
    }

    /// The reload command, run as written (it is a command by design, not a value).
    pub fn reload(&self) -> Result<&str> {
        let command = self.reload_command.trim();
        if command.is_empty() {
            return Err(error::invalid("reloadCommand must not be empty"));
        }
        Ok(command)
    }
}

/// No arguments (the SDK's).
pub use orch_plugin_sdk::NoArgs;

/// Arguments of `configure`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigureArgs {
    /// Proxy name: names the file `<includeDir>/<name>.conf` and the `proxy` resource.
    pub name: String,
    /// Where to forward to, usually `${{ model.fleet.resource.vm[inputs.vmName].attributes.ip }}`.
    pub target_ip: Option<String>,
    /// Ports: `{"25565": 25565}` (listen → backend, TCP; a key may end in `/udp`) or
    /// `[{"listen": 19132, "backend": 19132, "protocol": "udp"}]`.
    pub port_map: PortMap,
}

/// Arguments of `converge`: every proxy this model should serve, declared at once (for example
/// a CEL comprehension over declared guests).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConvergeArgs {
    /// The proxies, each as `configure` takes it; names must be unique.
    pub proxies: Vec<ConfigureArgs>,
}

/// What `init` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitOutput {
    /// The include directory.
    pub include_dir: String,
    /// nginx.conf.
    pub nginx_conf: String,
    /// False when nginx.conf already included the directory.
    pub changed: bool,
}

/// Attributes of the `proxy` resource (named after the proxy) and `configure`'s output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyResource {
    /// The proxy's name.
    pub name: String,
    /// The backend address.
    pub target_ip: String,
    /// The forwarded ports.
    pub ports: Vec<PortRule>,
    /// The file written.
    pub path: String,
    /// False when the file already had this content (nothing was tested or reloaded).
    pub changed: bool,
    /// When it was configured (RFC 3339, UTC).
    pub timestamp: String,
}

/// `configure`'s checked arguments and the file it will write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPlan {
    /// The proxy's name.
    pub name: String,
    /// The backend as written in the config.
    pub backend: String,
    /// The forwarded ports, sorted.
    pub rules: Vec<PortRule>,
    /// `<includeDir>/<name>.conf`.
    pub path: String,
    /// The file's content.
    pub content: String,
}

/// Checks everything `configure` needs and renders the file, before anything is touched.
pub fn plan_configure(globals: &StreamGlobals, args: &ConfigureArgs) -> Result<ProxyPlan> {
    let name = conf::check_name(args.name.trim())?;
    let target = args.target_ip.as_deref().unwrap_or_default();
    let backend = conf::backend_host(target)?;
    let rules = conf::port_rules(&args.port_map)?;
    let paths = globals.paths()?;
    globals.test_command()?;
    globals.reload()?;
    Ok(ProxyPlan {
        name: name.to_string(),
        content: conf::render_proxy(name, &backend, &rules),
        backend,
        rules,
        path: conf::proxy_path(paths.include_dir, name),
    })
}

fn read_nginx_conf(remote: &impl Remote, path: &str) -> Result<String> {
    remote.read_file(path)?.ok_or_else(|| {
        error::failed(format!(
            "{path} does not exist on the host: is nginx installed?"
        ))
    })
}

/// `init`: create the include dir and make nginx.conf include it from a stream block.
pub fn init<C: Connector>(
    connector: &C,
    globals: &StreamGlobals,
    model: &str,
) -> Result<InitOutput> {
    let paths = globals.paths()?;
    let test = globals.test_command()?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    remote.run_ok(
        &format!("mkdir -p {}", shell_quote(paths.include_dir)),
        "creating the include directory",
    )?;
    let original = read_nginx_conf(&remote, paths.nginx_conf)?;
    let mut output = InitOutput {
        include_dir: paths.include_dir.to_string(),
        nginx_conf: paths.nginx_conf.to_string(),
        changed: false,
    };
    let conf_dir = conf::parent_dir(paths.nginx_conf);
    let Some(updated) = conf::with_stream_include(&original, conf_dir, paths.include_dir) else {
        return Ok(output);
    };
    remote.upload(paths.nginx_conf, updated.as_bytes(), 0o644)?;
    let checked = remote.run(&test)?;
    // No reload: an empty include changes nothing that runs, and nginx may not run yet.
    if let AfterTest::Restore(previous) = conf::after_test(checked.success(), Some(&original)) {
        return Err(restore(
            &remote,
            paths.nginx_conf,
            previous,
            &checked.reason(),
        ));
    }
    output.changed = true;
    Ok(output)
}

/// Puts `previous` back after a failed test; the error carries nginx's complaint.
fn restore(
    remote: &impl Remote,
    path: &str,
    previous: &str,
    nginx_says: &str,
) -> orch_plugin_sdk::Error {
    let complaint = conf::test_failure(nginx_says);
    match remote.upload(path, previous.as_bytes(), 0o644) {
        Ok(()) => error::failed(format!(
            "nginx -t rejected the new {path}; the previous file was restored:\n{complaint}"
        )),
        Err(e) => error::failed(format!(
            "nginx -t rejected the new {path}, and restoring the previous file failed ({e:?}):\n{complaint}"
        )),
    }
}

/// Removes a new file after a failed test; the error carries nginx's complaint.
fn remove(remote: &impl Remote, path: &str, nginx_says: &str) -> orch_plugin_sdk::Error {
    let complaint = conf::test_failure(nginx_says);
    match remote.run_ok(
        &format!("rm -f {}", shell_quote(path)),
        "removing the new file",
    ) {
        Ok(_) => error::failed(format!(
            "nginx -t rejected {path}; the new file was removed:\n{complaint}"
        )),
        Err(e) => error::failed(format!(
            "nginx -t rejected {path}, and removing it failed ({e:?}):\n{complaint}"
        )),
    }
}

/// `configure`: write the proxy file, test, then reload or undo.
pub fn configure<C: Connector>(
    connector: &C,
    globals: &StreamGlobals,
    model: &str,
    args: &ConfigureArgs,
    now: &str,
) -> Result<ProxyResource> {
    let plan = plan_configure(globals, args)?;
    let paths = globals.paths()?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    let nginx_conf = read_nginx_conf(&remote, paths.nginx_conf)?;
    // Without the include the file would be valid and useless: a silent half-success.
    if !conf::includes_dir(
        &nginx_conf,
        conf::parent_dir(paths.nginx_conf),
        paths.include_dir,
    ) {
        return Err(error::conflict(format!(
            "{} does not include {}/*.conf; run init first",
            paths.nginx_conf, paths.include_dir
        )));
    }
    let previous = remote.read_file(&plan.path)?;
    let mut resource = ProxyResource {
        name: plan.name.clone(),
        target_ip: plan.backend.clone(),
        ports: plan.rules.clone(),
        path: plan.path.clone(),
        changed: false,
        timestamp: now.to_string(),
    };
    if previous.as_deref() == Some(plan.content.as_str()) {
        return Ok(resource);
    }
    remote.upload(&plan.path, plan.content.as_bytes(), 0o644)?;
    let checked = remote.run(&globals.test_command()?)?;
    match conf::after_test(checked.success(), previous.as_deref()) {
        AfterTest::Reload => {}
        AfterTest::Restore(text) => {
            return Err(restore(&remote, &plan.path, text, &checked.reason()));
        }
        AfterTest::Remove => return Err(remove(&remote, &plan.path, &checked.reason())),
    }
    let reloaded = remote.run(globals.reload()?)?;
    if !reloaded.success() {
        return Err(error::failed(format!(
            "{} is valid and in place, but `{}` failed (exit {}): {}",
            plan.path,
            globals.reload_command.trim(),
            reloaded.exit_code,
            reloaded.reason()
        )));
    }
    resource.changed = true;
    Ok(resource)
}

/// Checks every declared proxy and refuses a name declared twice.
fn plan_all(globals: &StreamGlobals, args: &ConvergeArgs) -> Result<Vec<ProxyPlan>> {
    let mut seen = std::collections::HashSet::new();
    args.proxies
        .iter()
        .enumerate()
        .map(|(i, proxy)| {
            let plan = plan_configure(globals, proxy)
                .map_err(|e| error::invalid(format!("proxies[{i}]: {}", error_text(&e))))?;
            if !seen.insert(plan.name.clone()) {
                return Err(error::invalid(format!(
                    "proxies[{i}].name: `{}` is declared twice",
                    plan.name
                )));
            }
            Ok(plan)
        })
        .collect()
}

fn error_text(e: &orch_plugin_sdk::Error) -> String {
    use orch_plugin_sdk::Error as E;
    match e {
        E::InvalidArguments(m)
        | E::Denied(m)
        | E::NotFound(m)
        | E::Conflict(m)
        | E::Transient(m)
        | E::Failed(m) => m.clone(),
    }
}

/// `converge`'s plan: per declared proxy, `create` (no file yet), `update` (its file differs:
/// the old and new text as `/config`) or `none`. Reads the files; writes nothing.
pub fn plan_converge<C: Connector>(
    connector: &C,
    globals: &StreamGlobals,
    model: &str,
    args: &ConvergeArgs,
) -> Result<Vec<PlannedChange>> {
    let plans = plan_all(globals, args)?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    let mut changes = Vec::with_capacity(plans.len());
    for plan in plans {
        let ports = plan.rules.len();
        let change = match remote.read_file(&plan.path)? {
            None => PlannedChange::new(
                PlannedAction::Create,
                "proxy",
                &plan.name,
                format!(
                    "write {} forwarding {ports} port(s) to {}, test, reload",
                    plan.path, plan.backend
                ),
            ),
            Some(old) if old == plan.content => {
                PlannedChange::new(PlannedAction::None, "proxy", &plan.name, "unchanged")
            }
            Some(old) => PlannedChange::new(
                PlannedAction::Update,
                "proxy",
                &plan.name,
                format!("rewrite {}, test, reload", plan.path),
            )
            .field(
                "/config",
                Some(serde_json::Value::String(old)),
                Some(serde_json::Value::String(plan.content.clone())),
            ),
        };
        changes.push(change);
    }
    Ok(changes)
}

/// `converge`: `configure` for every declared proxy, in order; an unchanged file is neither
/// tested nor reloaded. Stops at the first failure (earlier proxies stay configured).
pub fn converge<C: Connector>(
    connector: &C,
    globals: &StreamGlobals,
    model: &str,
    args: &ConvergeArgs,
    now: &str,
) -> Result<Vec<ProxyResource>> {
    plan_all(globals, args)?;
    args.proxies
        .iter()
        .map(|proxy| configure(connector, globals, model, proxy, now))
        .collect()
}

#[cfg(test)]
mod tests;
