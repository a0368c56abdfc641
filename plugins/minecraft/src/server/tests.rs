use super::*;
use crate::remote::fake::{self, FakeConnector, FakeRemote, Op};
use orch_plugin_sdk::Error;
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

fn globals(host: serde_json::Value) -> ServerGlobals {
    serde_json::from_value(json!({
        "sshHost": host,
        "sshKey": "-----BEGIN OPENSSH PRIVATE KEY-----",
        "tmuxSession": "allthemons",
        "serverDir": "/opt/mc/atm",
        "startScript": "./run.sh",
        "serverName": "allthemons",
    }))
    .unwrap()
}

fn running() -> ServerGlobals {
    globals(json!("10.0.0.96"))
}

fn no_sleep(_: Duration) {}

const LIST_ANSWER: &str =
    "[18:22:05] [Server thread/INFO]: There are 2 of a max of 20 players online: Alice, Bob\n";

/// A console that is up and answers `list`.
fn up_console() -> FakeConnector {
    FakeConnector::new(FakeRemote::new(|c| {
        if c.contains("-l 'list'") {
            fake::ok(LIST_ANSWER)
        } else {
            fake::ok("")
        }
    }))
}

#[test]
fn log_path_defaults_under_server_dir_and_honours_absolute_paths() {
    let mut g = running();
    assert_eq!(g.log_file().unwrap(), "/opt/mc/atm/logs/latest.log");
    g.log_path = Some("logs/debug.log".into());
    assert_eq!(g.log_file().unwrap(), "/opt/mc/atm/logs/debug.log");
    g.log_path = Some("/var/log/mc.log".into());
    g.server_dir = None;
    assert_eq!(g.log_file().unwrap(), "/var/log/mc.log");
    g.log_path = None;
    assert!(matches!(g.log_file(), Err(Error::InvalidArguments(_))));
}

#[test]
fn status_of_a_stopped_vm_is_offline_without_connecting() {
    let connector = up_console();
    let g = globals(json!(null));
    let status = Server::new(&connector, &g, "allthemonsMinecraft", &no_sleep)
        .status()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({"online": false, "players": 0, "maxPlayers": null, "names": [], "reason": "offline"})
    );
    assert_eq!(connector.opens(), 0);
}

#[test]
fn status_reads_players_from_the_list_answer() {
    let connector = up_console();
    let g = running();
    let status = Server::new(&connector, &g, "m", &no_sleep)
        .status()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({"online": true, "players": 2, "maxPlayers": 20, "names": ["Alice", "Bob"]})
    );
    let commands = connector.remote.commands();
    assert_eq!(commands.len(), 1, "one round trip");
    assert!(commands[0].contains("log='/opt/mc/atm/logs/latest.log'"));
}

#[test]
fn status_without_a_session_or_answer_says_why() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("orch:not-running\n")));
    let g = running();
    let s = Server::new(&connector, &g, "m", &no_sleep)
        .status()
        .unwrap();
    assert_eq!(
        (s.online, s.reason.as_deref()),
        (false, Some("not running"))
    );

    let connector = FakeConnector::new(FakeRemote::new(|_| {
        fake::ok("[10:00:00] [Server thread/INFO]: Preparing spawn area: 83%\n")
    }));
    let s = Server::new(&connector, &g, "m", &no_sleep)
        .status()
        .unwrap();
    assert_eq!((s.online, s.reason.as_deref()), (false, Some("no reply")));
}

#[test]
fn status_with_a_missing_log_names_the_path() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::exit(6, "", "")));
    let g = running();
    let e = Server::new(&connector, &g, "m", &no_sleep)
        .status()
        .unwrap_err();
    assert!(
        matches!(e, Error::Failed(ref m) if m.contains("/opt/mc/atm/logs/latest.log") && m.contains("logPath"))
    );
}

#[test]
fn a_bad_session_name_is_refused_before_connecting() {
    let connector = up_console();
    let mut g = running();
    g.tmux_session = "atm; reboot".into();
    let server = Server::new(&connector, &g, "m", &no_sleep);
    assert!(matches!(server.status(), Err(Error::InvalidArguments(_))));
    assert!(matches!(server.start(), Err(Error::InvalidArguments(_))));
    assert!(matches!(
        server.stop(&StopArgs::default()),
        Err(Error::InvalidArguments(_))
    ));
    assert_eq!(connector.opens(), 0);
}

