//! What a game server's `collectMetrics` leaves on its host: the node_exporter textfile (the
//! `game_*` gauges) and one JSON line in the player log. Shared by every game plugin, so their
//! dashboards read the same metric names.

use crate::Result;
use crate::error;
use crate::remote::{Output, Remote};
use crate::ssh::shell_quote;
use serde::Serialize;

/// The JSON-lines log of player counts on the game host.
pub const DEFAULT_PLAYER_LOG: &str = "/var/log/game-players.log";

/// One observation of a game server, as the metrics see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample<'a> {
    /// When it was taken (RFC 3339, UTC).
    pub timestamp: &'a str,
    /// The `server` label.
    pub server: &'a str,
    /// The `game` label, for plugins that add one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub game: Option<&'a str>,
    /// Whether the server answered.
    pub online: bool,
    /// Players online.
    pub players: u32,
    /// Player slots, when the server says.
    pub max_players: Option<u32>,
    /// Names of the players online.
    pub names: &'a [String],
}

/// Escapes a Prometheus label value (`\`, `"` and newlines).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The textfile in Prometheus exposition format. `game_players_max` is left out when the
/// server does not say, because a made-up 0 would draw a false line on dashboards.
pub fn prom_text(sample: &Sample) -> String {
    let mut labels = format!("server=\"{}\"", escape_label(sample.server));
    if let Some(game) = sample.game {
        labels.push_str(&format!(",game=\"{}\"", escape_label(game)));
    }
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, value: u32| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{labels}}} {value}\n"
        ));
    };
    gauge(
        "game_players_online",
        "Players online on the game server.",
        sample.players,
    );
    if let Some(max) = sample.max_players {
        gauge("game_players_max", "Player slots on the game server.", max);
    }
    gauge(
        "game_server_up",
        "Whether the game server answered (1) or not (0).",
        u32::from(sample.online),
    );
    text
}

/// One JSON line for the player log, newline-terminated.
pub fn log_line(sample: &Sample) -> String {
    // Serializing plain strings, numbers and bools cannot fail; an empty object is a safe stand-in.
    let mut line = serde_json::to_string(sample).unwrap_or_else(|_| "{}".to_string());
    line.push('\n');
    line
}

/// The directory of a `promPath`, which must be absolute and end in `.prom`.
pub fn prom_dir(prom_path: &str) -> Result<&str> {
    prom_path
        .rsplit_once('/')
        .filter(|(dir, file)| !dir.is_empty() && file.ends_with(".prom"))
        .map(|(dir, _)| dir)
        .ok_or_else(|| {
            error::invalid(format!(
                "promPath {prom_path:?} must be an absolute path ending in .prom"
            ))
        })
}

/// Writes `sample` as the textfile at `prom_path` and appends it to `player_log` on `remote`.
/// node_exporter may read the file while it is written, so it is written beside it under a name
/// the collector ignores and renamed into place.
pub fn publish(
    remote: &impl Remote,
    prom_path: &str,
    player_log: &str,
    sample: &Sample,
) -> Result<()> {
    let dir = prom_dir(prom_path)?;
    let temporary = format!("{prom_path}.orch-tmp");
    remote.run_ok(
        &format!("mkdir -p {}", shell_quote(dir)),
        "creating the textfile directory",
    )?;
    remote.upload(&temporary, prom_text(sample).as_bytes(), 0o644)?;
    let line = log_line(sample);
    let out = remote.exec_with(
        &format!(
            "mv -f {} {} && cat >> {}",
            shell_quote(&temporary),
            shell_quote(prom_path),
            shell_quote(player_log)
        ),
        Some(line.as_bytes()),
        None,
    )?;
    let out = Output::from(out);
    if !out.success() {
        return Err(error::failed(format!(
            "writing {prom_path} and {player_log} failed (exit {}): {}",
            out.exit_code,
            out.reason()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(names: &'a [String], game: Option<&'a str>, max: Option<u32>) -> Sample<'a> {
        Sample {
            timestamp: "2026-11-21T10:00:00Z",
            server: "allthemons",
            game,
            online: true,
            players: names.len() as u32,
            max_players: max,
            names,
        }
    }

    #[test]
    fn prom_text_has_the_three_gauges_with_the_server_label() {
        let names = vec!["Alice".to_string(), "Bob".to_string()];
        assert_eq!(
            prom_text(&sample(&names, None, Some(20))),
            "# HELP game_players_online Players online on the game server.\n\
             # TYPE game_players_online gauge\n\
             game_players_online{server=\"allthemons\"} 2\n\
             # HELP game_players_max Player slots on the game server.\n\
             # TYPE game_players_max gauge\n\
             game_players_max{server=\"allthemons\"} 20\n\
             # HELP game_server_up Whether the game server answered (1) or not (0).\n\
             # TYPE game_server_up gauge\n\
             game_server_up{server=\"allthemons\"} 1\n"
        );
    }

    #[test]
    fn a_game_label_follows_the_server_label_and_no_max_means_no_gauge() {
        let text = prom_text(&sample(&[], Some("terraria"), None));
        assert!(text.contains("game_players_online{server=\"allthemons\",game=\"terraria\"} 0\n"));
        assert!(!text.contains("game_players_max"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
    }

    #[test]
    fn the_log_line_is_one_json_object_and_names_the_game_only_when_set() {
        let names = vec!["Alice".to_string()];
        let line = log_line(&sample(&names, None, Some(20)));
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "timestamp": "2026-11-21T10:00:00Z",
                "server": "allthemons",
                "online": true,
                "players": 1,
                "maxPlayers": 20,
                "names": ["Alice"],
            })
        );
        let v: serde_json::Value =
            serde_json::from_str(&log_line(&sample(&names, Some("terraria"), None))).unwrap();
        assert_eq!(v["game"], "terraria");
    }

    #[test]
    fn a_prom_path_must_be_absolute_and_end_in_prom() {
        assert_eq!(prom_dir("/var/lib/x/game.prom").unwrap(), "/var/lib/x");
        for bad in ["game.prom", "/var/lib/x/game.txt", "/game.prom"] {
            assert!(prom_dir(bad).is_err(), "{bad}");
        }
    }
}
