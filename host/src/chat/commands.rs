//! The slash commands, reading an interaction, and who may run what.

use super::config::DiscordConfig;
use super::discover::GameServer;
use serde_json::{Value, json};

/// One slash command.
#[derive(Debug)]
pub struct CommandSpec {
    /// Its name (`/start`).
    pub name: &'static str,
    /// What Discord shows under it.
    pub description: &'static str,
    /// Takes a `server` option (autocompleted).
    pub server: bool,
    /// Takes a `player` option.
    pub player: bool,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "start",
        description: "Start a game server",
        server: true,
        player: false,
    },
    CommandSpec {
        name: "stop",
        description: "Stop a game server (players are warned)",
        server: true,
        player: false,
    },
    CommandSpec {
        name: "reboot",
        description: "Restart a game server",
        server: true,
        player: false,
    },
    CommandSpec {
        name: "update",
        description: "Update a game server",
        server: true,
        player: false,
    },
    CommandSpec {
        name: "status",
        description: "Is a game server up, and who is playing",
        server: true,
        player: false,
    },
    CommandSpec {
        name: "op",
        description: "Make a player an operator",
        server: true,
        player: true,
    },
    CommandSpec {
        name: "deop",
        description: "Take operator status from a player",
        server: true,
        player: true,
    },
    CommandSpec {
        name: "list",
        description: "List the game servers",
        server: false,
        player: false,
    },
    CommandSpec {
        name: "help",
        description: "What the bot can do",
        server: false,
        player: false,
    },
];

/// Discord's option type for a string.
const STRING_OPTION: u64 = 3;
/// Discord's option type for a chat-input (slash) command.
const CHAT_INPUT: u64 = 1;

/// The body of `PUT /applications/{id}/commands`: every command.
pub fn registration() -> Value {
    Value::Array(
        COMMANDS
            .iter()
            .map(|c| {
                let mut options = Vec::new();
                if c.server {
                    options.push(json!({"type": STRING_OPTION, "name": "server",
                        "description": "The game server", "required": true, "autocomplete": true}));
                }
                if c.player {
                    options.push(json!({"type": STRING_OPTION, "name": "player",
                        "description": "The player's in-game name", "required": true}));
                }
                json!({"name": c.name, "type": CHAT_INPUT, "description": c.description, "options": options})
            })
            .collect(),
    )
}

/// Interaction types Discord sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: the endpoint check.
    Ping,
    /// 2: a slash command.
    Command,
    /// 4: an option is being typed.
    Autocomplete,
    /// Anything else (buttons, modals): not used.
    Other(u64),
}

/// What the bot reads from one interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// Its type.
    pub kind: Kind,
    /// The interaction's id.
    pub id: String,
    /// The interaction token (for the follow-up edit; a short-lived credential, never logged).
    pub token: String,
    /// The channel it came from.
    pub channel_id: String,
    /// The guild (server) it came from; empty in a DM.
    pub guild_id: String,
    /// The member's role ids (none in a DM).
    pub roles: Vec<String>,
    /// Who sent it (for the log).
    pub user: String,
    /// The command's name.
    pub command: String,
    /// The `server` option.
    pub server: Option<String>,
    /// The `player` option.
    pub player: Option<String>,
    /// The option being typed (autocomplete) and its text so far.
    pub focused: Option<(String, String)>,
}

