//! `dns/dnsmasq` through the SDK's fake host: the plugin's own describe, converge and plan, with
//! scripted SSH replies and recorded commands and uploads.

use super::*;
use orch_plugin_sdk::testing::FakeHost;
use orch_plugin_sdk::{Error, FieldChange, PlannedAction};

const READ_CONF: &str =
    "[ -e '/etc/dnsmasq.d/orch-hosts.conf' ] || exit 3; cat '/etc/dnsmasq.d/orch-hosts.conf'";
const READ_HOSTS: &str =
    "[ -e '/etc/dnsmasq-orch.hosts' ] || exit 3; cat '/etc/dnsmasq-orch.hosts'";
const MKDIR: &str = "mkdir -p '/etc/dnsmasq.d' '/etc'";
const STAGED_HOSTS: &str = "/etc/.dnsmasq-orch.hosts.orch-new";
const STAGED_CONF: &str = "/etc/dnsmasq.d/.orch-hosts.conf.orch-new";
const TEST_STAGED: &str = "dnsmasq --test --conf-file='/etc/dnsmasq.d/.orch-hosts.conf.orch-new'";
const TEST_LIVE: &str = "dnsmasq --test --conf-file='/etc/dnsmasq.d/orch-hosts.conf'";
const MOVE_BOTH: &str = "mv -f '/etc/.dnsmasq-orch.hosts.orch-new' '/etc/dnsmasq-orch.hosts' \
                         && mv -f '/etc/dnsmasq.d/.orch-hosts.conf.orch-new' '/etc/dnsmasq.d/orch-hosts.conf'";
const MOVE_HOSTS: &str = "mv -f '/etc/.dnsmasq-orch.hosts.orch-new' '/etc/dnsmasq-orch.hosts'";
const RELOAD: &str = "systemctl reload dnsmasq";
const RESTART: &str = "systemctl restart dnsmasq";

fn globals(hosts: Value) -> Value {
    json!({"sshHost": "10.0.0.53", "sshPort": 22, "sshKey": "k", "hosts": hosts})
}

fn two_hosts() -> Value {
    json!([
        {"name": "web.lab", "ip": "10.0.0.5"},
        {"name": "db.lab", "ip": "10.0.0.6"},
    ])
}

fn rendered(hosts: Value) -> (String, String) {
    let g: DnsmasqGlobals = serde_json::from_value(globals(hosts)).unwrap();
    let d = g.desired().unwrap();
    (d.conf_text, d.hosts_text)
}

/// A host whose conf file and hosts file hold `conf` and `hosts` (None: missing).
fn host(conf: Option<&str>, hosts: Option<&str>) -> FakeHost {
    let read = |h: FakeHost, command: &str, text: Option<&str>| match text {
        Some(t) => h.with_ssh(command, 0, t),
        None => h.with_ssh(command, 3, ""),
    };
    let h = read(FakeHost::new(), READ_CONF, conf);
    read(h, READ_HOSTS, hosts)
        .with_ssh(MKDIR, 0, "")
        .with_ssh(MOVE_BOTH, 0, "")
        .with_ssh(MOVE_HOSTS, 0, "")
        .with_ssh(RELOAD, 0, "")
        .with_ssh(RESTART, 0, "")
}

fn converge(host: &FakeHost, hosts: Value) -> Result<Value> {
    host.call::<DnsmasqPlugin>("dns/dnsmasq", "converge", globals(hosts), json!({}))
}

fn plan(host: &FakeHost, hosts: Value) -> Vec<PlannedChange> {
    host.plan::<DnsmasqPlugin>("dns/dnsmasq", "converge", globals(hosts), json!({}))
        .unwrap()
}

#[test]
fn dns_dnsmasq_is_described_with_converge_and_a_volatile_timestamp() {
    let info: Vec<_> = DnsmasqPlugin::types().iter().map(ModelType::info).collect();
    assert_eq!(info[0].name, "dns/dnsmasq");
    assert_eq!(info[0].methods.len(), 1);
    assert_eq!(info[0].methods[0].name, "converge");
    assert!(matches!(
        info[0].methods[0].kind,
        orch_plugin_sdk::bindings::orch::plugin::types::MethodKind::Converge
    ));
    assert_eq!(info[0].resources[0].name, "zone");
    assert!(
        info[0].resources[0]
            .volatile
            .contains(&"timestamp".to_string())
    );
    let g: Value = serde_json::from_str(&info[0].global_arguments_schema).unwrap();
    for key in [
        "sshHost",
        "sshPort",
        "confDir",
        "fileName",
        "hostsFile",
        "testCommand",
        "reloadCommand",
        "restartCommand",
        "hosts",
    ] {
        assert!(g["properties"][key].is_object(), "{key}");
    }
    assert_eq!(
        g["properties"]["confDir"]["default"],
        json!("/etc/dnsmasq.d")
    );
    assert_eq!(g["required"], json!(["hosts"]));
}

