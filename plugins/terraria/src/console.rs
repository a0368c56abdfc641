//! The Terraria console inside a Docker container as shell commands, and its answer to `playing`
//! as data. Every command goes through `docker exec <container> tmux …`; every interpolated
//! value is quoted.

use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{Result, error};

/// Exit code the scripts use when the docker CLI is missing on the host.
pub const EXIT_NO_DOCKER: i32 = 7;
/// Exit code `docker exec` gives when tmux is missing in the container.
pub const EXIT_NO_TMUX: i32 = 127;

/// Marker printed when the container does not run (or does not exist).
pub const MARK_CONTAINER_DOWN: &str = "orch:container-down";
/// Marker printed when the container runs but the tmux session does not.
pub const MARK_NOT_RUNNING: &str = "orch:not-running";
/// Marker printed after a console line was sent.
pub const MARK_SENT: &str = "orch:sent";

/// How many one-second waits a query makes for the server's answer.
pub const REPLY_WAITS: u32 = 10;
/// How many lines of pane history a query reads back.
pub const REPLY_LINES: u32 = 200;

/// Checks a tmux session name: letters, digits, `_` and `-` (tmux renames `.`, so it is refused).
pub fn check_session(name: &str) -> Result<&str> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.is_empty() || !ok_chars || name.starts_with('-') || name.len() > 64 {
        return Err(error::invalid(format!(
            "tmuxSession {name:?} must be 1–64 letters, digits, `_` and `-` (not starting with `-`)"
        )));
    }
    Ok(name)
}

/// Checks a container name or id as Docker allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_container(name: &str) -> Result<&str> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128;
    if ok {
        Ok(name)
    } else {
        Err(error::invalid(format!(
            "container {name:?} is not a Docker container name (letters, digits, `_`, `.`, `-`), \
             e.g. calamity-terraria-1"
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
    if text.len() > 500 {
        return Err(error::invalid("the console text is longer than 500 bytes"));
    }
    Ok(text)
}

/// Where the console lives: the docker CLI, the container and the tmux session in it.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    /// The docker CLI on the host.
    pub docker: &'a str,
    /// The container the server runs in.
    pub container: &'a str,
    /// The tmux session inside the container.
    pub session: &'a str,
}

impl Place<'_> {
    /// Shell lines that define `d`, `c`, `t`, the helper `tx` (tmux in the container), and
    /// leave early with a marker when the container or the session is not running.
    fn prelude(&self) -> String {
        [
            format!("d={}", shell_quote(self.docker)),
            format!("c={}", shell_quote(self.container)),
            // `=` turns off tmux's prefix matching, so `terraria` never finds `terraria2`.
            format!("s={}", shell_quote(&format!("={}", self.session))),
            format!("t={}", shell_quote(&format!("={}:", self.session))),
            format!(
                "command -v \"$d\" >/dev/null 2>&1 || {{ echo \"docker CLI $d not found\" >&2; exit {EXIT_NO_DOCKER}; }}"
            ),
            "tx() { \"$d\" exec \"$c\" tmux \"$@\"; }".to_string(),
            format!(
                "\"$d\" exec \"$c\" true >/dev/null 2>&1 || {{ echo {MARK_CONTAINER_DOWN}; exit 0; }}"
            ),
            "tx has-session -t \"$s\" 2>/dev/null; rc=$?".to_string(),
            format!("[ \"$rc\" -eq 1 ] && {{ echo {MARK_NOT_RUNNING}; exit 0; }}"),
            "[ \"$rc\" -eq 0 ] || exit \"$rc\"".to_string(),
        ]
        .join("\n")
    }

    /// Types `text` and presses Enter (`-l`: never read as key names such as `C-c`).
    fn send_line(text: &str) -> String {
        format!(
            "tx send-keys -t \"$t\" -l {} && tx send-keys -t \"$t\" Enter || exit 1",
            shell_quote(text)
        )
    }

    /// Sends one console line; prints [`MARK_SENT`] or a not-running marker.
    pub fn console_script(&self, text: &str) -> String {
        format!(
            "{}\n{}\necho {MARK_SENT}",
            self.prelude(),
            Self::send_line(text)
        )
    }

    /// Sends `playing` and prints the pane once an answer follows the echoed command, or after
    /// [`REPLY_WAITS`] seconds.
    pub fn playing_script(&self) -> String {
        // The answer ends with vanilla's count line, starts with TShock's header, or is
        // followed by the vanilla prompt `:` (then it is read, and found wanting, at once).
        let answered = "awk '/^(:[[:space:]]*)?playing[[:space:]]*$/ {seen=1; ok=0; n=0; next} \
             seen && (/connected\\.[[:space:]]*$/ || /Online Players \\(/) {ok=1} \
             seen && n > 0 && /^:[[:space:]]*$/ {ok=1} \
             seen && NF > 0 {n++} \
             END {exit ok ? 0 : 1}'";
        [
            self.prelude(),
            format!("cap() {{ tx capture-pane -p -J -t \"$t\" -S -{REPLY_LINES}; }}"),
            Self::send_line("playing"),
            "i=0".to_string(),
            format!("until cap | {answered}; do"),
            format!("  i=$((i + 1)); [ \"$i\" -gt {REPLY_WAITS} ] && break; sleep 1"),
            "done".to_string(),
            "cap".to_string(),
        ]
        .join("\n")
    }
}

/// What a script found before doing its work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reached {
    /// The container does not run.
    ContainerDown,
    /// The container runs, the tmux session does not.
    NotRunning,
    /// The script ran; its standard output.
    Console(String),
}

