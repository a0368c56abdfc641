use super::*;
use crate::remote::fake::{self, FakeConnector, FakeRemote};
use orch_plugin_sdk::Error;
use serde_json::json;

const NOW: &str = "2026-11-21T10:00:00Z";

/// The array form, as printed in Docker's `docker compose ps` reference (Compose before 2.21).
const PS_ARRAY: &str = r#"[{"ID":"1553b0236cf4d2715845f053a4ee97042c4f9a2ef655731ee34f1f7940eaa41a","Name":"example-bar-1","Command":"/docker-entrypoint.sh nginx -g 'daemon off;'","Project":"example","Service":"bar","State":"exited","Health":"","ExitCode":0,"Publishers":null},{"ID":"f02a4efaabb67416e1ff127d51c4b5578634a0ad5743bd65225ff7d1909a3fa0","Name":"example-foo-1","Command":"/docker-entrypoint.sh nginx -g 'daemon off;'","Project":"example","Service":"foo","State":"running","Health":"","ExitCode":0,"Publishers":[{"URL":"0.0.0.0","TargetPort":80,"PublishedPort":8080,"Protocol":"tcp"}]}]
"#;

/// The JSON-lines form (Compose 2.21 and later): the same project, one object per line, with
/// the fields newer releases add.
const PS_LINES: &str = r#"{"Command":"\"/docker-entrypoint.…\"","CreatedAt":"2026-11-21 09:58:01 +0000 UTC","ExitCode":0,"Health":"","ID":"1553b0236cf4","Image":"nginx","Labels":"com.docker.compose.project=example,com.docker.compose.service=bar","LocalVolumes":"0","Mounts":"","Name":"example-bar-1","Names":"example-bar-1","Networks":"example_default","Ports":"","Project":"example","Publishers":[],"RunningFor":"2 minutes ago","Service":"bar","Size":"0B","State":"exited","Status":"Exited (0) 2 minutes ago"}
{"Command":"\"/docker-entrypoint.…\"","CreatedAt":"2026-11-21 09:58:01 +0000 UTC","ExitCode":0,"Health":"healthy","ID":"f02a4efaabb6","Image":"nginx","Labels":"com.docker.compose.project=example,com.docker.compose.service=foo","LocalVolumes":"0","Mounts":"","Name":"example-foo-1","Names":"example-foo-1","Networks":"example_default","Ports":"0.0.0.0:8080->80/tcp, :::8080->80/tcp","Project":"example","Publishers":[{"URL":"0.0.0.0","TargetPort":80,"PublishedPort":8080,"Protocol":"tcp"},{"URL":"::","TargetPort":80,"PublishedPort":8080,"Protocol":"tcp"}],"RunningFor":"2 minutes ago","Service":"foo","Size":"0B","State":"running","Status":"Up 2 minutes (healthy)"}
"#;

fn globals(host: serde_json::Value) -> ComposeGlobals {
    serde_json::from_value(json!({
        "sshHost": host,
        "sshKey": "k",
        "projectDir": "/opt/calamity",
    }))
    .unwrap()
}

fn calamity() -> ComposeGlobals {
    globals(json!("10.0.0.208"))
}

#[test]
fn commands_cd_into_the_project_and_quote_every_value() {
    let mut g = calamity();
    assert_eq!(
        g.command(UP).unwrap(),
        "cd '/opt/calamity' && 'docker' compose up -d"
    );
    g.compose_file = Some("compose.prod.yaml".into());
    g.docker_bin = "/usr/local/bin/docker".into();
    g.project_dir = "/opt/my project's dir".into();
    assert_eq!(
        g.command(PS).unwrap(),
        "cd '/opt/my project'\\''s dir' && '/usr/local/bin/docker' compose -f 'compose.prod.yaml' ps --all --format json"
    );
    g.project_dir = " ".into();
    assert!(matches!(g.command(UP), Err(Error::InvalidArguments(_))));
}

#[test]
fn parses_the_array_form_from_dockers_documentation() {
    let services = parse_ps(PS_ARRAY).unwrap();
    assert_eq!(
        services,
        [
            ServiceState {
                service: "bar".into(),
                name: "example-bar-1".into(),
                state: "exited".into(),
                status: String::new(),
                health: None,
                exit_code: Some(0),
                publishers: vec![],
            },
            ServiceState {
                service: "foo".into(),
                name: "example-foo-1".into(),
                state: "running".into(),
                status: String::new(),
                health: None,
                exit_code: None,
                publishers: vec![Publisher {
                    url: "0.0.0.0".into(),
                    target_port: 80,
                    published_port: 8080,
                    protocol: "tcp".into(),
                }],
            },
        ]
    );
}

#[test]
fn parses_the_json_lines_form_of_newer_compose() {
    let services = parse_ps(PS_LINES).unwrap();
    assert_eq!(services.len(), 2);
    let foo = &services[1];
    assert_eq!(
        (
            foo.service.as_str(),
            foo.state.as_str(),
            foo.status.as_str()
        ),
        ("foo", "running", "Up 2 minutes (healthy)")
    );
    assert_eq!(foo.health.as_deref(), Some("healthy"));
    assert_eq!(foo.publishers.len(), 2);
    assert_eq!(foo.publishers[1].url, "::");
    assert_eq!(services[0].status, "Exited (0) 2 minutes ago");
}