#[test]
fn a_first_converge_writes_both_files_tests_the_staged_conf_and_restarts() {
    let h = host(None, None).with_ssh(TEST_STAGED, 0, "dnsmasq: syntax check OK.");
    let out = converge(&h, two_hosts()).unwrap();
    assert_eq!(out["changed"], json!(true));
    assert_eq!(out["action"], json!("restart"));
    assert_eq!(out["hostCount"], json!(2));
    assert_eq!(out["path"], json!("/etc/dnsmasq-orch.hosts"));
    assert_eq!(
        h.ssh_commands(),
        [
            READ_CONF,
            READ_HOSTS,
            MKDIR,
            TEST_STAGED,
            MOVE_BOTH,
            RESTART
        ]
    );
    let (conf, hosts) = rendered(two_hosts());
    assert_eq!(h.file(STAGED_HOSTS).unwrap(), hosts.as_bytes());
    assert_eq!(h.file(STAGED_CONF).unwrap(), conf.as_bytes());
    assert!(
        hosts.ends_with("10.0.0.6 db.lab\n10.0.0.5 web.lab\n"),
        "{hosts}"
    );
    let zone = h.latest("zone", "zone").unwrap();
    assert_eq!(zone["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        zone["records"][0],
        json!({"name": "db.lab", "ip": "10.0.0.6"})
    );
}

#[test]
fn unchanged_content_means_no_write_no_test_and_no_reload() {
    let (conf, hosts) = rendered(two_hosts());
    let h = host(Some(&conf), Some(&hosts));
    let out = converge(&h, two_hosts()).unwrap();
    assert_eq!(out["changed"], json!(false));
    assert_eq!(out["action"], json!("none"));
    assert_eq!(h.ssh_commands(), [READ_CONF, READ_HOSTS]);
    assert!(h.file(STAGED_HOSTS).is_none() && h.file(STAGED_CONF).is_none());
    // The zone is still recorded (an identical version is a sighting).
    assert_eq!(h.latest("zone", "zone").unwrap()["hostCount"], json!(2));
}

#[test]
fn changed_names_upload_only_the_hosts_file_test_the_live_conf_and_reload() {
    let (conf, hosts) = rendered(two_hosts());
    let h = host(Some(&conf), Some(&hosts)).with_ssh(TEST_LIVE, 0, "");
    let more = json!([
        {"name": "web.lab", "ip": "10.0.0.7"},
        {"name": "db.lab", "ip": "10.0.0.6"},
        {"name": "gw.lab", "ip": "fd00::1"},
    ]);
    let out = converge(&h, more.clone()).unwrap();
    assert_eq!(out["action"], json!("reload"));
    assert_eq!(
        h.ssh_commands(),
        [READ_CONF, READ_HOSTS, MKDIR, TEST_LIVE, MOVE_HOSTS, RELOAD]
    );
    assert!(
        h.file(STAGED_CONF).is_none(),
        "the conf file is not rewritten"
    );
    assert_eq!(h.file(STAGED_HOSTS).unwrap(), rendered(more).1.as_bytes());
}

#[test]
fn a_failing_test_keeps_the_old_files_and_names_the_dnsmasq_error() {
    let h = host(Some("# someone else's\n"), Some("10.0.0.1 old.lab\n"))
        .with_ssh(
            TEST_STAGED,
            1,
            "dnsmasq: bad option at line 4 of /etc/dnsmasq.d/.orch-hosts.conf.orch-new",
        )
        .with_ssh(&format!("rm -f '{STAGED_HOSTS}' '{STAGED_CONF}'"), 0, "");
    let e = converge(&h, two_hosts()).unwrap_err();
    assert!(
        matches!(&e, Error::Failed(m) if m.contains("bad option at line 4") && m.contains("nothing was changed")),
        "{e:?}"
    );
    let commands = h.ssh_commands();
    assert_eq!(
        commands.last().unwrap(),
        &format!("rm -f '{STAGED_HOSTS}' '{STAGED_CONF}'")
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.starts_with("mv") || c == RELOAD || c == RESTART),
        "{commands:?}"
    );
    assert!(h.latest("zone", "zone").is_none());
}

