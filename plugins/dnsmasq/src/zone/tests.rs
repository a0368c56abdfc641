use super::*;
use orch_plugin_sdk::Error;
use serde_json::json;

fn entries(value: Value) -> Vec<HostEntry> {
    serde_json::from_value(value).unwrap()
}

fn invalid_message(result: Result<Vec<HostRecord>>) -> String {
    match result {
        Err(Error::InvalidArguments(m)) => m,
        other => panic!("expected invalid-arguments, got {other:?}"),
    }
}

#[test]
fn records_are_sorted_lower_cased_and_exact_duplicates_dropped() {
    let records = records(&entries(json!([
        {"name": "web.lab", "ip": "10.0.0.7"},
        {"name": "DB.Lab", "ip": "10.0.0.6"},
        {"name": "web.lab", "ip": "fd00::7"},
        {"name": "web.lab", "ip": " 10.0.0.7 "},
    ])))
    .unwrap();
    let pairs: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.name.as_str(), r.ip.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("db.lab", "10.0.0.6"),
            ("web.lab", "10.0.0.7"),
            ("web.lab", "fd00::7")
        ]
    );
}

#[test]
fn the_hosts_file_is_deterministic_whatever_the_input_order() {
    let a = records(&entries(json!([
        {"name": "b.lab", "ip": "10.0.0.2"},
        {"name": "a.lab", "ip": "10.0.0.1"},
    ])))
    .unwrap();
    let b = records(&entries(json!([
        {"name": "a.lab", "ip": "10.0.0.1"},
        {"name": "b.lab", "ip": "10.0.0.2"},
    ])))
    .unwrap();
    assert_eq!(render_hosts(&a), render_hosts(&b));
    assert_eq!(
        render_hosts(&a),
        "# Managed by orch (dns/dnsmasq converge); edits here are overwritten.\n\
         # Read by dnsmasq through addn-hosts=; a SIGHUP (reload) re-reads it.\n\
         10.0.0.1 a.lab\n10.0.0.2 b.lab\n"
    );
    let conf = render_conf("/etc/dnsmasq-orch.hosts");
    assert!(conf.starts_with("# Managed by orch"), "{conf}");
    assert!(
        conf.ends_with("\naddn-hosts=/etc/dnsmasq-orch.hosts\n"),
        "{conf}"
    );
}

#[test]
fn a_bad_entry_is_refused_naming_its_index_and_field() {
    let cases = [
        (
            json!({"name": "web_1.lab", "ip": "10.0.0.1"}),
            "hosts[1].name",
        ),
        (
            json!({"name": "-web.lab", "ip": "10.0.0.1"}),
            "hosts[1].name",
        ),
        (
            json!({"name": "web..lab", "ip": "10.0.0.1"}),
            "hosts[1].name",
        ),
        (json!({"name": "", "ip": "10.0.0.1"}), "hosts[1].name"),
        (json!({"name": "10.0.0.1", "ip": "10.0.0.1"}), "swapped"),
        (json!({"ip": "10.0.0.1"}), "hosts[1].name"),
        (json!({"name": "db.lab", "ip": "10.0.0.300"}), "hosts[1].ip"),
        (json!({"name": "db.lab", "ip": "db.lab"}), "hosts[1].ip"),
        (json!({"name": "db.lab", "ip": null}), "stopped guest"),
    ];
    for (bad, expected) in cases {
        let list = json!([{"name": "ok.lab", "ip": "10.0.0.9"}, bad]);
        let message = invalid_message(records(&entries(list)));
        assert!(message.contains(expected), "{bad}: {message}");
    }
    let long_label = format!("{}.lab", "a".repeat(64));
    let message = invalid_message(records(&entries(
        json!([{"name": long_label, "ip": "10.0.0.1"}]),
    )));
    assert!(message.contains("hosts[0].name"), "{message}");
}

#[test]
fn name_changes_list_added_removed_and_readdressed_names() {
    let before = "# old\n10.0.0.5 web.lab\n10.0.0.9 gone.lab # comment\n\n10.0.0.6 db.lab\n";
    let after = records(&entries(json!([
        {"name": "web.lab", "ip": "10.0.0.7"},
        {"name": "db.lab", "ip": "10.0.0.6"},
        {"name": "new.lab", "ip": "10.0.0.8"},
        {"name": "new.lab", "ip": "fd00::8"},
    ])))
    .unwrap();
    assert_eq!(
        name_changes(before, &after),
        vec![
            ("/hosts/gone.lab".to_string(), Some(json!("10.0.0.9")), None),
            (
                "/hosts/new.lab".to_string(),
                None,
                Some(json!(["10.0.0.8", "fd00::8"]))
            ),
            (
                "/hosts/web.lab".to_string(),
                Some(json!("10.0.0.5")),
                Some(json!("10.0.0.7"))
            ),
        ]
    );
    assert!(name_changes(&render_hosts(&after), &after).is_empty());
}

#[test]
fn paths_are_checked_and_staged_as_dotfiles_beside_the_target() {
    assert_eq!(
        check_path("confDir", "/etc/dnsmasq.d/").unwrap(),
        "/etc/dnsmasq.d"
    );
    for bad in [
        "etc/dnsmasq.d",
        "/",
        "/etc/../tmp",
        "/etc/dns masq",
        "/etc/$(id)",
    ] {
        assert!(check_path("confDir", bad).is_err(), "{bad}");
    }
    assert!(check_file_name("orch-hosts.conf").is_ok());
    for bad in [".hidden", "a/b", "x.conf~", ""] {
        assert!(check_file_name(bad).is_err(), "{bad}");
    }
    assert_eq!(
        staging_path("/etc/dnsmasq.d/orch-hosts.conf"),
        "/etc/dnsmasq.d/.orch-hosts.conf.orch-new"
    );
    assert_eq!(parent_dir("/etc/dnsmasq-orch.hosts"), "/etc");
    assert_eq!(parent_dir("/x"), "/");
}