/// Reads an interaction's JSON.
pub fn parse(body: &[u8]) -> Result<Interaction, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let kind = match v["type"].as_u64() {
        Some(1) => Kind::Ping,
        Some(2) => Kind::Command,
        Some(4) => Kind::Autocomplete,
        Some(n) => Kind::Other(n),
        None => return Err("the interaction has no numeric `type`".to_string()),
    };
    let member = &v["member"];
    let user = if member.is_object() {
        &member["user"]
    } else {
        &v["user"]
    };
    let mut out = Interaction {
        kind,
        id: s(&v["id"]),
        token: s(&v["token"]),
        channel_id: s(&v["channel_id"]),
        guild_id: s(&v["guild_id"]),
        roles: member["roles"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        user: s(&user["username"]),
        command: s(&v["data"]["name"]),
        server: None,
        player: None,
        focused: None,
    };
    for option in v["data"]["options"].as_array().into_iter().flatten() {
        let name = s(&option["name"]);
        let value = match &option["value"] {
            Value::String(t) => t.trim().to_string(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if option["focused"] == true {
            out.focused = Some((name.clone(), value.clone()));
        }
        match name.as_str() {
            "server" => out.server = Some(value),
            "player" => out.player = Some(value),
            _ => {}
        }
    }
    Ok(out)
}

/// Whether the member may run `command` from `channel`: the polite refusal otherwise.
pub fn permit(
    cfg: &DiscordConfig,
    command: &str,
    channel: &str,
    roles: &[String],
) -> Result<(), String> {
    if !cfg.channels.is_empty() && !cfg.channels.iter().any(|c| c == channel) {
        let places: Vec<String> = cfg.channels.iter().map(|c| format!("<#{c}>")).collect();
        return Err(format!(
            "Sorry, I only take commands in {}.",
            places.join(", ")
        ));
    }
    if command == "help" || command == "list" {
        return Ok(());
    }
    let needed = cfg.command_roles.get(command).unwrap_or(&cfg.role);
    if roles.iter().any(|r| r == needed) {
        Ok(())
    } else {
        Err(format!("Sorry, `/{command}` needs the <@&{needed}> role."))
    }
}

/// The autocomplete choices for `server`: the servers supporting `command` whose name
/// contains what was typed (at most 25, Discord's limit).
pub fn server_choices(servers: &[GameServer], command: &str, typed: &str) -> Value {
    let typed = typed.to_lowercase();
    let choices: Vec<Value> = servers
        .iter()
        .filter(|s| s.supports(command) || !COMMANDS.iter().any(|c| c.name == command))
        .filter(|s| s.name.to_lowercase().contains(&typed))
        .take(25)
        .map(|s| json!({"name": format!("{} ({})", s.name, s.game.label()), "value": s.name}))
        .collect();
    Value::Array(choices)
}

/// The `/list` answer.
pub fn list_text(servers: &[GameServer]) -> String {
    if servers.is_empty() {
        return "No game servers are defined (models of type minecraft/server or terraria/server with a serverName).".to_string();
    }
    let lines: Vec<String> = servers
        .iter()
        .map(|s| {
            format!(
                "• **{}** ({}): {}",
                s.name,
                s.game.label(),
                s.game.actions().join(", ")
            )
        })
        .collect();
    format!("Game servers:\n{}", lines.join("\n"))
}

/// The `/help` answer.
pub fn help_text() -> String {
    let lines: Vec<String> = COMMANDS
        .iter()
        .map(|c| {
            let mut usage = format!("/{}", c.name);
            if c.server {
                usage.push_str(" server");
            }
            if c.player {
                usage.push_str(" player");
            }
            format!("`{usage}`: {}", c.description)
        })
        .collect();
    lines.join("\n")
}

/// A player name as Minecraft allows it (3–16 of letters, digits and `_`).
pub fn valid_player(name: &str) -> bool {
    (3..=16).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::discover::Game;
    use std::collections::BTreeMap;

    fn cfg() -> DiscordConfig {
        DiscordConfig {
            application_id: "1".into(),
            public_key: String::new(),
            bot_token: String::new(),
            api_base: String::new(),
            channels: vec!["10".into()],
            role: "20".into(),
            command_roles: BTreeMap::from([("op".to_string(), "30".to_string())]),
            warn_seconds: None,
        }
    }

    #[test]
    fn a_command_with_options_is_read() {
        let i = parse(br#"{"type":2,"token":"t","channel_id":"10","member":{"user":{"username":"amy"},"roles":["20"]},
            "data":{"name":"op","options":[{"name":"server","type":3,"value":" allthemons "},{"name":"player","type":3,"value":"Steve"}]}}"#).unwrap();
        assert_eq!(i.kind, Kind::Command);
        assert_eq!(i.command, "op");
        assert_eq!(i.server.as_deref(), Some("allthemons"));
        assert_eq!(i.player.as_deref(), Some("Steve"));
        assert_eq!(i.roles, ["20"]);
        assert_eq!(i.user, "amy");
        let a = parse(br#"{"type":4,"data":{"name":"start","options":[{"name":"server","type":3,"value":"cal","focused":true}]}}"#).unwrap();
        assert_eq!(a.kind, Kind::Autocomplete);
        assert_eq!(a.focused, Some(("server".into(), "cal".into())));
        assert!(parse(b"{}").is_err());
        assert!(parse(b"nope").is_err());
    }

    #[test]
    fn the_role_and_channel_are_checked_with_per_command_overrides() {
        let c = cfg();
        let member = vec!["20".to_string()];
        let admin = vec!["20".to_string(), "30".to_string()];
        assert!(permit(&c, "start", "10", &member).is_ok());
        assert!(
            permit(&c, "start", "11", &member)
                .unwrap_err()
                .contains("<#10>")
        );
        assert!(
            permit(&c, "start", "10", &[])
                .unwrap_err()
                .contains("<@&20>")
        );
        assert!(
            permit(&c, "op", "10", &member)
                .unwrap_err()
                .contains("<@&30>")
        );
        assert!(permit(&c, "op", "10", &admin).is_ok());
        assert!(permit(&c, "list", "10", &[]).is_ok(), "list needs no role");
        assert!(permit(&c, "help", "11", &[]).is_err(), "but the channel");
        let anywhere = DiscordConfig {
            channels: vec![],
            ..cfg()
        };
        assert!(permit(&anywhere, "start", "99", &member).is_ok());
    }

    #[test]
    fn autocomplete_offers_the_servers_that_support_the_command() {
        let servers = vec![
            GameServer {
                name: "allthemons".into(),
                model: "a".into(),
                game: Game::Minecraft,
            },
            GameServer {
                name: "calamity".into(),
                model: "c".into(),
                game: Game::Terraria,
            },
        ];
        let names = |v: Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|c| c["value"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names(server_choices(&servers, "start", "")),
            ["allthemons", "calamity"]
        );
        assert_eq!(names(server_choices(&servers, "update", "")), ["calamity"]);
        assert_eq!(names(server_choices(&servers, "op", "")), ["allthemons"]);
        assert_eq!(
            names(server_choices(&servers, "start", "CAL")),
            ["calamity"]
        );
    }

    #[test]
    fn every_command_is_registered_with_its_options() {
        let body = registration();
        let cmds = body.as_array().unwrap();
        assert_eq!(cmds.len(), COMMANDS.len());
        let op = cmds.iter().find(|c| c["name"] == "op").unwrap();
        assert_eq!(op["options"][0]["autocomplete"], true);
        assert_eq!(op["options"][1]["name"], "player");
        assert!(valid_player("Steve_1") && !valid_player("a b") && !valid_player("x"));
    }
}
