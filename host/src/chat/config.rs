//! The `chat:` section of `orch.yaml`: which chat platforms `orch serve` answers and who may
//! do what there.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// `chat:` in orch.yaml.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// The Discord application answered at `POST /chat/discord/interactions`.
    #[serde(default)]
    pub discord: Option<DiscordConfig>,
}

/// The Discord REST API base used when `apiBase` is not set.
pub const DEFAULT_API_BASE: &str = "https://discord.com/api/v10";

/// `chat.discord` in orch.yaml.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscordConfig {
    /// The application's id (Discord's "Application ID").
    #[serde(deserialize_with = "id")]
    pub application_id: String,
    /// The application's Ed25519 public key, hex (or a `${{ … }}` expression giving it).
    pub public_key: String,
    /// The bot token, normally `${{ vault.get(…) }}`: a secret, never shown.
    pub bot_token: String,
    /// The Discord REST API base (tests point it at a fake API).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Channel ids commands are taken in; empty: every channel.
    #[serde(default, deserialize_with = "ids")]
    pub channels: Vec<String>,
    /// The role (id, or name looked up in the guild with the bot token) a member needs for any
    /// command but `list` and `help`.
    #[serde(deserialize_with = "id")]
    pub role: String,
    /// Per-command roles (id or name) replacing `role` for that command (e.g. `op: admin`).
    #[serde(default, deserialize_with = "id_map")]
    pub command_roles: BTreeMap<String, String>,
    /// Passed as `warnSeconds` to the stop, reboot and update workflows that take it.
    #[serde(default)]
    pub warn_seconds: Option<u64>,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

/// A Discord id (a snowflake): YAML may read it as a number or a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn text(self) -> String {
        match self {
            Id::Text(s) => s,
            Id::Number(n) => n.to_string(),
        }
    }
}

fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Id::deserialize(d)?.text())
}

fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<Id>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(Id::text)
        .collect())
}

fn id_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, Id>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.text()))
        .collect())
}

/// True for a Discord id (a snowflake): digits only.
pub fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

impl ChatConfig {
    /// What is wrong with the section, as (field under `chat`, message) pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let Some(d) = &self.discord else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bad = |field: &str, message: String| {
            out.push((format!("discord.{field}"), message));
        };
        if !is_snowflake(&d.application_id) {
            bad(
                "applicationId",
                format!(
                    "`{}` is not a Discord id; copy the Application ID from the Developer Portal (digits only)",
                    d.application_id
                ),
            );
        }
        let key = d.public_key.trim();
        if !key.contains("${{") && (key.len() != 64 || hex::decode(key).is_err()) {
            bad(
                "publicKey",
                "must be the application's public key: 64 hex digits (Developer Portal, General Information)".to_string(),
            );
        }
        if !d.bot_token.contains("${{") {
            bad(
                "botToken",
                "the bot token is a secret: keep it in the vault and write `${{ vault.get(\"discord\", \"bot-token\") }}`".to_string(),
            );
        }
        if !(d.api_base.starts_with("https://") || d.api_base.starts_with("http://")) {
            bad(
                "apiBase",
                format!(
                    "`{}` is not an http(s) URL; leave it out for {DEFAULT_API_BASE}",
                    d.api_base
                ),
            );
        }
        for (i, c) in d.channels.iter().enumerate() {
            if !is_snowflake(c) {
                bad(
                    &format!("channels[{i}]"),
                    format!(
                        "`{c}` is not a channel id (enable Developer Mode, right-click the channel, Copy Channel ID)"
                    ),
                );
            }
        }
        if d.role.trim().is_empty() {
            bad(
                "role",
                "empty; give the role members need: its id (Server Settings, Roles, right-click, Copy Role ID) or its name".to_string(),
            );
        }
        for (command, role) in &d.command_roles {
            if !super::commands::COMMANDS.iter().any(|c| c.name == command) {
                bad(
                    &format!("commandRoles.{command}"),
                    format!(
                        "no command `{command}`; the commands are {}",
                        super::commands::COMMANDS
                            .iter()
                            .map(|c| c.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            } else if role.trim().is_empty() {
                bad(
                    &format!("commandRoles.{command}"),
                    "empty; give a role id or name".to_string(),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discord(yaml: &str) -> ChatConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const GOOD: &str = "discord:\n  applicationId: 123456789012345678\n  publicKey: \"0000000000000000000000000000000000000000000000000000000000000000\"\n  botToken: ${{ vault.get('discord', 'bot-token') }}\n  channels: [42, \"43\"]\n  role: 7\n  commandRoles: { op: 8 }\n";

    #[test]
    fn ids_may_be_numbers_or_strings() {
        let c = discord(GOOD);
        let d = c.discord.as_ref().unwrap();
        assert_eq!(d.application_id, "123456789012345678");
        assert_eq!(d.channels, ["42", "43"]);
        assert_eq!(d.command_roles["op"], "8");
        assert_eq!(d.api_base, DEFAULT_API_BASE);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn a_bot_token_in_clear_and_an_unknown_command_are_problems() {
        let c = discord(
            &GOOD
                .replace("${{ vault.get('discord', 'bot-token') }}", "abc")
                .replace("op: 8", "opp: 8"),
        );
        let fields: Vec<String> = c.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["discord.botToken", "discord.commandRoles.opp"]);
    }

    #[test]
    fn a_short_public_key_is_a_problem() {
        let c = discord(&GOOD.replace(
            "\"0000000000000000000000000000000000000000000000000000000000000000\"",
            "abcd",
        ));
        assert_eq!(c.problems()[0].0, "discord.publicKey");
    }

    #[test]
    fn problems_are_reported_at_their_line_in_orch_yaml() {
        let text = format!(
            "concurrency: 2\nchat:\n{}",
            GOOD.replace("role: 7", "role: \"\"")
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
        );
        let errs =
            crate::repo::RepoConfig::parse(&text, std::path::Path::new("orch.yaml")).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field.as_deref(), Some("chat.discord.role"));
        assert_eq!(errs[0].line, Some(8), "{errs:?}");
        assert!(errs[0].message.contains("Copy Role ID"), "{errs:?}");
        let named = GOOD
            .replace("role: 7", "role: homie")
            .replace("op: 8", "op: admin");
        assert!(discord(&named).problems().is_empty(), "roles may be names");
        let unknown = crate::repo::RepoConfig::parse(
            "chat:\n  discord:\n    applicatonId: 1\n",
            std::path::Path::new("orch.yaml"),
        )
        .unwrap_err();
        assert!(
            unknown[0].to_string().contains("applicatonId"),
            "{unknown:?}"
        );
    }
}