#[test]
fn every_method_but_status_refuses_a_stopped_vm_before_connecting() {
    let connector = up_console();
    let g = globals(json!(null));
    let server = Server::new(&connector, &g, "allthemonsMinecraft", &no_sleep);
    let results: Vec<Result<()>> = vec![
        server.start().map(drop),
        server.stop(&StopArgs::default()).map(drop),
        server.warn(&WarnArgs { seconds: 10 }).map(drop),
        server
            .say(&SayArgs {
                message: "hi".into(),
            })
            .map(drop),
        server
            .op(
                &PlayerArgs {
                    player: "Steve".into(),
                },
                true,
            )
            .map(drop),
        server
            .collect(&CollectArgs::default(), "2026-11-21T10:00:00Z")
            .map(drop),
    ];
    for result in results {
        assert!(
            matches!(result, Err(Error::Conflict(ref m)) if m.contains("has no IP (is the VM running?)")),
            "{result:?}"
        );
    }
    assert_eq!(connector.opens(), 0);
}

#[test]
fn start_runs_the_idempotent_script_and_reports_what_happened() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("orch:started\n")));
    let g = running();
    let out = Server::new(&connector, &g, "m", &no_sleep).start().unwrap();
    assert_eq!(
        out,
        StartOutput {
            session: "allthemons".into(),
            started: true
        }
    );
    assert!(
        connector.remote.commands()[0]
            .contains("tmux new-session -d -s 'allthemons' -c '/opt/mc/atm' './run.sh'")
    );

    let connector = FakeConnector::new(FakeRemote::new(|_| fake::ok("orch:already-running\n")));
    let out = Server::new(&connector, &g, "m", &no_sleep).start().unwrap();
    assert!(!out.started);
}

#[test]
fn start_needs_server_dir_and_start_script() {
    let connector = up_console();
    let mut g = running();
    g.start_script = Some(" ".into());
    assert!(matches!(
        Server::new(&connector, &g, "m", &no_sleep).start(),
        Err(Error::InvalidArguments(ref m)) if m.contains("startScript")
    ));
    g.start_script = Some("./run.sh".into());
    g.server_dir = None;
    g.log_path = Some("/var/log/mc.log".into());
    assert!(matches!(
        Server::new(&connector, &g, "m", &no_sleep).start(),
        Err(Error::InvalidArguments(ref m)) if m.contains("serverDir")
    ));
    assert_eq!(connector.opens(), 0);
}

/// A session that ends after `polls_until_gone` has-session checks following `stop`.
fn stopping_console(polls_until_gone: u32) -> FakeConnector {
    let stopped = Rc::new(Cell::new(false));
    let polls = Rc::new(Cell::new(0));
    let (s, p) = (stopped.clone(), polls.clone());
    FakeConnector::new(FakeRemote::new(move |c| {
        if c.contains("-l 'stop'") {
            s.set(true);
            return fake::ok("");
        }
        if c.contains("kill-session") {
            return fake::ok("");
        }
        // has_session
        if !s.get() {
            return fake::ok("");
        }
        p.set(p.get() + 1);
        if p.get() >= polls_until_gone {
            fake::exit(1, "", "")
        } else {
            fake::ok("")
        }
    }))
}

#[test]
fn stop_sends_stop_and_polls_until_the_session_ends() {
    let connector = stopping_console(3);
    let g = running();
    let slept = RefCell::new(Vec::new());
    let sleep = |d: Duration| slept.borrow_mut().push(d.as_secs());
    let out = Server::new(&connector, &g, "m", &sleep)
        .stop(&StopArgs::default())
        .unwrap();
    assert_eq!(
        out,
        StopOutput {
            session: "allthemons".into(),
            was_running: true,
            killed: false,
            waited_seconds: 6
        }
    );
    assert_eq!(*slept.borrow(), [2, 2, 2]);
    let commands = connector.remote.commands();
    assert!(commands[1].ends_with(
        "tmux send-keys -t '=allthemons:' -l 'stop' && tmux send-keys -t '=allthemons:' Enter"
    ));
    assert_eq!(commands.len(), 5, "check, stop, three polls");
}

#[test]
fn stop_of_a_stopped_server_does_nothing() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::exit(1, "", "")));
    let g = running();
    let out = Server::new(&connector, &g, "m", &no_sleep)
        .stop(&StopArgs::default())
        .unwrap();
    assert!(!out.was_running);
    assert_eq!(connector.remote.commands().len(), 1);
}

