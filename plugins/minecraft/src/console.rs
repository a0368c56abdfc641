//! The server console as shell commands, and its replies as data: tmux command building
//! (every interpolated value quoted), name checks, and parsing of the log lines the server
//! writes in answer to `list`, `op` and `deop`.

use crate::remote::Output;
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{Result, error};

/// Exit code the scripts use when the tmux session does not exist.
pub const EXIT_NOT_RUNNING: i32 = 3;
/// Exit code the scripts use when serverDir does not exist.
pub const EXIT_NO_SERVER_DIR: i32 = 4;
/// Exit code of the start script when the session ended right after starting.
pub const EXIT_DIED_AT_ONCE: i32 = 5;
/// Exit code of the query script when the log file does not exist.
pub const EXIT_NO_LOG: i32 = 6;
/// Exit code the scripts use when tmux is missing (the shell's "command not found").
pub const EXIT_NO_TMUX: i32 = 127;

/// Marker the scripts print when the session already runs / is not running.
pub const MARK_ALREADY_RUNNING: &str = "orch:already-running";
/// Marker the start script prints after starting the session.
pub const MARK_STARTED: &str = "orch:started";
/// Marker the query script prints when there is no session to ask.
pub const MARK_NOT_RUNNING: &str = "orch:not-running";

/// Words that appear in the server's answer to `list`.
pub const LIST_REPLY: &[&str] = &["players online"];
/// Words that appear in the server's answers to `op` and `deop` (1.13+ and 1.12 wording).
pub const OP_REPLY: &[&str] = &[
    "server operator",
    "Nothing changed",
    "does not exist",
    "Opped ",
    "De-opped ",
    "Could not ",
];

/// How many one-second waits a query makes for the server's reply.
pub const REPLY_WAITS: u32 = 10;
/// How many log lines a query sends back.
pub const REPLY_LINES: u32 = 200;

/// Checks a tmux session name: letters, digits, `_` and `-`.
///
/// `.` is refused as well, although it is harmless to the shell: tmux silently renames `a.b` to
/// `a_b` when it creates the session, so later `has-session` calls would never find it.
pub fn check_session(name: &str) -> Result<&str> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.is_empty() || !ok_chars || name.starts_with('-') {
        return Err(error::invalid(format!(
            "tmuxSession {name:?} must be letters, digits, `_` and `-` (not starting with `-`)"
        )));
    }
    if name.len() > 64 {
        return Err(error::invalid("tmuxSession is longer than 64 characters"));
    }
    Ok(name)
}

/// Checks a player name: Java names are `[A-Za-z0-9_]{1,16}`; a leading `.` is Floodgate's
/// prefix for Bedrock players.
pub fn check_player(name: &str) -> Result<&str> {
    let body = name.strip_prefix('.').unwrap_or(name);
    let ok = !body.is_empty()
        && body.len() <= 16
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(error::invalid(format!(
            "player {name:?} is not a Minecraft name (1–16 letters, digits or `_`)"
        )))
    }
}

/// Checks text typed into the console: one line, no control characters, not an option.
pub fn check_console_text(text: &str) -> Result<&str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(error::invalid("the console text is empty"));
    }
    // A newline would submit a second, unchecked command; tmux would read `-x` as a flag.
    if text.chars().any(char::is_control) {
        return Err(error::invalid(
            "the console text must be one line without control characters",
        ));
    }
    if text.starts_with('-') {
        return Err(error::invalid("the console text must not start with `-`"));
    }
    if text.len() > 1000 {
        return Err(error::invalid("the console text is longer than 1000 bytes"));
    }
    Ok(text)
}

/// `-t` argument naming exactly this session (`=` turns off tmux's prefix matching, so `mc`
/// never finds `mc2`).
fn session_target(session: &str) -> String {
    shell_quote(&format!("={session}"))
}

/// `-t` argument naming the session's active pane.
fn pane_target(session: &str) -> String {
    shell_quote(&format!("={session}:"))
}

/// Fails with exit 127 and a clear message when tmux is missing.
fn require_tmux() -> String {
    format!(
        "command -v tmux >/dev/null 2>&1 || {{ echo 'tmux is not installed' >&2; exit {EXIT_NO_TMUX}; }}"
    )
}

/// Exits 0 when the session exists, 1 when not, 127 without tmux.
pub fn has_session(session: &str) -> String {
    format!(
        "{}\ntmux has-session -t {} 2>/dev/null",
        require_tmux(),
        session_target(session)
    )
}

