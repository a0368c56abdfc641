use super::*;
use crate::remote::fake::{self, FakeConnector, FakeRemote, Op};
use std::cell::RefCell;

fn exec_args(command: &str) -> ExecArgs {
    ExecArgs {
        command: command.to_string(),
        stdin: None,
        timeout_ms: None,
        check: false,
    }
}

fn upload_args(content: Option<&str>, b64: Option<&str>, mode: Option<Mode>) -> UploadArgs {
    UploadArgs {
        path: "/etc/motd".to_string(),
        content: content.map(String::from),
        content_base64: b64.map(String::from),
        mode,
    }
}

fn stopped_vm() -> SshSettings {
    SshSettings {
        host: None,
        ..fake::settings()
    }
}

fn assert_no_ip(e: Error) {
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("has no IP (is the VM running?)")),
        "{e:?}"
    );
}

#[test]
fn exec_returns_exit_code_and_output_and_passes_stdin_and_timeout() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        assert_eq!(c, "cat > /tmp/x && echo done");
        fake::exit(3, "done\n", "warn\n")
    }));
    let args = ExecArgs {
        stdin: Some("hello".into()),
        timeout_ms: Some(5000),
        ..exec_args("cat > /tmp/x && echo done")
    };
    let out = exec(&connector, &fake::settings(), "testVmSsh", &args).unwrap();
    assert_eq!(
        out,
        ExecOutput {
            exit_code: 3,
            stdout: "done\n".into(),
            stderr: "warn\n".into()
        }
    );
    assert_eq!(
        connector.remote.ops(),
        [Op::Exec(
            "cat > /tmp/x && echo done".into(),
            Some("hello".into())
        )]
    );
    assert_eq!(connector.targets(), ["root@10.0.0.96:22"]);
}

#[test]
fn exec_with_check_fails_on_a_non_zero_exit() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::exit(1, "", "boom")));
    let args = ExecArgs {
        check: true,
        ..exec_args("false")
    };
    let e = exec(&connector, &fake::settings(), "m", &args).unwrap_err();
    assert!(matches!(e, Error::Failed(ref m) if m.contains("exited with 1") && m.contains("boom")));
}

#[test]
fn exec_on_a_stopped_vm_fails_before_connecting() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let e = exec(&connector, &stopped_vm(), "testVmSsh", &exec_args("uptime")).unwrap_err();
    assert_no_ip(e);
    assert_eq!(connector.opens(), 0);
}

#[test]
fn exec_survives_non_utf8_output() {
    let connector = FakeConnector::new(FakeRemote::new(|_| {
        Ok(orch_plugin_sdk::ssh::ExecResult {
            exit_code: 0,
            stdout: vec![0xff, b'o', b'k'],
            stderr: vec![],
        })
    }));
    let out = exec(&connector, &fake::settings(), "m", &exec_args("x")).unwrap();
    assert_eq!(out.stdout, "\u{fffd}ok");
}

#[test]
fn an_empty_command_is_refused() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let e = exec(&connector, &fake::settings(), "m", &exec_args("  ")).unwrap_err();
    assert!(matches!(e, Error::InvalidArguments(_)));
    assert_eq!(connector.opens(), 0);
}

#[test]
fn modes_read_octal_strings_and_plain_numbers() {
    assert_eq!(parse_mode(None).unwrap(), 0o644);
    assert_eq!(parse_mode(Some(&Mode::Text("0644".into()))).unwrap(), 0o644);
    assert_eq!(parse_mode(Some(&Mode::Text("755".into()))).unwrap(), 0o755);
    assert_eq!(
        parse_mode(Some(&Mode::Text("0o600".into()))).unwrap(),
        0o600
    );
    assert_eq!(parse_mode(Some(&Mode::Number(420))).unwrap(), 0o644);
    assert!(parse_mode(Some(&Mode::Text("rw-r--r--".into()))).is_err());
    assert!(parse_mode(Some(&Mode::Text("0689".into()))).is_err());
    assert!(parse_mode(Some(&Mode::Number(0o10000))).is_err());
}

#[test]
fn modes_deserialize_from_numbers_and_strings() {
    let args: UploadArgs =
        serde_json::from_str(r#"{"path":"/x","content":"","mode":"0600"}"#).unwrap();
    assert_eq!(parse_mode(args.mode.as_ref()).unwrap(), 0o600);
    let args: UploadArgs =
        serde_json::from_str(r#"{"path":"/x","content":"","mode":493}"#).unwrap();
    assert_eq!(parse_mode(args.mode.as_ref()).unwrap(), 0o755);
}

#[test]
fn upload_sends_text_with_the_default_mode() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let out = upload(
        &connector,
        &fake::settings(),
        "m",
        &upload_args(Some("hi\n"), None, None),
    )
    .unwrap();
    assert_eq!(
        out,
        UploadOutput {
            path: "/etc/motd".into(),
            bytes: 3,
            mode: "0644".into()
        }
    );
    assert_eq!(
        connector.remote.uploads(),
        [("/etc/motd".into(), "hi\n".into(), 0o644)]
    );
}

#[test]
fn upload_decodes_base64_and_honours_the_mode() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let args = upload_args(None, Some("aGk="), Some(Mode::Text("0755".into())));
    let out = upload(&connector, &fake::settings(), "m", &args).unwrap();
    assert_eq!(out.mode, "0755");
    assert_eq!(
        connector.remote.uploads(),
        [("/etc/motd".into(), "hi".into(), 0o755)]
    );
}