/// Reads a script's markers.
pub fn reached(stdout: String) -> Reached {
    match stdout.trim() {
        MARK_CONTAINER_DOWN => Reached::ContainerDown,
        MARK_NOT_RUNNING => Reached::NotRunning,
        _ => Reached::Console(stdout),
    }
}

/// Who is online, from the server's answer to `playing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayerList {
    /// Players online.
    pub online: u32,
    /// Player slots, when the server says (TShock does, vanilla does not).
    pub max: Option<u32>,
    /// Names of the players online.
    pub names: Vec<String>,
}

/// A pane line without the vanilla console prompt `: ` in front.
fn text_of(line: &str) -> &str {
    let line = line.trim();
    line.strip_prefix(':').map(str::trim_start).unwrap_or(line)
}

/// Vanilla's count line: `No players connected.`, `1 player connected.`, `N players connected.`.
fn vanilla_count(text: &str) -> Option<u32> {
    if text == "No players connected." {
        return Some(0);
    }
    let (n, rest) = text.split_once(' ')?;
    if rest == "player connected." || rest == "players connected." {
        return n.parse().ok();
    }
    None
}

/// Vanilla's player line: `name (address)`.
fn vanilla_player(text: &str) -> Option<&str> {
    let (name, address) = text.strip_suffix(')')?.rsplit_once(" (")?;
    (!name.trim().is_empty() && !address.contains(' ')).then(|| name.trim())
}

/// TShock's header: `Online Players (N/M)`, also with `Total ` in front and `:` after.
fn tshock_header(text: &str) -> Option<(u32, u32)> {
    let text = text.strip_prefix("Total ").unwrap_or(text);
    let inner = text
        .strip_prefix("Online Players (")?
        .trim_end_matches(':')
        .strip_suffix(')')?;
    let (n, m) = inner.split_once('/')?;
    Some((n.trim().parse().ok()?, m.trim().parse().ok()?))
}

/// How the pane answered `playing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A player list.
    Players(PlayerList),
    /// Nothing after the echoed command (the server did not read it in time).
    NoReply,
    /// Lines that are not an answer to `playing`; the first few, for the error.
    Unreadable(String),
}

