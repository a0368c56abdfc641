//! `orch chat register`: bulk-registers the chat-ops slash commands with Discord.

use super::{CliError, CmdResult, Ctx};
use crate::chat::{commands, discord_api};
use crate::method::StoreDataSource;

/// `orch chat` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Register every slash command with the Discord application in orch.yaml `chat.discord`
    /// (a bulk overwrite: `PUT /applications/{id}/commands`, authorised by the bot token).
    Register,
}

/// Runs an `orch chat` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::Register => register(ctx).await,
    }
}

async fn register(ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let Some(cfg) = repo.config.chat.discord.clone() else {
        return Err(CliError::usage(format!(
            "{}: no `chat.discord` section; add applicationId, publicKey, botToken and role (see README, Chat-ops)",
            repo.root.join("orch.yaml").display()
        )));
    };
    let vault = ctx.vault(&repo)?;
    let data = StoreDataSource::new(ctx.store(&repo), vault, &repo);
    let token = crate::chat::resolve(
        &data,
        repo.env_values(),
        &cfg.bot_token,
        "chat.discord.botToken",
    )
    .map_err(CliError::failed)?;
    let body = commands::registration();
    discord_api::register(&cfg.api_base, &cfg.application_id, &token, &body)
        .await
        .map_err(CliError::failed)?;
    let names: Vec<&str> = commands::COMMANDS.iter().map(|c| c.name).collect();
    let value = serde_json::json!({
        "applicationId": cfg.application_id,
        "registered": names,
    });
    ctx.printer.result(&value, || {
        format!(
            "registered {} commands with application {}: {}",
            names.len(),
            cfg.application_id,
            names.join(", ")
        )
    });
    Ok(0)
}
