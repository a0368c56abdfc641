use super::*;
use crate::remote::fake::{self, FakeConnector, FakeRemote, Op};
use orch_plugin_sdk::Error;
use serde_json::json;

const NOW: &str = "2026-11-21T10:00:00Z";
const INCLUDED: &str = "events {}\nstream {\n    include /etc/nginx/stream.d/*.conf;\n}\n";
const TEST: &str = "'nginx' -t -c '/etc/nginx/nginx.conf'";
const READ_PROXY: &str = "[ -e '/etc/nginx/stream.d/allthemons.conf' ] || exit 3; cat '/etc/nginx/stream.d/allthemons.conf'";
const READ_CONF: &str = "[ -e '/etc/nginx/nginx.conf' ] || exit 3; cat '/etc/nginx/nginx.conf'";

fn globals(host: serde_json::Value) -> StreamGlobals {
    serde_json::from_value(json!({"sshHost": host, "sshKey": "k"})).unwrap()
}

fn treehouse() -> StreamGlobals {
    globals(json!("10.0.0.5"))
}

fn args(port_map: serde_json::Value) -> ConfigureArgs {
    serde_json::from_value(json!({
        "name": "allthemons",
        "targetIp": "10.0.0.96",
        "portMap": port_map,
    }))
    .unwrap()
}

/// A host whose nginx.conf is `conf`, whose proxy file is `previous`, and whose `nginx -t`
/// answers with `test`.
fn host(
    conf: Option<&'static str>,
    previous: Option<&'static str>,
    test: (i32, &'static str),
) -> FakeConnector {
    FakeConnector::new(FakeRemote::new(move |c| match c {
        READ_CONF => conf.map_or_else(|| fake::exit(3, "", ""), fake::ok),
        READ_PROXY => previous.map_or_else(|| fake::exit(3, "", ""), fake::ok),
        TEST => fake::exit(test.0, "", test.1),
        _ => fake::ok(""),
    }))
}

const TEST_OK: (i32, &str) = (
    0,
    "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n",
);
const TEST_FAILS: (i32, &str) = (
    1,
    "nginx: [emerg] bind() to 0.0.0.0:25565 failed (98: Address already in use)\n\
     nginx: configuration file /etc/nginx/nginx.conf test failed\n",
);

#[test]
fn globals_default_to_debian_paths() {
    let g = treehouse();
    assert_eq!(g.include_dir, "/etc/nginx/stream.d");
    assert_eq!(g.nginx_conf, "/etc/nginx/nginx.conf");
    assert_eq!(g.test_command().unwrap(), TEST);
    assert_eq!(g.reload().unwrap(), "nginx -s reload");
}

#[test]
fn configure_writes_tests_and_reloads() {
    let connector = host(Some(INCLUDED), None, TEST_OK);
    let resource = configure(
        &connector,
        &treehouse(),
        "streamProxy",
        &args(json!({"25565": 25565})),
        NOW,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&resource).unwrap(),
        json!({
            "name": "allthemons",
            "targetIp": "10.0.0.96",
            "ports": [{"listen": 25565, "protocol": "tcp", "backend": 25565}],
            "path": "/etc/nginx/stream.d/allthemons.conf",
            "changed": true,
            "timestamp": NOW,
        })
    );
    let ops = connector.remote.ops();
    assert_eq!(ops[0], Op::Exec(READ_CONF.into(), None));
    assert_eq!(ops[1], Op::Exec(READ_PROXY.into(), None));
    let Op::Upload(path, text, 0o644) = &ops[2] else {
        panic!("expected the upload, got {:?}", ops[2]);
    };
    assert_eq!(path, "/etc/nginx/stream.d/allthemons.conf");
    assert!(text.contains("server 10.0.0.96:25565;"));
    assert_eq!(ops[3], Op::Exec(TEST.into(), None));
    assert_eq!(ops[4], Op::Exec("nginx -s reload".into(), None));
    assert_eq!(ops.len(), 5);
}