#[test]
fn stop_is_bounded_and_can_kill_a_session_that_never_ends() {
    let g = running();
    let connector = stopping_console(u32::MAX);
    let args = StopArgs {
        timeout_seconds: 10,
        kill_on_timeout: false,
    };
    let e = Server::new(&connector, &g, "m", &no_sleep)
        .stop(&args)
        .unwrap_err();
    assert!(matches!(e, Error::Transient(ref m) if m.contains("still runs 10 s")));
    // check + stop + 5 polls, and nothing killed.
    assert_eq!(connector.remote.commands().len(), 7);

    let connector = stopping_console(u32::MAX);
    let args = StopArgs {
        timeout_seconds: 4,
        kill_on_timeout: true,
    };
    let out = Server::new(&connector, &g, "m", &no_sleep)
        .stop(&args)
        .unwrap();
    assert!(out.killed);
    assert_eq!(
        connector.remote.commands().last().unwrap(),
        "tmux kill-session -t '=allthemons'"
    );
}

#[test]
fn countdown_announces_marks_and_adds_up_to_the_delay() {
    assert_eq!(
        countdown(60),
        [
            (60, 30),
            (30, 15),
            (15, 5),
            (10, 5),
            (5, 1),
            (4, 1),
            (3, 1),
            (2, 1),
            (1, 1)
        ]
    );
    assert_eq!(countdown(0), [(0, 0)]);
    assert_eq!(countdown(3), [(3, 1), (2, 1), (1, 1)]);
    for s in [0, 1, 7, 45, 90, 300, 600, 10_000] {
        let total: u32 = countdown(s).iter().map(|(_, pause)| pause).sum();
        assert_eq!(total, s.min(600), "{s}");
    }
    assert_eq!(warning_text(300), "Server shutting down in 5 minutes");
    assert_eq!(warning_text(30), "Server shutting down in 30 seconds");
    assert_eq!(warning_text(1), "Server shutting down in 1 second");
}

#[test]
fn warn_shutdown_says_the_countdown_and_sleeps_between() {
    let connector = up_console();
    let g = running();
    let slept = RefCell::new(0u64);
    let sleep = |d: Duration| *slept.borrow_mut() += d.as_secs();
    let out = Server::new(&connector, &g, "m", &sleep)
        .warn(&WarnArgs { seconds: 10 })
        .unwrap();
    assert!(out.warned);
    assert_eq!(out.messages[0], "Server shutting down in 10 seconds");
    assert_eq!(out.messages.len(), 6);
    assert_eq!(*slept.borrow(), 10);
    let commands = connector.remote.commands();
    assert!(commands[1].contains("-l 'say Server shutting down in 10 seconds'"));
}

#[test]
fn warn_shutdown_of_a_stopped_server_warns_nobody() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::exit(1, "", "")));
    let g = running();
    let out = Server::new(&connector, &g, "m", &|_| panic!("must not wait"))
        .warn(&WarnArgs { seconds: 60 })
        .unwrap();
    assert!(!out.warned && out.messages.is_empty());
}

#[test]
fn say_quotes_the_message_and_refuses_a_second_line() {
    let connector = up_console();
    let g = running();
    let server = Server::new(&connector, &g, "m", &no_sleep);
    let out = server
        .say(&SayArgs {
            message: "back in 5'; reboot".into(),
        })
        .unwrap();
    assert_eq!(out.sent, "say back in 5'; reboot");
    assert!(connector.remote.commands()[0].contains("-l 'say back in 5'\\''; reboot'"));
    assert!(matches!(
        server.say(&SayArgs {
            message: "hi\nstop".into()
        }),
        Err(Error::InvalidArguments(_))
    ));
}

#[test]
fn say_to_a_server_without_session_is_a_conflict() {
    let connector = FakeConnector::new(FakeRemote::new(|_| fake::exit(3, "", "")));
    let g = running();
    let e = Server::new(&connector, &g, "m", &no_sleep)
        .say(&SayArgs {
            message: "hi".into(),
        })
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(ref m) if m.contains("startMinecraftServer")));
}

#[test]
fn op_and_deop_confirm_from_the_log() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        if c.contains("-l 'op Steve'") {
            fake::ok("[10:00:00] [Server thread/INFO]: Made Steve a server operator\n")
        } else if c.contains("-l 'deop Steve'") {
            fake::ok(
                "[10:00:00] [Server thread/INFO]: Nothing changed. The player is not an operator\n",
            )
        } else {
            fake::ok("[10:00:00] [Server thread/INFO]: That player does not exist\n")
        }
    }));
    let g = running();
    let server = Server::new(&connector, &g, "m", &no_sleep);
    let steve = PlayerArgs {
        player: "Steve".into(),
    };
    let op = server.op(&steve, true).unwrap();
    assert_eq!(
        (op.sent.as_str(), op.result.as_deref()),
        ("op Steve", Some("changed"))
    );
    let deop = server.op(&steve, false).unwrap();
    assert_eq!(deop.result.as_deref(), Some("unchanged"));
    let ghost = PlayerArgs {
        player: "Ghost".into(),
    };
    assert!(matches!(server.op(&ghost, true), Err(Error::NotFound(_))));
    let evil = PlayerArgs {
        player: "Steve; stop".into(),
    };
    assert!(matches!(
        server.op(&evil, true),
        Err(Error::InvalidArguments(_))
    ));
}

