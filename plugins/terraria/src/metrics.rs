//! Where `collectMetrics` leaves the node_exporter textfile; its contents (the metric names of
//! `minecraft/server`, with a `game="terraria"` label beside `server`) and the player log line
//! are the SDK's (`orch_plugin_sdk::game`).

pub use orch_plugin_sdk::game::DEFAULT_PLAYER_LOG;

/// Where node_exporter's textfile collector reads `*.prom` files.
pub const DEFAULT_PROM_PATH: &str = "/var/lib/node_exporter/textfile_collector/game_terraria.prom";
/// The `game` label.
pub const GAME: &str = "terraria";