#[test]
fn a_rejected_new_file_is_removed_and_nginx_error_returned() {
    let connector = host(Some(INCLUDED), None, TEST_FAILS);
    let e = configure(
        &connector,
        &treehouse(),
        "m",
        &args(json!({"25565": 25565})),
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Failed(ref m) if m.contains("Address already in use") && m.contains("removed")),
        "{e:?}"
    );
    let commands = connector.remote.commands();
    assert_eq!(
        commands.last().unwrap(),
        "rm -f '/etc/nginx/stream.d/allthemons.conf'"
    );
    assert!(!commands.iter().any(|c| c.contains("reload")));
}

#[test]
fn a_rejected_change_restores_the_previous_file() {
    let connector = host(Some(INCLUDED), Some("# the old proxy\n"), TEST_FAILS);
    let e = configure(
        &connector,
        &treehouse(),
        "m",
        &args(json!({"25565": 25565})),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Failed(ref m) if m.contains("restored")));
    let uploads = connector.remote.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(
        uploads[1],
        (
            "/etc/nginx/stream.d/allthemons.conf".into(),
            "# the old proxy\n".into(),
            0o644
        )
    );
    assert!(
        !connector
            .remote
            .commands()
            .iter()
            .any(|c| c.contains("reload"))
    );
}

#[test]
fn a_failed_restore_is_reported_with_nginx_error() {
    let connector = FakeConnector::new(
        FakeRemote::new(|c| match c {
            READ_CONF => fake::ok(INCLUDED),
            READ_PROXY => fake::ok("# old\n"),
            TEST => fake::exit(1, "", "nginx: [emerg] bad"),
            _ => fake::ok(""),
        })
        .with_uploads({
            let count = std::cell::Cell::new(0);
            move |_| {
                count.set(count.get() + 1);
                if count.get() == 2 {
                    Err(Error::Transient("connection lost".into()))
                } else {
                    Ok(())
                }
            }
        }),
    );
    let e = configure(&connector, &treehouse(), "m", &args(json!({"1": 2})), NOW).unwrap_err();
    assert!(
        matches!(e, Error::Failed(ref m) if m.contains("restoring the previous file failed") && m.contains("[emerg] bad")),
        "{e:?}"
    );
}

#[test]
fn an_unchanged_file_is_neither_tested_nor_reloaded() {
    let g = treehouse();
    let plan = plan_configure(&g, &args(json!({"25565": 25565}))).unwrap();
    let content: &'static str = Box::leak(plan.content.into_boxed_str());
    let connector = host(Some(INCLUDED), Some(content), TEST_OK);
    let resource = configure(&connector, &g, "m", &args(json!({"25565": 25565})), NOW).unwrap();
    assert!(!resource.changed);
    assert_eq!(connector.remote.commands(), [READ_CONF, READ_PROXY]);
    assert!(connector.remote.uploads().is_empty());
}

#[test]
fn a_valid_file_whose_reload_fails_is_reported() {
    let connector = FakeConnector::new(FakeRemote::new(|c| match c {
        READ_CONF => fake::ok(INCLUDED),
        READ_PROXY => fake::exit(3, "", ""),
        TEST => fake::ok(""),
        _ => fake::exit(1, "", "nginx: [error] open() \"/run/nginx.pid\" failed"),
    }));
    let e = configure(&connector, &treehouse(), "m", &args(json!({"1": 2})), NOW).unwrap_err();
    assert!(
        matches!(e, Error::Failed(ref m) if m.contains("nginx.pid") && m.contains("valid and in place"))
    );
}

#[test]
fn configure_needs_init_first() {
    let connector = host(Some("events {}\nhttp {}\n"), None, TEST_OK);
    let e = configure(&connector, &treehouse(), "m", &args(json!({"1": 2})), NOW).unwrap_err();
    assert!(matches!(e, Error::Conflict(ref m) if m.contains("run init first")));
    assert!(connector.remote.uploads().is_empty());
}