#[test]
fn upload_needs_exactly_one_content_and_checks_before_connecting() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    for args in [
        upload_args(None, None, None),
        upload_args(Some("a"), Some("YQ=="), None),
        upload_args(None, Some("not base64!"), None),
    ] {
        let e = upload(&connector, &fake::settings(), "m", &args).unwrap_err();
        assert!(matches!(e, Error::InvalidArguments(_)), "{e:?}");
    }
    let mut dir = upload_args(Some("a"), None, None);
    dir.path = "/etc/".into();
    assert!(upload(&connector, &fake::settings(), "m", &dir).is_err());
    assert_eq!(connector.opens(), 0);
}

#[test]
fn upload_to_a_stopped_vm_fails_before_connecting() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let e = upload(
        &connector,
        &stopped_vm(),
        "m",
        &upload_args(Some("x"), None, None),
    )
    .unwrap_err();
    assert_no_ip(e);
    assert_eq!(connector.opens(), 0);
}

#[test]
fn backoff_doubles_from_the_initial_delay_and_caps_at_ten_seconds() {
    let ms = |d: Vec<Duration>| d.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>();
    assert_eq!(
        ms(backoff_delays(8, 500)),
        [500, 1000, 2000, 4000, 8000, 10_000, 10_000]
    );
    assert_eq!(ms(backoff_delays(1, 500)), Vec::<u64>::new());
    assert_eq!(ms(backoff_delays(3, 60_000)), [10_000, 10_000]);
    // Asking for more than the cap is bounded.
    assert_eq!(backoff_delays(10_000, 0).len(), MAX_ATTEMPTS as usize - 1);
    assert_eq!(backoff_delays(0, 500).len(), 0);
}

#[test]
fn wait_retries_until_the_host_answers() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        assert_eq!(c, "true");
        fake::ok("")
    }))
    .failing(|n| (n < 3).then(|| Error::Transient("connection refused".into())));
    let slept = RefCell::new(Vec::new());
    let notes = RefCell::new(Vec::new());
    let out = wait_for_connection(
        &connector,
        &fake::settings(),
        "m",
        &WaitArgs {
            max_attempts: 30,
            initial_delay_ms: 500,
        },
        &|d| slept.borrow_mut().push(d.as_millis()),
        &|m| notes.borrow_mut().push(m.to_string()),
    )
    .unwrap();
    assert_eq!(
        out,
        WaitOutput {
            connected: true,
            attempts: 3,
            waited_ms: 1500
        }
    );
    assert_eq!(*slept.borrow(), [500, 1000]);
    assert!(notes.borrow()[0].contains("connection refused"));
    assert_eq!(connector.opens(), 3);
}

#[test]
fn wait_treats_a_failing_probe_command_as_not_ready() {
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = calls.clone();
    let connector = FakeConnector::new(FakeRemote::new(move |_| {
        counter.set(counter.get() + 1);
        if counter.get() == 1 {
            fake::exit(255, "", "system is booting up")
        } else {
            fake::ok("")
        }
    }));
    let out = wait_for_connection(
        &connector,
        &fake::settings(),
        "m",
        &WaitArgs {
            max_attempts: 5,
            initial_delay_ms: 10,
        },
        &|_| {},
        &|_| {},
    )
    .unwrap();
    assert_eq!(out.attempts, 2);
}

#[test]
fn wait_gives_up_after_max_attempts() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")))
        .failing(|_| Some(Error::Transient("no route to host".into())));
    let slept = RefCell::new(Duration::ZERO);
    let e = wait_for_connection(
        &connector,
        &fake::settings(),
        "m",
        &WaitArgs {
            max_attempts: 4,
            initial_delay_ms: 500,
        },
        &|d| *slept.borrow_mut() += d,
        &|_| {},
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Transient(ref m) if m.contains("after 4 attempts") && m.contains("no route to host")),
        "{e:?}"
    );
    assert_eq!(connector.opens(), 4);
    assert_eq!(*slept.borrow(), Duration::from_millis(3500));
}

#[test]
fn wait_stops_at_once_when_the_grant_is_missing() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")))
        .failing(|_| Some(Error::Denied("ssh 10.0.0.96:22 is not granted".into())));
    let e = wait_for_connection(
        &connector,
        &fake::settings(),
        "m",
        &WaitArgs {
            max_attempts: 30,
            initial_delay_ms: 500,
        },
        &|_| panic!("must not sleep"),
        &|_| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::Denied(_)));
    assert_eq!(connector.opens(), 1);
}

#[test]
fn wait_on_a_stopped_vm_fails_before_connecting() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let e = wait_for_connection(
        &connector,
        &stopped_vm(),
        "m",
        &WaitArgs {
            max_attempts: 30,
            initial_delay_ms: 500,
        },
        &|_| {},
        &|_| {},
    )
    .unwrap_err();
    assert_no_ip(e);
    assert_eq!(connector.opens(), 0);
}

#[test]
fn globals_take_defaults_and_null_host() {
    let g: HostGlobals = serde_json::from_str(r#"{"sshHost": null, "sshKey": "k"}"#).unwrap();
    let s = g.ssh();
    assert_eq!((s.host, s.port, s.user.as_str()), (None, 22, "root"));
    assert!(!s.trust_on_first_use);
    assert!(
        serde_json::from_str::<HostGlobals>(r#"{"sshHost": "h", "sshHots": 1}"#).is_err(),
        "unknown fields are refused"
    );
}