/// Parses the last answer to `playing` in a pane capture.
pub fn parse_playing(pane: &str) -> Answer {
    let lines: Vec<&str> = pane.lines().collect();
    let Some(echo) = lines.iter().rposition(|l| text_of(l) == "playing") else {
        return Answer::NoReply;
    };
    let after: Vec<&str> = lines[echo + 1..]
        .iter()
        .map(|l| text_of(l))
        .filter(|t| !t.is_empty())
        .collect();
    if after.is_empty() {
        return Answer::NoReply;
    }
    let mut names = Vec::new();
    for (i, text) in after.iter().enumerate() {
        if let Some(online) = vanilla_count(text) {
            return Answer::Players(PlayerList {
                online,
                max: None,
                names,
            });
        }
        if let Some((online, max)) = tshock_header(text) {
            let names = after[i + 1..]
                .iter()
                .take_while(|t| !t.starts_with("Type ") && tshock_header(t).is_none())
                .flat_map(|t| t.split(','))
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
            return Answer::Players(PlayerList {
                online,
                max: Some(max),
                names,
            });
        }
        match vanilla_player(text) {
            Some(name) => names.push(name.to_string()),
            None => break,
        }
    }
    let shown: Vec<&str> = after.iter().take(3).copied().collect();
    Answer::Unreadable(orch_plugin_sdk::remote::bounded(&shown.join(" | "), 300))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn players(online: u32, max: Option<u32>, names: &[&str]) -> Answer {
        Answer::Players(PlayerList {
            online,
            max,
            names: names.iter().map(|n| n.to_string()).collect(),
        })
    }

    #[test]
    fn vanilla_answers_with_zero_one_and_two_players() {
        assert_eq!(
            parse_playing(": playing\nNo players connected.\n: "),
            players(0, None, &[])
        );
        assert_eq!(
            parse_playing(": playing\nalice (203.0.113.5:50412)\n1 player connected.\n: "),
            players(1, None, &["alice"])
        );
        assert_eq!(
            parse_playing(
                ": playing\nalice (203.0.113.5:50412)\nDark Knight (203.0.113.9:61000)\n2 players connected.\n: "
            ),
            players(2, None, &["alice", "Dark Knight"])
        );
    }

    #[test]
    fn only_the_last_answer_counts() {
        let pane = ": playing\nalice (1.2.3.4:5)\n1 player connected.\n: playing\nNo players connected.\n: ";
        assert_eq!(parse_playing(pane), players(0, None, &[]));
    }

    #[test]
    fn a_chat_line_saying_playing_is_not_the_command() {
        let pane = ": playing\nalice (1.2.3.4:5)\n1 player connected.\n<alice> playing\n: ";
        assert_eq!(parse_playing(pane), players(1, None, &["alice"]));
    }

    #[test]
    fn tshock_answers_with_slots_and_names() {
        assert_eq!(
            parse_playing("playing\nOnline Players (2/8)\nalice, bob\n"),
            players(2, Some(8), &["alice", "bob"])
        );
        assert_eq!(
            parse_playing("playing\nTotal Online Players (0/16):\n"),
            players(0, Some(16), &[])
        );
    }

    #[test]
    fn silence_is_no_reply_and_garbage_is_unreadable() {
        assert_eq!(parse_playing(": playing\n: \n"), Answer::NoReply);
        assert_eq!(parse_playing("nothing typed here"), Answer::NoReply);
        assert_eq!(
            parse_playing(": playing\nSegmentation fault\nsomething else\n"),
            Answer::Unreadable("Segmentation fault | something else".into())
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_session("calamity").is_ok());
        assert!(check_session("a.b").is_err());
        assert!(check_container("calamity-terraria-1").is_ok());
        assert!(check_container("-rm").is_err());
        assert!(check_container("a b").is_err());
        assert!(check_console_text("say hi\nexit").is_err());
    }

    #[test]
    fn scripts_quote_values_and_use_docker_exec() {
        let place = Place {
            docker: "/usr/bin/docker",
            container: "calamity-terraria-1",
            session: "terraria",
        };
        let script = place.console_script("say it's late");
        assert!(script.contains("c='calamity-terraria-1'"), "{script}");
        assert!(script.contains("\"$d\" exec \"$c\" tmux"), "{script}");
        assert!(script.contains(r#"-l 'say it'\''s late'"#), "{script}");
        assert!(place.playing_script().contains("-l 'playing'"));
    }
}