#[test]
fn bad_arguments_are_refused_before_connecting() {
    let connector = host(Some(INCLUDED), None, TEST_OK);
    let g = treehouse();
    let mut bad_ip = args(json!({"1": 2}));
    bad_ip.target_ip = None;
    let mut bad_name = args(json!({"1": 2}));
    bad_name.name = "../../etc/passwd".into();
    for a in [
        args(json!({"1": 0})),
        args(json!([{"listen": 80, "backend": 1}, {"listen": 80, "backend": 2}])),
        args(json!({})),
        bad_ip,
        bad_name,
    ] {
        assert!(
            matches!(
                configure(&connector, &g, "m", &a, NOW),
                Err(Error::InvalidArguments(_))
            ),
            "{a:?}"
        );
    }
    assert_eq!(connector.opens(), 0);
}

#[test]
fn a_stopped_proxy_vm_fails_before_connecting() {
    let connector = host(Some(INCLUDED), None, TEST_OK);
    let g = globals(json!(null));
    for result in [
        configure(&connector, &g, "streamProxy", &args(json!({"1": 2})), NOW).map(drop),
        init(&connector, &g, "streamProxy").map(drop),
    ] {
        assert!(
            matches!(result, Err(Error::Conflict(ref m)) if m.contains("has no IP (is the VM running?)")),
            "{result:?}"
        );
    }
    assert_eq!(connector.opens(), 0);
}

#[test]
fn init_creates_the_dir_and_adds_the_include_once() {
    let connector = host(Some("events {}\nhttp {}\n"), None, TEST_OK);
    let out = init(&connector, &treehouse(), "m").unwrap();
    assert!(out.changed);
    let ops = connector.remote.ops();
    assert_eq!(
        ops[0],
        Op::Exec("mkdir -p '/etc/nginx/stream.d'".into(), None)
    );
    let Op::Upload(path, text, _) = &ops[2] else {
        panic!("expected the upload, got {:?}", ops[2]);
    };
    assert_eq!(path, "/etc/nginx/nginx.conf");
    assert!(text.ends_with("stream {\n    include /etc/nginx/stream.d/*.conf;\n}\n"));
    assert_eq!(ops[3], Op::Exec(TEST.into(), None));
    assert_eq!(ops.len(), 4, "no reload");

    let connector = host(Some(INCLUDED), None, TEST_OK);
    let out = init(&connector, &treehouse(), "m").unwrap();
    assert!(!out.changed);
    assert!(connector.remote.uploads().is_empty());
}

#[test]
fn init_restores_nginx_conf_when_the_stream_module_is_missing() {
    let connector = host(
        Some("events {}\n"),
        None,
        (
            1,
            "nginx: [emerg] unknown directive \"stream\" in /etc/nginx/nginx.conf:3\n",
        ),
    );
    let e = init(&connector, &treehouse(), "m").unwrap_err();
    assert!(matches!(e, Error::Failed(ref m) if m.contains("libnginx-mod-stream")));
    let uploads = connector.remote.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[1].1, "events {}\n");
}

#[test]
fn init_without_nginx_conf_says_so() {
    let connector = host(None, None, TEST_OK);
    let e = init(&connector, &treehouse(), "m").unwrap_err();
    assert!(matches!(e, Error::Failed(ref m) if m.contains("is nginx installed?")));
}

#[test]
fn odd_globals_are_refused() {
    let mut g = treehouse();
    g.include_dir = "/etc/nginx/stream.d; rm -rf /".into();
    assert!(g.paths().is_err());
    g.include_dir = "/".into();
    assert!(g.paths().is_err());
    let mut g = treehouse();
    g.nginx_bin = "/usr/sbin/nginx".into();
    assert_eq!(
        g.test_command().unwrap(),
        "'/usr/sbin/nginx' -t -c '/etc/nginx/nginx.conf'"
    );
    g.reload_command = " ".into();
    assert!(g.reload().is_err());
}

