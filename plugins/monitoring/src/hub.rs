//! `monitoring/hub`: a Prometheus server. `discover` reads its targets from the HTTP API;
//! `register` adds an exporter to a file_sd JSON file on the hub over SSH, reloads Prometheus
//! and waits (bounded) until the API lists the target. The logic talks through [`Api`] and
//! [`Connector`], so it runs natively against fakes.

use crate::remote::{self, Connector, Remote};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{Error, JsonSchema, Result, error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

fn default_file_sd_path() -> String {
    "/etc/prometheus/file_sd/orch.json".to_string()
}

fn default_confirm_attempts() -> u32 {
    30
}

fn default_confirm_interval_ms() -> u32 {
    1000
}

remote::ssh_globals! {
    /// Global arguments of `monitoring/hub`.
    pub struct HubGlobals {
        /// Prometheus's base URL with its port, e.g. `http://10.0.0.12:9090`.
        pub api_url: String,
        /// The file_sd JSON file on the hub that a scrape config lists in `file_sd_configs` (default `/etc/prometheus/file_sd/orch.json`).
        #[serde(default = "default_file_sd_path")]
        pub file_sd_path: String,
        /// Shell command on the hub that reloads Prometheus; when absent, `POST /-/reload` (needs `--web.enable-lifecycle`).
        #[serde(default)]
        pub reload_command: Option<String>,
        /// How often `register` asks the API for the new target before giving up (default 30).
        #[serde(default = "default_confirm_attempts")]
        pub confirm_attempts: u32,
        /// Pause between those questions, in milliseconds (default 1000).
        #[serde(default = "default_confirm_interval_ms")]
        pub confirm_interval_ms: u32,
    }
}

/// Arguments of `register`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterArgs {
    /// The target's name, kept as its `name` label (one entry per name in the file).
    pub name: String,
    /// The exporter's `host:port`, e.g. `${{ model.fleet.resource.vm[inputs.vmName].attributes.ip }}:9100`.
    pub address: Option<String>,
    /// Extra labels for the target (`name` is set by orch).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The `target` resource (named `<job>/<instance>`) and what `discover` lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResource {
    /// The scrape job.
    pub job: String,
    /// The instance label (usually the address).
    pub instance: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// The last scrape's error, empty when it worked.
    pub last_error: String,
    /// The target's labels after relabelling.
    pub labels: BTreeMap<String, String>,
    /// The URL Prometheus scrapes.
    pub scrape_url: String,
    /// When it was last scraped.
    pub last_scrape: Option<String>,
}

/// What `register` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterOutput {
    /// The target's name.
    pub name: String,
    /// The exporter's address.
    pub address: String,
    /// The file_sd file.
    pub file_sd_path: String,
    /// False when the file already had this entry (no write, no reload).
    pub changed: bool,
    /// The target as Prometheus lists it after the reload.
    pub target: TargetResource,
}

/// One group of a file_sd file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels of every target in the group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The label that holds a registered target's name.
pub const NAME_LABEL: &str = "name";

/// Prometheus's HTTP API: the plugin's `http` import, a fake in tests.
pub trait Api {
    /// Sends a request; any status is a response, transport failures are errors.
    fn send(&self, method: &str, url: &str) -> Result<(u16, String)>;
}

/// The message inside an [`Error`].
pub fn message(e: &Error) -> &str {
    match e {
        Error::InvalidArguments(m)
        | Error::Denied(m)
        | Error::NotFound(m)
        | Error::Conflict(m)
        | Error::Transient(m)
        | Error::Failed(m) => m,
    }
}

impl HubGlobals {
    /// apiUrl without a trailing slash, checked.
    pub fn api(&self) -> Result<&str> {
        let url = self.api_url.trim().trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(error::invalid(format!(
                "apiUrl {url:?} must be a URL like http://10.0.0.12:9090"
            )));
        }
        Ok(url)
    }
}

/// The active targets of `GET /api/v1/targets`, as resources.
pub fn parse_targets(body: &str) -> Result<Vec<TargetResource>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Active {
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        scrape_pool: String,
        #[serde(default)]
        scrape_url: String,
        #[serde(default)]
        last_error: String,
        #[serde(default)]
        last_scrape: Option<String>,
        #[serde(default)]
        health: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        #[serde(default)]
        active_targets: Vec<Active>,
    }
    #[derive(Deserialize)]
    struct Reply {
        status: String,
        data: Option<Data>,
    }
    let reply: Reply = serde_json::from_str(body).map_err(|e| {
        error::failed(format!(
            "/api/v1/targets did not answer Prometheus's JSON ({e}): is apiUrl a Prometheus server?"
        ))
    })?;
    if reply.status != "success" {
        return Err(error::failed(format!(
            "/api/v1/targets answered status {:?}",
            reply.status
        )));
    }
    Ok(reply
        .data
        .map(|d| d.active_targets)
        .unwrap_or_default()
        .into_iter()
        .map(|t| TargetResource {
            job: t.labels.get("job").cloned().unwrap_or(t.scrape_pool),
            instance: t.labels.get("instance").cloned().unwrap_or_default(),
            health: t.health,
            last_error: t.last_error,
            labels: t.labels,
            scrape_url: t.scrape_url,
            last_scrape: t.last_scrape,
        })
        .collect())
}

