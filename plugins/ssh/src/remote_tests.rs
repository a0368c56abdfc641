//! Tests of the shared SSH module (run here only, though four crates include it).

use crate::remote::fake::{self, FakeConnector, FakeRemote};
use crate::remote::{Output, Remote, SshSettings, bounded, connect};
use orch_plugin_sdk::Error;
use orch_plugin_sdk::ssh::Auth;

#[test]
fn a_null_or_blank_host_is_a_conflict_naming_the_model() {
    for host in [None, Some(""), Some("  ")] {
        let settings = SshSettings {
            host: host.map(String::from),
            ..fake::settings()
        };
        let Err(Error::Conflict(m)) = settings.target("allthemonsMinecraft") else {
            panic!("expected a conflict for {host:?}");
        };
        assert_eq!(
            m,
            "model `allthemonsMinecraft` has no IP (is the VM running?): sshHost is null"
        );
    }
}

#[test]
fn connect_never_opens_a_session_for_a_stopped_vm() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let settings = SshSettings {
        host: None,
        ..fake::settings()
    };
    assert!(matches!(
        connect(&connector, &settings, "m"),
        Err(Error::Conflict(_))
    ));
    assert_eq!(connector.opens(), 0);
}

#[test]
fn the_key_wins_over_the_password() {
    let settings = SshSettings {
        password: Some("pw".into()),
        ..fake::settings()
    };
    let target = settings.target("m").unwrap();
    assert!(matches!(target.auth, Auth::PrivateKey(ref k) if k.key.starts_with("-----BEGIN")));
    assert_eq!(
        (target.host.as_str(), target.port, target.user.as_str()),
        ("10.0.0.96", 22, "root")
    );
    assert!(!target.trust_on_first_use);
}

#[test]
fn a_blank_key_falls_back_to_the_password() {
    let settings = SshSettings {
        key: Some(" \n".into()),
        password: Some("pw".into()),
        trust_on_first_use: true,
        ..fake::settings()
    };
    let target = settings.target("m").unwrap();
    assert!(matches!(target.auth, Auth::Password(ref p) if p == "pw"));
    assert!(target.trust_on_first_use);
}

#[test]
fn missing_credentials_and_bad_hosts_are_invalid_arguments() {
    let no_auth = SshSettings {
        key: None,
        password: None,
        ..fake::settings()
    };
    assert!(matches!(
        no_auth.target("m"),
        Err(Error::InvalidArguments(ref m)) if m.contains("sshKey")
    ));
    for host in ["-oProxyCommand=x", "10.0.0.1 evil", "a\nb"] {
        let settings = SshSettings {
            host: Some(host.into()),
            ..fake::settings()
        };
        assert!(
            matches!(settings.target("m"), Err(Error::InvalidArguments(_))),
            "{host:?}"
        );
    }
    let port0 = SshSettings {
        port: 0,
        ..fake::settings()
    };
    assert!(port0.target("m").is_err());
}

#[test]
fn describe_shows_where_but_never_the_credentials() {
    let settings = SshSettings {
        password: Some("hunter2".into()),
        ..fake::settings()
    };
    let text = settings.describe();
    assert_eq!(text, "root@10.0.0.96:22");
}

#[test]
fn run_ok_reports_what_failed_with_stderr() {
    let remote = FakeRemote::new(|_| fake::exit(2, "", "tmux: command not found\n"));
    let Err(Error::Failed(m)) = remote.run_ok("tmux ls", "listing sessions") else {
        panic!("expected a failure");
    };
    assert_eq!(
        m,
        "listing sessions failed (exit 2): tmux: command not found"
    );
}

#[test]
fn output_reason_prefers_stderr_and_is_bounded() {
    let out = Output {
        exit_code: 1,
        stdout: "out".into(),
        stderr: String::new(),
    };
    assert_eq!(out.reason(), "out");
    assert_eq!(bounded("héllo", 2), "h…");
    assert_eq!(bounded("abc", 3), "abc");
}