#[test]
fn collect_metrics_writes_the_textfile_atomically_and_appends_the_log() {
    let connector = up_console();
    let g = running();
    let resource = Server::new(&connector, &g, "m", &no_sleep)
        .collect(&CollectArgs::default(), "2026-11-21T10:00:00Z")
        .unwrap();
    assert_eq!(
        resource,
        MetricsResource {
            server: "allthemons".into(),
            online: true,
            players: 2,
            max_players: Some(20),
            names: vec!["Alice".into(), "Bob".into()],
            reason: None,
            prom_path: "/var/lib/node_exporter/textfile_collector/game_minecraft.prom".into(),
            timestamp: "2026-11-21T10:00:00Z".into(),
        }
    );
    let ops = connector.remote.ops();
    assert_eq!(ops.len(), 4, "{ops:?}");
    assert_eq!(
        ops[1],
        Op::Exec(
            "mkdir -p '/var/lib/node_exporter/textfile_collector'".into(),
            None
        )
    );
    let Op::Upload(path, text, mode) = &ops[2] else {
        panic!("expected an upload, got {:?}", ops[2]);
    };
    assert_eq!(
        path,
        "/var/lib/node_exporter/textfile_collector/game_minecraft.prom.orch-tmp"
    );
    assert_eq!(*mode, 0o644);
    assert!(text.contains("game_players_online{server=\"allthemons\"} 2\n"));
    assert!(text.contains("game_players_max{server=\"allthemons\"} 20\n"));
    assert!(text.contains("game_server_up{server=\"allthemons\"} 1\n"));
    let Op::Exec(command, Some(stdin)) = &ops[3] else {
        panic!("expected the append, got {:?}", ops[3]);
    };
    assert_eq!(
        command,
        "mv -f '/var/lib/node_exporter/textfile_collector/game_minecraft.prom.orch-tmp' \
         '/var/lib/node_exporter/textfile_collector/game_minecraft.prom' \
         && cat >> '/var/log/game-players.log'"
    );
    let line: serde_json::Value = serde_json::from_str(stdin).unwrap();
    assert_eq!(line["players"], json!(2));
    assert_eq!(line["server"], json!("allthemons"));
}

#[test]
fn collect_metrics_records_a_silent_server_as_down() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        if c.contains("has-session -t '=allthemons' 2>/dev/null || {") {
            fake::ok("orch:not-running\n")
        } else {
            fake::ok("")
        }
    }));
    let g = running();
    let resource = Server::new(&connector, &g, "m", &no_sleep)
        .collect(&CollectArgs::default(), "t")
        .unwrap();
    assert!(!resource.online);
    assert_eq!(resource.reason.as_deref(), Some("not running"));
    let uploads = connector.remote.uploads();
    assert!(
        uploads[0]
            .1
            .contains("game_server_up{server=\"allthemons\"} 0\n")
    );
}

#[test]
fn collect_metrics_fails_when_the_files_cannot_be_written() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        if c.starts_with("mv -f") {
            fake::exit(
                1,
                "",
                "cat: can't open '/var/log/game-players.log': Permission denied",
            )
        } else if c.contains("-l 'list'") {
            fake::ok(LIST_ANSWER)
        } else {
            fake::ok("")
        }
    }));
    let g = running();
    let e = Server::new(&connector, &g, "m", &no_sleep)
        .collect(&CollectArgs::default(), "t")
        .unwrap_err();
    assert!(matches!(e, Error::Failed(ref m) if m.contains("Permission denied")));
}

#[test]
fn collect_metrics_checks_the_prom_path() {
    let connector = up_console();
    let g = running();
    let args = CollectArgs {
        prom_path: Some("relative.prom".into()),
        player_log_path: None,
    };
    assert!(matches!(
        Server::new(&connector, &g, "m", &no_sleep).collect(&args, "t"),
        Err(Error::InvalidArguments(_))
    ));
    assert_eq!(connector.opens(), 0);
}
