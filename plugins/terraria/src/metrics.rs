//! The node_exporter textfile and the player log line that `collectMetrics` writes: the metric
//! names of `minecraft/server`, with a `game="terraria"` label beside `server`.

use serde::Serialize;

/// Where node_exporter's textfile collector reads `*.prom` files.
pub const DEFAULT_PROM_PATH: &str = "/var/lib/node_exporter/textfile_collector/game_terraria.prom";
/// The JSON-lines log of player counts on the game VM.
pub const DEFAULT_PLAYER_LOG: &str = "/var/log/game-players.log";
/// The `game` label.
pub const GAME: &str = "terraria";

/// One observation of a server, as metrics see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample<'a> {
    /// When it was taken (RFC 3339, UTC).
    pub timestamp: &'a str,
    /// The `server` label.
    pub server: &'a str,
    /// The `game` label.
    pub game: &'a str,
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
    let labels = format!(
        "{{server=\"{}\",game=\"{}\"}}",
        escape_label(sample.server),
        escape_label(sample.game)
    );
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, value: u32| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {value}\n"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prom_text_has_the_gauges_with_server_and_game_labels() {
        let names = vec!["alice".to_string(), "bob".to_string()];
        let sample = Sample {
            timestamp: "2026-11-30T10:00:00Z",
            server: "calamity",
            game: GAME,
            online: true,
            players: 2,
            max_players: None,
            names: &names,
        };
        assert_eq!(
            prom_text(&sample),
            "# HELP game_players_online Players online on the game server.\n\
             # TYPE game_players_online gauge\n\
             game_players_online{server=\"calamity\",game=\"terraria\"} 2\n\
             # HELP game_server_up Whether the game server answered (1) or not (0).\n\
             # TYPE game_server_up gauge\n\
             game_server_up{server=\"calamity\",game=\"terraria\"} 1\n"
        );
        let line: serde_json::Value = serde_json::from_str(&log_line(&sample)).unwrap();
        assert_eq!(line["game"], "terraria");
        assert_eq!(line["names"], serde_json::json!(["alice", "bob"]));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