impl TargetResource {
    /// The resource name: `<job>/<instance>`.
    pub fn resource_name(&self) -> String {
        format!("{}/{}", self.job, self.instance)
    }
}

fn get_targets(api: &impl Api, base: &str) -> Result<Vec<TargetResource>> {
    let url = format!("{base}/api/v1/targets?state=active");
    let (status, body) = api.send("GET", &url).map_err(|e| unreachable(base, &e))?;
    if status != 200 {
        return Err(error::failed(format!(
            "Prometheus at {base} answered HTTP {status} to /api/v1/targets: {}",
            remote::bounded(body.trim(), 300)
        )));
    }
    parse_targets(&body)
}

fn unreachable(base: &str, e: &Error) -> Error {
    error::transient(format!(
        "Prometheus at {base} did not answer: {}; check apiUrl and that Prometheus is running",
        message(e)
    ))
}

/// `discover`: the active targets Prometheus knows now.
pub fn discover(api: &impl Api, globals: &HubGlobals) -> Result<Vec<TargetResource>> {
    get_targets(api, globals.api()?)
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// The checked name, address and labels of a `register` call, as the file's group.
pub fn group_for(args: &RegisterArgs) -> Result<Group> {
    let name = args.name.trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(error::invalid(
            "name must be non-empty, without control characters",
        ));
    }
    let address = args.address.as_deref().unwrap_or_default().trim();
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok || address.contains("://") || address.chars().any(char::is_whitespace) {
        return Err(error::invalid(format!(
            "address {address:?} must be host:port, e.g. 10.0.0.21:9100 (a null address means the VM has no IP: is it running?)"
        )));
    }
    let mut labels = BTreeMap::new();
    for (key, value) in &args.labels {
        if key == NAME_LABEL {
            return Err(error::invalid(format!(
                "labels.{NAME_LABEL} is set by orch from `name`; remove it"
            )));
        }
        if !is_label_name(key) {
            return Err(error::invalid(format!(
                "labels.{key} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            )));
        }
        labels.insert(key.clone(), value.clone());
    }
    labels.insert(NAME_LABEL.to_string(), name.to_string());
    Ok(Group {
        targets: vec![address.to_string()],
        labels,
    })
}

/// The file's groups with `group` in place of the first one of the same name (or added last);
/// other groups of that name go, the groups orch did not write stay as they are, in order.
pub fn merge(groups: &[Group], group: &Group) -> Vec<Group> {
    let name = group.labels.get(NAME_LABEL);
    let mut out = Vec::with_capacity(groups.len() + 1);
    let mut placed = false;
    for g in groups {
        if g.labels.get(NAME_LABEL) != name {
            out.push(g.clone());
        } else if !placed {
            out.push(group.clone());
            placed = true;
        }
    }
    if !placed {
        out.push(group.clone());
    }
    out
}

/// The file as Prometheus reads it: pretty JSON and a final newline.
pub fn render(groups: &[Group]) -> String {
    let mut text = serde_json::to_string_pretty(groups).expect("groups serialize");
    text.push('\n');
    text
}

fn parse_file(path: &str, text: &str) -> Result<Vec<Group>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| {
        error::failed(format!(
            "{path} on the hub is not a file_sd list ([{{\"targets\": [...], \"labels\": {{...}}}}]): line {}, column {}: {e}; fix or remove it",
            e.line(),
            e.column()
        ))
    })
}

fn reload(api: &impl Api, remote: &impl Remote, globals: &HubGlobals, base: &str) -> Result<()> {
    if let Some(command) = globals
        .reload_command
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        remote.run_ok(command, "reloading Prometheus (reloadCommand)")?;
        return Ok(());
    }
    let (status, body) = api
        .send("POST", &format!("{base}/-/reload"))
        .map_err(|e| unreachable(base, &e))?;
    match status {
        200..=299 => Ok(()),
        403..=405 => Err(error::failed(format!(
            "Prometheus at {base} refused POST /-/reload (HTTP {status}): start it with --web.enable-lifecycle, or set reloadCommand"
        ))),
        _ => Err(error::failed(format!(
            "Prometheus at {base} failed to reload (HTTP {status}): {}",
            remote::bounded(body.trim(), 300)
        ))),
    }
}