/// Types `text` into the session's console and presses Enter (`-l`: the text is never read as
/// key names such as `Enter` or `C-c`).
pub fn send_line(session: &str, text: &str) -> String {
    let pane = pane_target(session);
    format!(
        "tmux send-keys -t {pane} -l {} && tmux send-keys -t {pane} Enter",
        shell_quote(text)
    )
}

/// Sends `text` to the console; exits 3 when the session does not exist.
pub fn console_script(session: &str, text: &str) -> String {
    format!(
        "{}\ntmux has-session -t {} 2>/dev/null || exit {EXIT_NOT_RUNNING}\n{}",
        require_tmux(),
        session_target(session),
        send_line(session, text)
    )
}

/// Starts the server in a detached session unless the session exists; prints a marker.
pub fn start_script(session: &str, server_dir: &str, start_command: &str) -> String {
    let dir = shell_quote(server_dir);
    [
        require_tmux(),
        format!(
            "if tmux has-session -t {} 2>/dev/null; then echo {MARK_ALREADY_RUNNING}; exit 0; fi",
            session_target(session)
        ),
        format!("[ -d {dir} ] || exit {EXIT_NO_SERVER_DIR}"),
        // tmux runs the start command through the user's shell, in serverDir.
        format!(
            "tmux new-session -d -s {} -c {dir} {} || exit 1",
            shell_quote(session),
            shell_quote(start_command)
        ),
        // A wrong script name ends the session at once; catch that here, not at the next status.
        "sleep 2".to_string(),
        format!(
            "tmux has-session -t {} 2>/dev/null || exit {EXIT_DIED_AT_ONCE}",
            session_target(session)
        ),
        format!("echo {MARK_STARTED}"),
    ]
    .join("\n")
}

/// Ends the session at once (the server gets no chance to save).
pub fn kill_session(session: &str) -> String {
    format!("tmux kill-session -t {}", session_target(session))
}

/// Sends `command` to the console and prints the log written after it, once a line holding one
/// of `reply_words` appears or after [`REPLY_WAITS`] seconds. Prints [`MARK_NOT_RUNNING`] when
/// there is no session. Only the new part of the log is read, so an old reply never counts.
pub fn query_script(session: &str, log_path: &str, command: &str, reply_words: &[&str]) -> String {
    let words: String = reply_words
        .iter()
        .map(|w| format!(" -e {}", shell_quote(w)))
        .collect();
    [
        require_tmux(),
        format!(
            "tmux has-session -t {} 2>/dev/null || {{ echo {MARK_NOT_RUNNING}; exit 0; }}",
            session_target(session)
        ),
        format!("log={}", shell_quote(log_path)),
        // Without the log the answer cannot be read; say so instead of waiting in vain.
        format!("[ -r \"$log\" ] || exit {EXIT_NO_LOG}"),
        "off=$(wc -c < \"$log\" 2>/dev/null || echo 0)".to_string(),
        format!("{} || exit 1", send_line(session, command)),
        "i=0".to_string(),
        format!("until tail -c +\"$((off + 1))\" \"$log\" 2>/dev/null | grep -qF{words}; do"),
        format!("  i=$((i + 1)); [ \"$i\" -gt {REPLY_WAITS} ] && break; sleep 1"),
        "done".to_string(),
        format!("tail -c +\"$((off + 1))\" \"$log\" 2>/dev/null | tail -n {REPLY_LINES}"),
    ]
    .join("\n")
}

/// What the start script did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// The session was created.
    Started,
    /// The session already existed; nothing was done.
    AlreadyRunning,
}

/// Reads the start script's result.
pub fn start_outcome(out: &Output, server_dir: &str, log_path: &str) -> Result<StartOutcome> {
    match out.exit_code {
        0 if out.stdout.contains(MARK_ALREADY_RUNNING) => Ok(StartOutcome::AlreadyRunning),
        0 if out.stdout.contains(MARK_STARTED) => Ok(StartOutcome::Started),
        0 => Err(error::failed(format!(
            "the start script answered without a result: {}",
            out.reason()
        ))),
        EXIT_NO_TMUX => Err(no_tmux()),
        EXIT_NO_SERVER_DIR => Err(error::invalid(format!(
            "serverDir {server_dir} does not exist on the host"
        ))),
        EXIT_DIED_AT_ONCE => Err(error::failed(format!(
            "the server's session ended within 2 s of starting; check startScript and {log_path}"
        ))),
        code => Err(error::failed(format!(
            "starting the tmux session failed (exit {code}): {}",
            out.reason()
        ))),
    }
}