#[test]
fn both_forms_give_the_same_containers() {
    let array = parse_ps(PS_ARRAY).unwrap();
    let lines = parse_ps(PS_LINES).unwrap();
    let key = |s: &Vec<ServiceState>| {
        s.iter()
            .map(|c| (c.service.clone(), c.name.clone(), c.state.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&array), key(&lines));
}

#[test]
fn empty_output_means_no_containers() {
    for text in ["", "\n", "[]", "null"] {
        assert_eq!(parse_ps(text).unwrap(), [], "{text:?}");
    }
}

#[test]
fn stray_warnings_are_skipped_but_broken_json_is_an_error() {
    let with_warning =
        format!("WARN[0000] /opt/calamity/docker-compose.yml: `version` is obsolete\n{PS_LINES}");
    assert_eq!(parse_ps(&with_warning).unwrap().len(), 2);
    for bad in [
        "{\"Name\": \"x\"",
        "[{\"Name\": 1}]",
        "[{\"Name\":\"a\"},",
        "Cannot connect to the Docker daemon",
        "{\"Publishers\": [{\"TargetPort\": \"eighty\"}]}",
    ] {
        assert!(matches!(parse_ps(bad), Err(Error::Failed(_))), "{bad:?}");
    }
}

#[test]
fn summary_counts_running_and_flags_unhealthy() {
    let s = summarize("/opt/x", parse_ps(PS_LINES).unwrap(), NOW);
    assert_eq!((s.running, s.total, s.healthy), (1, 2, false));
    let one = r#"{"Name":"a-1","Service":"a","State":"running","Health":""}"#;
    assert!(summarize("/opt/x", parse_ps(one).unwrap(), NOW).healthy);
    let sick = r#"{"Name":"a-1","Service":"a","State":"running","Health":"unhealthy"}"#;
    assert!(!summarize("/opt/x", parse_ps(sick).unwrap(), NOW).healthy);
    assert!(!summarize("/opt/x", vec![], NOW).healthy);
}

#[test]
fn status_runs_ps_and_summarizes() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        assert_eq!(
            c,
            "cd '/opt/calamity' && 'docker' compose ps --all --format json"
        );
        fake::ok(PS_ARRAY)
    }));
    let s = status(&connector, &calamity(), "calamity", NOW).unwrap();
    assert_eq!(s.project_dir, "/opt/calamity");
    assert_eq!((s.running, s.total), (1, 2));
    assert_eq!(s.timestamp, NOW);
}

#[test]
fn a_failing_ps_reports_dockers_error() {
    let connector = FakeConnector::new(FakeRemote::new(|_| {
        fake::exit(
            1,
            "",
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
        )
    }));
    let e = status(&connector, &calamity(), "m", NOW).unwrap_err();
    assert!(matches!(e, Error::Failed(ref m) if m.contains("Is the docker daemon running?")));
}

#[test]
fn start_and_stop_run_one_command_each() {
    let connector = FakeConnector::new(FakeRemote::new(|_| {
        fake::exit(0, "", " Container calamity-terraria-1  Started\n")
    }));
    let out = start(&connector, &calamity(), "m").unwrap();
    assert_eq!(
        out.commands,
        ["cd '/opt/calamity' && 'docker' compose up -d"]
    );
    assert_eq!(out.output, "Container calamity-terraria-1  Started");
    stop(&connector, &calamity(), "m").unwrap();
    assert_eq!(
        connector.remote.commands(),
        [
            "cd '/opt/calamity' && 'docker' compose up -d",
            "cd '/opt/calamity' && 'docker' compose down"
        ]
    );
}

#[test]
fn update_pulls_then_starts_and_stops_when_the_pull_fails() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let out = update(&connector, &calamity(), "m").unwrap();
    assert_eq!(
        out.commands,
        [
            "cd '/opt/calamity' && 'docker' compose pull",
            "cd '/opt/calamity' && 'docker' compose up -d"
        ]
    );

    let connector = FakeConnector::new(FakeRemote::new(|c| {
        if c.ends_with("pull") {
            fake::exit(18, "", "Error response from daemon: manifest unknown")
        } else {
            fake::ok("")
        }
    }));
    let e = update(&connector, &calamity(), "m").unwrap_err();
    assert!(
        matches!(e, Error::Failed(ref m) if m.contains("compose pull failed (exit 18)") && m.contains("manifest unknown"))
    );
    assert_eq!(
        connector.remote.commands().len(),
        1,
        "no up after a failed pull"
    );
}

#[test]
fn long_output_keeps_its_tail() {
    let connector = FakeConnector::new(FakeRemote::new(|_| {
        let long = format!("{}END", "é".repeat(5000));
        Ok(orch_plugin_sdk::ssh::ExecResult {
            exit_code: 0,
            stdout: long.into_bytes(),
            stderr: vec![],
        })
    }));
    let out = start(&connector, &calamity(), "m").unwrap();
    assert!(out.output.ends_with("END"));
    assert!(out.output.len() <= 4000);
}

#[test]
fn a_stopped_vm_fails_every_method_before_connecting() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let g = globals(json!(null));
    let results = [
        start(&connector, &g, "calamity").map(drop),
        stop(&connector, &g, "calamity").map(drop),
        update(&connector, &g, "calamity").map(drop),
        status(&connector, &g, "calamity", NOW).map(drop),
    ];
    for result in results {
        assert!(
            matches!(result, Err(Error::Conflict(ref m)) if m == "model `calamity` has no IP (is the VM running?): sshHost is null"),
            "{result:?}"
        );
    }
    assert_eq!(connector.opens(), 0);
}

#[test]
fn globals_need_a_project_dir() {
    assert!(
        serde_json::from_value::<ComposeGlobals>(json!({"sshHost": "h", "sshKey": "k"})).is_err()
    );
    let g = calamity();
    assert_eq!(g.docker_bin, "docker");
    assert_eq!(g.ssh().port, 22);
}