fn declared(proxies: serde_json::Value) -> ConvergeArgs {
    serde_json::from_value(json!({ "proxies": proxies })).unwrap()
}

const READ_DNS: &str =
    "[ -e '/etc/nginx/stream.d/dns.conf' ] || exit 3; cat '/etc/nginx/stream.d/dns.conf'";

#[test]
fn converge_plans_create_update_and_unchanged_without_writing() {
    let g = treehouse();
    let current = plan_configure(&g, &args(json!({"25565": 25565}))).unwrap();
    let current: &'static str = Box::leak(current.content.into_boxed_str());
    let connector = FakeConnector::new(FakeRemote::new(move |c| match c {
        READ_PROXY => fake::ok(current),
        READ_DNS => fake::exit(3, "", ""),
        _ => fake::ok(""),
    }));
    let unchanged = declared(json!([
        {"name": "allthemons", "targetIp": "10.0.0.96", "portMap": {"25565": 25565}},
        {"name": "dns", "targetIp": "10.0.0.53", "portMap": {"53/udp": 53}},
    ]));
    let plan = plan_converge(&connector, &g, "gateway", &unchanged).unwrap();
    let actions: Vec<(PlannedAction, &str)> =
        plan.iter().map(|c| (c.action, c.name.as_str())).collect();
    assert_eq!(
        actions,
        [
            (PlannedAction::None, "allthemons"),
            (PlannedAction::Create, "dns")
        ]
    );
    assert!(
        connector.remote.uploads().is_empty(),
        "a plan writes nothing"
    );
    let moved = declared(json!([
        {"name": "allthemons", "targetIp": "10.0.0.97", "portMap": {"25565": 25565}},
    ]));
    let plan = plan_converge(&connector, &g, "gateway", &moved).unwrap();
    assert_eq!(plan[0].action, PlannedAction::Update);
    assert_eq!(plan[0].changes[0].path, "/config");
    assert!(
        plan[0].changes[0]
            .after
            .as_ref()
            .unwrap()
            .as_str()
            .unwrap()
            .contains("10.0.0.97:25565")
    );
    assert_eq!(
        connector.remote.commands(),
        [READ_PROXY, READ_DNS, READ_PROXY]
    );
}

#[test]
fn converge_configures_each_declared_proxy_and_refuses_duplicates_before_connecting() {
    let connector = host(Some(INCLUDED), None, TEST_OK);
    let out = converge(
        &connector,
        &treehouse(),
        "gateway",
        &declared(json!([
            {"name": "allthemons", "targetIp": "10.0.0.96", "portMap": {"25565": 25565}},
        ])),
        NOW,
    )
    .unwrap();
    assert!(out[0].changed);
    assert_eq!(connector.remote.uploads().len(), 1);

    let fresh = host(Some(INCLUDED), None, TEST_OK);
    let twice = declared(json!([
        {"name": "a", "targetIp": "10.0.0.1", "portMap": {"1": 1}},
        {"name": "a", "targetIp": "10.0.0.2", "portMap": {"2": 2}},
    ]));
    let Err(Error::InvalidArguments(m)) = converge(&fresh, &treehouse(), "g", &twice, NOW) else {
        panic!("duplicates must be refused")
    };
    assert_eq!(m, "proxies[1].name: `a` is declared twice");
    let bad = declared(json!([{"name": "a", "targetIp": "not an ip", "portMap": {"1": 1}}]));
    let Err(Error::InvalidArguments(m)) = plan_converge(&fresh, &treehouse(), "g", &bad) else {
        panic!("a bad entry must be refused")
    };
    assert!(m.starts_with("proxies[0]: "), "{m}");
    assert!(fresh.remote.commands().is_empty(), "nothing was run");
}