/// Puts the file back as it was (or removes it when it did not exist) after a failed reload.
fn restore(remote: &impl Remote, path: &str, before: Option<&str>) -> Result<()> {
    match before {
        Some(text) => remote.upload(path, text.as_bytes(), 0o644),
        None => remote
            .run_ok(
                &format!("rm -f {}", shell_quote(path)),
                "removing the new file",
            )
            .map(drop),
    }
}

/// `register`: add the target to the file_sd file, reload, and wait until the API lists it.
///
/// Prometheus is asked first, so an unreachable server fails before the file is touched; a
/// failed reload puts the old file back.
pub fn register<C: Connector>(
    connector: &C,
    api: &impl Api,
    globals: &HubGlobals,
    model: &str,
    args: &RegisterArgs,
    sleep: &dyn Fn(Duration),
) -> Result<RegisterOutput> {
    let base = globals.api()?;
    let group = group_for(args)?;
    let path = globals.file_sd_path.trim().to_string();
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(error::invalid(format!(
            "fileSdPath {path:?} must be an absolute file path"
        )));
    }
    get_targets(api, base)
        .map_err(|e| error::failed(format!("{}; {path} was not changed", message(&e))))?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    let before = remote.read_file(&path)?;
    let groups = parse_file(&path, before.as_deref().unwrap_or_default())?;
    let merged = merge(&groups, &group);
    let changed = merged != groups;
    if changed {
        let staged = format!("{path}.orch-new");
        if let Some((dir, _)) = path.rsplit_once('/').filter(|(d, _)| !d.is_empty()) {
            remote.run_ok(
                &format!("mkdir -p {}", shell_quote(dir)),
                "creating the file_sd directory",
            )?;
        }
        remote.upload(&staged, render(&merged).as_bytes(), 0o644)?;
        remote.run_ok(
            &format!("mv -f {} {}", shell_quote(&staged), shell_quote(&path)),
            "moving the new file_sd file in place",
        )?;
        if let Err(e) = reload(api, &remote, globals, base) {
            let undone = match restore(&remote, &path, before.as_deref()) {
                Ok(()) => format!("{path} was put back as it was"),
                Err(r) => format!("putting {path} back failed too: {}", message(&r)),
            };
            return Err(error::failed(format!("{}; {undone}", message(&e))));
        }
    }
    let address = &group.targets[0];
    let name = &group.labels[NAME_LABEL];
    let attempts = globals.confirm_attempts.max(1);
    let mut seen = None;
    for attempt in 0..attempts {
        let targets = get_targets(api, base)?;
        seen = targets.into_iter().find(|t| {
            t.labels.get(NAME_LABEL) == Some(name)
                && (t.instance == *address || t.scrape_url.contains(&format!("//{address}/")))
        });
        if seen.as_ref().is_some_and(|t| t.health != "unknown") || attempt + 1 == attempts {
            break;
        }
        sleep(Duration::from_millis(globals.confirm_interval_ms.into()));
    }
    let target = seen.ok_or_else(|| {
        error::failed(format!(
            "Prometheus at {base} does not list {address} (name {name}) after {attempts} tries: \
             does a scrape config list {path} in file_sd_configs?"
        ))
    })?;
    Ok(RegisterOutput {
        name: name.clone(),
        address: address.clone(),
        file_sd_path: path,
        changed,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::fake::{FakeConnector, FakeRemote, ok};
    use std::cell::RefCell;

    type Reply = Box<dyn Fn(&str, &str) -> Result<(u16, String)>>;

    /// Prometheus answering from a closure, recording the requests.
    struct FakeApi {
        reply: Reply,
        calls: RefCell<Vec<String>>,
    }

    impl Api for FakeApi {
        fn send(&self, method: &str, url: &str) -> Result<(u16, String)> {
            self.calls.borrow_mut().push(format!("{method} {url}"));
            (self.reply)(method, url)
        }
    }

    const LISTED: &str = r#"{"status":"success","data":{"activeTargets":[{"labels":
        {"instance":"10.0.0.21:9100","job":"node","name":"calamity"},"scrapePool":"node",
        "scrapeUrl":"http://10.0.0.21:9100/metrics","lastError":"","health":"up"}]}}"#;

    fn hub_globals() -> HubGlobals {
        serde_json::from_value(serde_json::json!({
            "sshHost": "10.0.0.12", "sshKey": "key", "apiUrl": "http://10.0.0.12:9090/",
            "fileSdPath": "/etc/prometheus/file_sd/orch.json", "confirmAttempts": 2,
        }))
        .unwrap()
    }

    #[test]
    fn an_entry_already_there_is_neither_written_nor_reloaded() {
        let file = render(&[group_for(&args("calamity", "10.0.0.21:9100")).unwrap()]);
        let ssh = FakeConnector::new(FakeRemote::new(move |_| ok(&file)));
        let api = FakeApi {
            reply: Box::new(|_, _| Ok((200, LISTED.to_string()))),
            calls: RefCell::new(Vec::new()),
        };
        let a = args("calamity", "10.0.0.21:9100");
        let out = register(&ssh, &api, &hub_globals(), "hub", &a, &|_| ()).unwrap();
        assert!(!out.changed);
        assert_eq!(out.target.health, "up");
        assert!(ssh.remote.uploads().is_empty());
        assert!(
            api.calls.borrow().iter().all(|c| c.starts_with("GET ")),
            "{:?}",
            api.calls
        );
    }

    #[test]
    fn an_unreachable_prometheus_fails_before_any_ssh_connection() {
        let ssh = FakeConnector::new(FakeRemote::new(|_| ok("")));
        let api = FakeApi {
            reply: Box::new(|_, _| Err(error::failed("connection refused"))),
            calls: RefCell::new(Vec::new()),
        };
        let a = args("calamity", "10.0.0.21:9100");
        let e = register(&ssh, &api, &hub_globals(), "hub", &a, &|_| ()).unwrap_err();
        let m = message(&e);
        assert!(
            m.contains("Prometheus at http://10.0.0.12:9090 did not answer: connection refused"),
            "{m}"
        );
        assert!(
            m.contains("/etc/prometheus/file_sd/orch.json was not changed"),
            "{m}"
        );
        assert_eq!(ssh.opens(), 0);
    }

    fn args(name: &str, address: &str) -> RegisterArgs {
        RegisterArgs {
            name: name.into(),
            address: Some(address.into()),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn a_registration_becomes_one_named_group_and_replaces_its_old_one() {
        let a = group_for(&args("calamity", "10.0.0.21:9100")).unwrap();
        assert_eq!(a.targets, ["10.0.0.21:9100"]);
        assert_eq!(a.labels[NAME_LABEL], "calamity");
        let foreign = Group {
            targets: vec!["x:1".into()],
            labels: BTreeMap::new(),
        };
        let merged = merge(&[foreign.clone(), a.clone()], &a);
        assert_eq!(merged, [foreign.clone(), a.clone()]);
        let moved = group_for(&args("calamity", "10.0.0.22:9100")).unwrap();
        assert_eq!(merge(&merged, &moved), [foreign, moved.clone()]);
        let text = render(std::slice::from_ref(&moved));
        assert_eq!(parse_file("/f", &text).unwrap(), [moved]);
    }

    #[test]
    fn bad_addresses_and_labels_are_refused_naming_the_field() {
        for bad in ["", "10.0.0.1", "http://x:9100", "x:0", "a b:1"] {
            let e = group_for(&args("n", bad)).unwrap_err();
            assert!(message(&e).contains("address"), "{bad:?}");
        }
        let mut a = args("n", "h:1");
        a.labels.insert("__meta".into(), "x".into());
        assert!(message(&group_for(&a).unwrap_err()).contains("labels.__meta"));
        let mut a = args("n", "h:1");
        a.labels.insert("name".into(), "x".into());
        assert!(message(&group_for(&a).unwrap_err()).contains("labels.name"));
    }

    #[test]
    fn a_broken_file_sd_file_is_reported_with_its_line() {
        let e = parse_file("/etc/p/orch.json", "[\n{\"targets\": 1}]").unwrap_err();
        assert!(message(&e).contains("/etc/p/orch.json"), "{e:?}");
        assert!(message(&e).contains("line 2"), "{e:?}");
        assert!(parse_file("/f", "  \n").unwrap().is_empty());
    }

    #[test]
    fn active_targets_become_resources_named_job_slash_instance() {
        let body = r#"{"status":"success","data":{"activeTargets":[{"discoveredLabels":{},
            "labels":{"instance":"127.0.0.1:9100","job":"node","name":"vm1"},"scrapePool":"node",
            "scrapeUrl":"http://127.0.0.1:9100/metrics","lastError":"","lastScrape":"2026-11-30T00:00:00Z",
            "health":"up"}],"droppedTargets":[]}}"#;
        let targets = parse_targets(body).unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].resource_name(), "node/127.0.0.1:9100");
        assert_eq!(targets[0].health, "up");
        assert!(parse_targets("<html>").is_err());
    }
}
