//! Where `collectMetrics` leaves the node_exporter textfile; its contents and the player log
//! line are the SDK's (`orch_plugin_sdk::game`), shared with the other game plugins.

pub use orch_plugin_sdk::game::DEFAULT_PLAYER_LOG;

/// Where node_exporter's textfile collector reads `*.prom` files.
pub const DEFAULT_PROM_PATH: &str = "/var/lib/node_exporter/textfile_collector/game_minecraft.prom";
