use super::*;
use crate::remote::fake::{self, FakeConnector, FakeRemote};
use orch_plugin_sdk::Error;
use serde_json::json;

const NOW: &str = "2026-11-30T10:00:00Z";

/// `docker container inspect` of an nginx container publishing 80 on 8080 (trimmed to the
/// fields read, in Docker's shapes).
const INSPECT: &str = r#"[{"Id":"f02a4efaabb67416e1ff","Name":"/bot","State":{"Status":"running","Running":true,"ExitCode":0},"Config":{"Image":"bot:latest"},"HostConfig":{"RestartPolicy":{"Name":"unless-stopped","MaximumRetryCount":0}},"NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}],"443/tcp":null}}}]"#;

fn globals(extra: serde_json::Value) -> EngineGlobals {
    let mut g = json!({ "sshHost": "10.0.0.50", "sshKey": "k" });
    g.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(g).unwrap()
}

fn run_args() -> RunArgs {
    serde_json::from_value(json!({
        "image": "bot:latest",
        "name": "bot",
        "ports": ["8080:80"],
        "env": {"TOKEN": "s3cret-token", "MODE": "prod"},
        "volumes": ["/srv/bot:/data"],
    }))
    .unwrap()
}

#[test]
fn install_skips_when_docker_is_there() {
    let c = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let out = install(&c, &globals(json!({})), "slate").unwrap();
    assert!(!out.changed);
    assert_eq!(out.commands, ["command -v 'docker' >/dev/null"]);
}

#[test]
fn install_runs_the_script_then_checks_again() {
    let probes = std::cell::Cell::new(0);
    let c = FakeConnector::new(FakeRemote::new(move |cmd| {
        if cmd.starts_with("command -v") {
            probes.set(probes.get() + 1);
            return if probes.get() == 1 {
                fake::exit(1, "", "")
            } else {
                fake::ok("")
            };
        }
        fake::ok("")
    }));
    let out = install(&c, &globals(json!({})), "slate").unwrap();
    assert!(out.changed);
    assert_eq!(
        out.commands,
        [
            "command -v 'docker' >/dev/null",
            "curl -fsSL https://get.docker.com -o /tmp/get-docker.sh",
            "sh /tmp/get-docker.sh",
            "rm -f /tmp/get-docker.sh",
            "command -v 'docker' >/dev/null",
        ]
    );
}

#[test]
fn a_failing_install_step_stops_with_the_remote_stderr() {
    let remote = FakeRemote::new(|cmd| {
        if cmd.starts_with("command -v") {
            fake::exit(1, "", "")
        } else if cmd.contains("apt-get install") {
            fake::exit(100, "", "E: Unable to locate package docker.io")
        } else {
            fake::ok("")
        }
    });
    let c = FakeConnector::new(remote);
    let err = install(&c, &globals(json!({"installMethod": "apt"})), "slate").unwrap_err();
    let Error::Failed(msg) = err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("exit 100") && msg.contains("Unable to locate package docker.io"),
        "{msg}"
    );
}

#[test]
fn build_quotes_every_word() {
    let g = globals(json!({}));
    let args: BuildArgs = serde_json::from_value(
        json!({"context": "/srv/my bot", "tag": "bot:1", "dockerfile": "Dockerfile.prod"}),
    )
    .unwrap();
    assert_eq!(
        build_command(&g, &args).unwrap(),
        "'docker' 'build' '-t' 'bot:1' '-f' 'Dockerfile.prod' '/srv/my bot'"
    );
    let bad: BuildArgs = serde_json::from_value(json!({"context": " ", "tag": "t"})).unwrap();
    assert!(matches!(
        build_command(&g, &bad),
        Err(Error::InvalidArguments(_))
    ));
}

