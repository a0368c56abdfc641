//! Game servers discovered from the repository's definitions: every model of type
//! `minecraft/server` or `terraria/server` whose `serverName` global argument names its VM.

use crate::repo::Repo;
use serde_json::Value;

/// Which game a server runs (from its model's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Game {
    /// `minecraft/server`: the generic `<action>-minecraft` workflows.
    Minecraft,
    /// `terraria/server`: the per-server `<action>-<serverName>` workflows.
    Terraria,
}

impl Game {
    /// The actions the type supports.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Game::Minecraft => &["start", "stop", "reboot", "status", "op", "deop"],
            Game::Terraria => &["start", "stop", "reboot", "update", "status"],
        }
    }

    /// The game's name as said in chat.
    pub fn label(self) -> &'static str {
        match self {
            Game::Minecraft => "Minecraft",
            Game::Terraria => "Terraria",
        }
    }
}

/// One discovered game server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameServer {
    /// `serverName`: the VM's name in the fleet, and what chat calls it.
    pub name: String,
    /// The model defining it.
    pub model: String,
    /// Its game.
    pub game: Game,
}

impl GameServer {
    /// True when the server's type supports `action`.
    pub fn supports(&self, action: &str) -> bool {
        self.game.actions().contains(&action)
    }
}

/// The game servers of `repo`, by name. A definition whose `serverName` is missing or an
/// expression is skipped (it cannot name one VM).
pub fn servers(repo: &Repo) -> Vec<GameServer> {
    let mut out: Vec<GameServer> = repo
        .models
        .values()
        .filter_map(|def| {
            let game = match def.type_name.as_str() {
                "minecraft/server" => Game::Minecraft,
                "terraria/server" => Game::Terraria,
                _ => return None,
            };
            let name = def
                .global_arguments
                .get("serverName")
                .and_then(Value::as_str)?;
            if name.contains("${{") || name.trim().is_empty() {
                return None;
            }
            Some(GameServer {
                name: name.trim().to_string(),
                model: def.name.clone(),
                game,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}