/// The error for a host without tmux.
pub fn no_tmux() -> orch_plugin_sdk::Error {
    error::failed("tmux is not installed on the host")
}

/// Reads `has_session`'s exit code.
pub fn running_from(out: &Output) -> Result<bool> {
    match out.exit_code {
        0 => Ok(true),
        1 => Ok(false),
        EXIT_NO_TMUX => Err(no_tmux()),
        code => Err(error::failed(format!(
            "tmux has-session failed (exit {code}): {}",
            out.reason()
        ))),
    }
}

/// The message part of a log line: what follows `[time] [thread/LEVEL] [logger]: `, or the
/// whole line when it has no prefix. None when something other than `[…]` groups comes before
/// the colon, as in a chat line (`[…]: <bob> There are…`) or `/say` output (`[Server] …`).
pub fn message_of(line: &str) -> Option<&str> {
    let line = line.trim_end_matches(['\r', '\n']);
    if !line.starts_with('[') {
        return Some(line.trim());
    }
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(' ');
        if let Some(message) = rest.strip_prefix(':') {
            return Some(message.trim());
        }
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        rest = &inner[end + 1..];
    }
}

/// Who is online, from the server's answer to `list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayerList {
    /// Players online.
    pub online: u32,
    /// Player slots.
    pub max: u32,
    /// Names of the players online (may be fewer than `online`: vanished players).
    pub names: Vec<String>,
}

fn names_from(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}

/// `N of a max of M` (1.13+, also without the second `of`) or `N/M` (1.12 and older).
fn counts(text: &str) -> Option<(u32, u32)> {
    let (n, m) = match text.split_once('/') {
        Some(pair) => pair,
        None => {
            let (n, m) = text.split_once(" of a max ")?;
            (n, m.strip_prefix("of ").unwrap_or(m))
        }
    };
    Some((n.trim().parse().ok()?, m.trim().parse().ok()?))
}

/// Parses one `list` answer. `next` is the message of the following log line, which holds the
/// names in the 1.12 form (`There are 1/20 players online:` then `Steve`).
pub fn parse_list_message(message: &str, next: Option<&str>) -> Option<PlayerList> {
    let rest = message.strip_prefix("There are ")?;
    let (count_text, tail) = rest.split_once(" players online")?;
    let (online, max) = counts(count_text)?;
    let tail = tail.trim_start();
    if !(tail.is_empty() || tail.starts_with(':') || tail.starts_with('.')) {
        return None;
    }
    let inline = tail.trim_start_matches([':', '.']).trim();
    let names = if !inline.is_empty() {
        names_from(inline)
    } else if count_text.contains('/') && online > 0 {
        next.map(names_from).unwrap_or_default()
    } else {
        Vec::new()
    };
    Some(PlayerList { online, max, names })
}

/// The last `list` answer in a stretch of log.
pub fn parse_player_list(log: &str) -> Option<PlayerList> {
    let lines: Vec<&str> = log.lines().collect();
    let mut found = None;
    for (i, line) in lines.iter().enumerate() {
        let Some(message) = message_of(line) else {
            continue;
        };
        let next = lines.get(i + 1).and_then(|l| message_of(l));
        if let Some(list) = parse_list_message(message, next) {
            found = Some(list);
        }
    }
    found
}

/// How the server answered `op` / `deop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpReply {
    /// The player's operator status changed.
    Changed,
    /// It already was as asked.
    Unchanged,
    /// The server does not know the player.
    UnknownPlayer,
    /// No answer was found in the log in time.
    NoReply,
}

impl OpReply {
    /// The word used in method output.
    pub fn as_str(self) -> &'static str {
        match self {
            OpReply::Changed => "changed",
            OpReply::Unchanged => "unchanged",
            OpReply::UnknownPlayer => "unknownPlayer",
            OpReply::NoReply => "noReply",
        }
    }
}

/// The last answer to `op`/`deop` about `player` in a stretch of log.
pub fn parse_op_reply(log: &str, player: &str) -> OpReply {
    let mut reply = OpReply::NoReply;
    for message in log.lines().filter_map(message_of) {
        let about_player = message.contains(player);
        reply = if message.starts_with("Nothing changed") {
            OpReply::Unchanged
        } else if message.starts_with("That player does not exist")
            || (message.starts_with("Could not ") && about_player)
        {
            OpReply::UnknownPlayer
        } else if about_player
            && (message.starts_with("Made ")
                || message.starts_with("Opped ")
                || message.starts_with("De-opped "))
        {
            OpReply::Changed
        } else {
            continue;
        };
    }
    reply
}

#[cfg(test)]
mod tests;