#[test]
fn run_creates_with_an_env_file_that_is_removed_and_never_on_the_command_line() {
    let remote = FakeRemote::new(|cmd| {
        if cmd.contains("'inspect'") {
            fake::exit(1, "", "Error: No such container: bot")
        } else {
            fake::ok("abc123\n")
        }
    });
    let c = FakeConnector::new(remote);
    let out = run(&c, &globals(json!({})), "slate", &run_args()).unwrap();
    assert!(out.changed);
    assert_eq!(
        out.commands,
        [
            "'docker' 'container' 'inspect' '--format' '{{.State.Running}}' 'bot'",
            "'docker' 'run' '-d' '--name' 'bot' '--restart' 'unless-stopped' '-p' '8080:80' '-v' '/srv/bot:/data' '--env-file' '/tmp/.orch-env-bot' 'bot:latest'",
            "rm -f '/tmp/.orch-env-bot'",
        ]
    );
    assert!(c.remote.commands().iter().all(|c| !c.contains("s3cret")));
}

#[test]
fn run_is_idempotent_by_name() {
    let c = FakeConnector::new(FakeRemote::new(|_| fake::ok("true\n")));
    let out = run(&c, &globals(json!({})), "slate", &run_args()).unwrap();
    assert!(!out.changed);
    assert_eq!(out.commands.len(), 1);
    let c = FakeConnector::new(FakeRemote::new(|_| fake::ok("false\n")));
    let out = run(&c, &globals(json!({})), "slate", &run_args()).unwrap();
    assert!(out.changed);
    assert_eq!(out.commands[1], "'docker' 'start' 'bot'");
}

#[test]
fn a_failing_run_still_removes_the_env_file_and_reports_stderr() {
    let remote = FakeRemote::new(|cmd| {
        if cmd.contains("'inspect'") {
            fake::exit(1, "", "Error: No such container: bot")
        } else if cmd.contains("'run'") {
            fake::exit(
                125,
                "",
                "docker: Error response from daemon: pull access denied",
            )
        } else {
            fake::ok("")
        }
    });
    let c = FakeConnector::new(remote);
    let err = run(&c, &globals(json!({})), "slate", &run_args()).unwrap_err();
    assert!(format!("{err:?}").contains("pull access denied"), "{err:?}");
    let uploads = c.remote.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].0, "/tmp/.orch-env-bot");
    assert_eq!(uploads[0].1, "MODE=prod\nTOKEN=s3cret-token\n");
    assert_eq!(uploads[0].2, 0o600);
    assert_eq!(
        c.remote.commands().last().unwrap(),
        "rm -f '/tmp/.orch-env-bot'"
    );
}

#[test]
fn bad_env_names_and_values_are_refused() {
    let mut env = BTreeMap::new();
    env.insert("1BAD".to_string(), "x".to_string());
    assert!(matches!(
        env_file_text(&env),
        Err(Error::InvalidArguments(_))
    ));
    env.clear();
    env.insert("OK".to_string(), "a\nb".to_string());
    assert!(matches!(
        env_file_text(&env),
        Err(Error::InvalidArguments(_))
    ));
}

#[test]
fn inspect_parses_dockers_shapes() {
    let c = FakeConnector::new(FakeRemote::new(|_| fake::ok(INSPECT)));
    let args = NameArgs { name: "bot".into() };
    let r = inspect(&c, &globals(json!({})), "slate", &args, NOW).unwrap();
    assert_eq!(r.name, "bot");
    assert_eq!(r.image, "bot:latest");
    assert!(r.running);
    assert_eq!(r.restart_policy, "unless-stopped");
    assert_eq!(r.ports["80/tcp"], ["0.0.0.0:8080"]);
    assert!(r.ports["443/tcp"].is_empty());
    assert!(parse_inspect("[]", NOW).is_err());
    assert!(parse_inspect("not json", NOW).is_err());
}

#[test]
fn exec_passes_words_and_fails_with_stderr() {
    let c = FakeConnector::new(FakeRemote::new(|_| fake::ok("hi\n")));
    let args = ExecArgs {
        name: "bot".into(),
        command: vec!["echo".into(), "a b".into()],
    };
    let out = exec(&c, &globals(json!({})), "slate", &args).unwrap();
    assert_eq!(out.command, "'docker' 'exec' 'bot' 'echo' 'a b'");
    assert_eq!(out.stdout, "hi\n");
    let c = FakeConnector::new(FakeRemote::new(|_| {
        fake::exit(1, "", "sh: nope: not found")
    }));
    let err = exec(&c, &globals(json!({})), "slate", &args).unwrap_err();
    assert!(format!("{err:?}").contains("nope: not found"));
}
