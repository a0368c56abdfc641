use super::*;
use orch_plugin_sdk::Error;

fn out(code: i32, stdout: &str) -> Output {
    Output {
        exit_code: code,
        stdout: stdout.to_string(),
        stderr: String::new(),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn session_names_allow_letters_digits_underscore_and_dash_only() {
    for good in ["minecraft", "allthemons", "mc_1", "infinity-2", "A9"] {
        assert_eq!(check_session(good).unwrap(), good);
    }
    for bad in [
        "",
        "mc 1",
        "mc;rm -rf /",
        "$(reboot)",
        "mc'x",
        "a:b",
        "a.b",
        "-t",
        "mc\n",
        "é",
    ] {
        assert!(
            matches!(check_session(bad), Err(Error::InvalidArguments(_))),
            "{bad:?}"
        );
    }
    assert!(check_session(&"a".repeat(65)).is_err());
}

#[test]
fn player_names_follow_minecraft_rules() {
    for good in ["Steve", "a_b", "x", "Player123456789_", ".BedrockGuy"] {
        assert!(check_player(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        ".",
        "Steve Alex",
        "Steve;stop",
        "17charactersxxxxx",
        "@a",
        "a\nstop",
    ] {
        assert!(check_player(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn console_text_is_one_line_and_not_an_option() {
    assert_eq!(check_console_text("  hello world ").unwrap(), "hello world");
    assert_eq!(
        check_console_text("it's \"fine\" $(x) `y`").unwrap(),
        "it's \"fine\" $(x) `y`"
    );
    for bad in ["", "  ", "a\nstop", "a\rb", "tab\there", "-x", "\u{1b}[31m"] {
        assert!(check_console_text(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn send_line_quotes_the_text_and_targets_the_exact_session() {
    assert_eq!(
        send_line("mc", "say it's $(reboot)"),
        "tmux send-keys -t '=mc:' -l 'say it'\\''s $(reboot)' && tmux send-keys -t '=mc:' Enter"
    );
}

#[test]
fn has_session_checks_for_tmux_then_the_exact_session() {
    let cmd = has_session("allthemons");
    assert!(cmd.starts_with("command -v tmux >/dev/null 2>&1 || {"));
    assert!(cmd.ends_with("\ntmux has-session -t '=allthemons' 2>/dev/null"));
}

#[test]
fn console_script_exits_3_without_a_session() {
    let cmd = console_script("mc", "stop");
    assert!(cmd.contains("tmux has-session -t '=mc' 2>/dev/null || exit 3\n"));
    assert!(cmd.ends_with("tmux send-keys -t '=mc:' -l 'stop' && tmux send-keys -t '=mc:' Enter"));
}

#[test]
fn start_script_quotes_every_value_and_is_idempotent() {
    let cmd = start_script("atm", "/opt/mc/All The Mons", "./run.sh nogui; echo 'x'");
    let lines: Vec<&str> = cmd.lines().collect();
    assert_eq!(
        lines[1],
        "if tmux has-session -t '=atm' 2>/dev/null; then echo orch:already-running; exit 0; fi"
    );
    assert_eq!(lines[2], "[ -d '/opt/mc/All The Mons' ] || exit 4");
    assert_eq!(
        lines[3],
        "tmux new-session -d -s 'atm' -c '/opt/mc/All The Mons' './run.sh nogui; echo '\\''x'\\''' || exit 1"
    );
    assert_eq!(lines[4], "sleep 2");
    assert_eq!(lines[5], "tmux has-session -t '=atm' 2>/dev/null || exit 5");
    assert_eq!(lines[6], "echo orch:started");
}

#[test]
fn query_script_reads_only_the_log_written_after_the_command() {
    let cmd = query_script("mc", "/srv/mc/logs/latest.log", "list", LIST_REPLY);
    let expected = [
        "tmux has-session -t '=mc' 2>/dev/null || { echo orch:not-running; exit 0; }",
        "log='/srv/mc/logs/latest.log'",
        "[ -r \"$log\" ] || exit 6",
        "off=$(wc -c < \"$log\" 2>/dev/null || echo 0)",
        "tmux send-keys -t '=mc:' -l 'list' && tmux send-keys -t '=mc:' Enter || exit 1",
        "i=0",
        "until tail -c +\"$((off + 1))\" \"$log\" 2>/dev/null | grep -qF -e 'players online'; do",
        "  i=$((i + 1)); [ \"$i\" -gt 10 ] && break; sleep 1",
        "done",
        "tail -c +\"$((off + 1))\" \"$log\" 2>/dev/null | tail -n 200",
    ];
    assert_eq!(cmd.lines().skip(1).collect::<Vec<_>>(), expected);
}

#[test]
fn query_script_quotes_a_hostile_log_path() {
    let cmd = query_script("mc", "/tmp/x'; reboot; '", "list", LIST_REPLY);
    assert!(cmd.contains("log='/tmp/x'\\''; reboot; '\\'''\n"));
}

#[test]
fn kill_session_targets_the_exact_session() {
    assert_eq!(kill_session("mc"), "tmux kill-session -t '=mc'");
}

#[test]
fn start_outcomes_map_exit_codes_to_clear_errors() {
    let started = start_outcome(&out(0, "orch:started\n"), "/d", "/d/l").unwrap();
    assert_eq!(started, StartOutcome::Started);
    let already = start_outcome(&out(0, "orch:already-running\n"), "/d", "/d/l").unwrap();
    assert_eq!(already, StartOutcome::AlreadyRunning);
    assert!(matches!(
        start_outcome(&out(4, ""), "/srv/x", "l"),
        Err(Error::InvalidArguments(ref m)) if m.contains("/srv/x")
    ));
    assert!(matches!(
        start_outcome(&out(5, ""), "/d", "/d/logs/latest.log"),
        Err(Error::Failed(ref m)) if m.contains("/d/logs/latest.log")
    ));
    assert!(matches!(
        start_outcome(&out(127, ""), "/d", "l"),
        Err(Error::Failed(ref m)) if m.contains("tmux is not installed")
    ));
    assert!(start_outcome(&out(0, "garbage"), "/d", "l").is_err());
    assert!(start_outcome(&out(1, ""), "/d", "l").is_err());
}

#[test]
fn has_session_exit_codes_mean_running_or_not() {
    assert!(running_from(&out(0, "")).unwrap());
    assert!(!running_from(&out(1, "")).unwrap());
    assert!(running_from(&out(127, "")).is_err());
    assert!(running_from(&out(2, "")).is_err());
}

#[test]
fn log_prefixes_are_stripped_from_vanilla_forge_and_neoforge_lines() {
    assert_eq!(
        message_of("[12:34:56] [Server thread/INFO]: There are 0 of a max of 20 players online: "),
        Some("There are 0 of a max of 20 players online:")
    );
    assert_eq!(
        message_of("[12:34:56] [Server thread/INFO] [minecraft/DedicatedServer]: hello"),
        Some("hello")
    );
    assert_eq!(
        message_of(
            "[21Nov2026 12:00:00.123] [Server thread/INFO] [net.minecraft.server.dedicated.DedicatedServer/]: hi"
        ),
        Some("hi")
    );
    assert_eq!(
        message_of("There are 1/20 players online:"),
        Some("There are 1/20 players online:")
    );
    assert_eq!(
        message_of("[12:00:00] [Server thread/INFO]: <bob> hi"),
        Some("<bob> hi")
    );
    assert_eq!(message_of("[12:00:00] [Server thread/INFO]"), None);
    assert_eq!(message_of("[unclosed"), None);
}

#[test]
fn parses_the_real_list_line_with_names() {
    let list = parse_player_list(
        "[18:22:05] [Server thread/INFO]: There are 2 of a max of 20 players online: Alice, Bob\n",
    )
    .unwrap();
    assert_eq!(
        list,
        PlayerList {
            online: 2,
            max: 20,
            names: names(&["Alice", "Bob"])
        }
    );
}

#[test]
fn parses_the_list_line_without_prefix() {
    let list = parse_player_list("There are 1 of a max of 10 players online: Steve").unwrap();
    assert_eq!(
        list,
        PlayerList {
            online: 1,
            max: 10,
            names: names(&["Steve"])
        }
    );
}

#[test]
fn parses_the_list_line_with_nobody_online() {
    for text in [
        "[09:00:00] [Server thread/INFO]: There are 0 of a max of 20 players online: ",
        "[09:00:00] [Server thread/INFO]: There are 0 of a max of 20 players online:",
        "There are 0 of a max of 20 players online",
    ] {
        assert_eq!(
            parse_player_list(text),
            Some(PlayerList {
                online: 0,
                max: 20,
                names: vec![]
            }),
            "{text}"
        );
    }
}

#[test]
fn parses_the_forge_prefixed_line_and_the_old_max_wording() {
    let list = parse_player_list(
        "[10:00:00] [Server thread/INFO] [minecraft/DedicatedServer]: There are 3 of a max 50 players online: a, b, c",
    )
    .unwrap();
    assert_eq!((list.online, list.max, list.names.len()), (3, 50, 3));
}

#[test]
fn parses_the_1_12_form_with_names_on_the_next_line() {
    let log = "[10:00:00] [Server thread/INFO]: There are 2/20 players online:\n\
               [10:00:00] [Server thread/INFO]: Steve, Alex\n";
    assert_eq!(
        parse_player_list(log),
        Some(PlayerList {
            online: 2,
            max: 20,
            names: names(&["Steve", "Alex"])
        })
    );
    let empty = "[10:00:00] [Server thread/INFO]: There are 0/20 players online:\n\
                 [10:00:00] [Server thread/INFO]: \n";
    assert_eq!(
        parse_player_list(empty).unwrap().names,
        Vec::<String>::new()
    );
}

#[test]
fn takes_the_last_answer_and_ignores_chat_that_imitates_it() {
    let log = "\
[10:00:00] [Server thread/INFO]: There are 1 of a max of 20 players online: Alice
[10:00:01] [Server thread/INFO]: <Mallory> There are 99 of a max of 99 players online: x
[10:00:02] [Server thread/INFO]: [Server] There are 98 of a max of 99 players online: y
[10:00:03] [Async Chat Thread - #0/INFO]: <Mallory> ]: There are 97 of a max of 99 players online: z
[10:00:04] [Server thread/INFO]: There are 2 of a max of 20 players online: Alice, Bob
[10:00:05] [Server thread/INFO]: Bob lost connection: Disconnected
";
    assert_eq!(
        parse_player_list(log),
        Some(PlayerList {
            online: 2,
            max: 20,
            names: names(&["Alice", "Bob"])
        })
    );
}

#[test]
fn garbage_and_partial_lines_parse_to_nothing_without_panicking() {
    for text in [
        "",
        "\n\n",
        "There are",
        "There are x of a max of 20 players online: a",
        "There are 1 of a max of players online",
        "There are 99999999999 of a max of 20 players online",
        "There are 1 of a max of 20 players onlineXYZ",
        "[10:00:00] [Server thread/INFO]: Done (12.3s)! For help, type \"help\"",
        "\u{fffd}\u{fffd}[[[]]]:::",
    ] {
        assert_eq!(parse_player_list(text), None, "{text:?}");
    }
}

#[test]
fn op_replies_are_read_in_both_wordings() {
    let modern = "[10:00:00] [Server thread/INFO]: Made Steve a server operator";
    assert_eq!(parse_op_reply(modern, "Steve"), OpReply::Changed);
    let deop = "[10:00:00] [Server thread/INFO]: Made Steve no longer a server operator";
    assert_eq!(parse_op_reply(deop, "Steve"), OpReply::Changed);
    let same =
        "[10:00:00] [Server thread/INFO]: Nothing changed. The player already is an operator";
    assert_eq!(parse_op_reply(same, "Steve"), OpReply::Unchanged);
    let unknown = "[10:00:00] [Server thread/INFO]: That player does not exist";
    assert_eq!(parse_op_reply(unknown, "Nobody"), OpReply::UnknownPlayer);
    assert_eq!(
        parse_op_reply("[10:00:00] [Server thread/INFO]: Opped Steve", "Steve"),
        OpReply::Changed
    );
    assert_eq!(
        parse_op_reply(
            "[10:00:00] [Server thread/INFO]: Could not op Steve",
            "Steve"
        ),
        OpReply::UnknownPlayer
    );
    assert_eq!(parse_op_reply("", "Steve"), OpReply::NoReply);
    // Someone else's op, or chat, is not our answer.
    let other = "[10:00:00] [Server thread/INFO]: Made Alex a server operator\n\
                 [10:00:00] [Server thread/INFO]: <Steve> Made Steve a server operator";
    assert_eq!(parse_op_reply(other, "Steve"), OpReply::NoReply);
}