#[test]
fn a_bad_entry_fails_before_any_ssh_command() {
    let h = FakeHost::new();
    let e = converge(
        &h,
        json!([{"name": "web.lab", "ip": "10.0.0.5"}, {"name": "db.lab", "ip": "10.0.0.256"}]),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArguments(m) if m.contains("hosts[1].ip") && m.contains("10.0.0.256")),
        "{e:?}"
    );
    assert!(h.ssh_commands().is_empty());
    let e = h
        .plan::<DnsmasqPlugin>(
            "dns/dnsmasq",
            "converge",
            globals(json!([{"name": "web lab", "ip": "10.0.0.5"}])),
            json!({}),
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArguments(m) if m.contains("hosts[0].name")),
        "{e:?}"
    );
    assert!(h.ssh_commands().is_empty());
}

#[test]
fn a_hosts_file_inside_the_conf_dir_is_refused() {
    let mut g = globals(two_hosts());
    g["hostsFile"] = json!("/etc/dnsmasq.d/names");
    let e = FakeHost::new()
        .call::<DnsmasqPlugin>("dns/dnsmasq", "converge", g, json!({}))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArguments(m) if m.contains("hostsFile")),
        "{e:?}"
    );
}

#[test]
fn the_plan_is_unchanged_when_the_files_match_and_writes_nothing() {
    let (conf, hosts) = rendered(two_hosts());
    let h = host(Some(&conf), Some(&hosts));
    let changes = plan(&h, two_hosts());
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, PlannedAction::None);
    assert_eq!(
        (changes[0].spec.as_str(), changes[0].name.as_str()),
        ("zone", "zone")
    );
    assert_eq!(h.ssh_commands(), [READ_CONF, READ_HOSTS]);
}

#[test]
fn the_plan_lists_the_added_removed_and_changed_names() {
    let (conf, _) = rendered(two_hosts());
    let h = host(Some(&conf), Some("10.0.0.5 web.lab\n10.0.0.9 gone.lab\n"));
    let changes = plan(
        &h,
        json!([{"name": "web.lab", "ip": "10.0.0.7"}, {"name": "db.lab", "ip": "10.0.0.6"}]),
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, PlannedAction::Update);
    assert!(
        changes[0]
            .summary
            .contains("1 added, 1 removed, 1 changed; then reload"),
        "{}",
        changes[0].summary
    );
    let field = |path: &str, before: Option<Value>, after: Option<Value>| FieldChange {
        path: path.to_string(),
        before,
        after,
    };
    assert_eq!(
        changes[0].changes,
        vec![
            field("/hosts/db.lab", None, Some(json!("10.0.0.6"))),
            field("/hosts/gone.lab", Some(json!("10.0.0.9")), None),
            field(
                "/hosts/web.lab",
                Some(json!("10.0.0.5")),
                Some(json!("10.0.0.7"))
            ),
        ]
    );
    assert_eq!(
        h.ssh_commands(),
        [READ_CONF, READ_HOSTS],
        "a plan only reads"
    );
}

#[test]
fn the_plan_of_a_fresh_host_is_a_create_with_a_restart() {
    let h = host(None, None);
    let changes = plan(&h, two_hosts());
    assert_eq!(changes[0].action, PlannedAction::Create);
    assert!(
        changes[0].summary.contains("restart dnsmasq"),
        "{}",
        changes[0].summary
    );
    assert_eq!(changes[0].changes.last().unwrap().path, "/confFile");
}

#[test]
fn a_failed_reload_puts_the_previous_hosts_file_back_so_the_next_converge_retries() {
    let (conf, hosts) = rendered(two_hosts());
    let h = FakeHost::new()
        .with_ssh(READ_CONF, 0, &conf)
        .with_ssh(READ_HOSTS, 0, &hosts)
        .with_ssh(MKDIR, 0, "")
        .with_ssh(TEST_LIVE, 0, "")
        .with_ssh(MOVE_HOSTS, 0, "")
        .with_ssh(
            RELOAD,
            1,
            "Failed to reload dnsmasq.service: Unit not found.",
        );
    let e = converge(&h, json!([{"name": "web.lab", "ip": "10.0.0.7"}])).unwrap_err();
    assert!(
        matches!(&e, Error::Failed(m) if m.contains("Unit not found") && m.contains("put back")),
        "{e:?}"
    );
    assert_eq!(
        h.file("/etc/dnsmasq-orch.hosts").unwrap(),
        hosts.as_bytes(),
        "the previous content is back"
    );
    assert!(h.latest("zone", "zone").is_none());
}
