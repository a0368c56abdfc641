//! The few Discord REST calls the bot makes: edit an interaction's original response, and
//! bulk-register the slash commands. Errors never carry a token (reqwest's URL is dropped: the
//! interaction token is part of the webhook path).

use serde_json::{Value, json};
use std::time::Duration;

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent(concat!(
            "DiscordBot (https://github.com/orch, ",
            env!("CARGO_PKG_VERSION"),
            ")"
        ))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {}", e.without_url()))
}

async fn check(
    response: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Result<(), String> {
    let response = response.map_err(|e| format!("{what}: {}", e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(format!(
        "{what}: Discord answered {status}: {}",
        crate::excerpt::excerpt(body.trim())
    ))
}

/// `PATCH {api_base}/webhooks/{application_id}/{token}/messages/@original` with `content`
/// (mentions are not pinged).
pub async fn edit_original(
    api_base: &str,
    application_id: &str,
    interaction_token: &str,
    content: &str,
) -> Result<(), String> {
    let url = format!(
        "{}/webhooks/{application_id}/{interaction_token}/messages/@original",
        api_base.trim_end_matches('/')
    );
    let body = json!({"content": content, "allowed_mentions": {"parse": []}});
    check(
        client()?.patch(url).json(&body).send().await,
        "editing the interaction response",
    )
    .await
}

/// `PUT {api_base}/applications/{application_id}/commands` with `commands` (a bulk overwrite),
/// authorised as the bot.
pub async fn register(
    api_base: &str,
    application_id: &str,
    bot_token: &str,
    commands: &Value,
) -> Result<(), String> {
    let url = format!(
        "{}/applications/{application_id}/commands",
        api_base.trim_end_matches('/')
    );
    check(
        client()?
            .put(url)
            .header(reqwest::header::AUTHORIZATION, format!("Bot {bot_token}"))
            .json(commands)
            .send()
            .await,
        "registering the commands",
    )
    .await
}

/// `GET {api_base}/guilds/{guild_id}/roles` as the bot: every role's (id, name).
pub async fn guild_roles(
    api_base: &str,
    guild_id: &str,
    bot_token: &str,
) -> Result<Vec<(String, String)>, String> {
    let url = format!("{}/guilds/{guild_id}/roles", api_base.trim_end_matches('/'));
    let what = "reading the server's roles";
    let response = client()?
        .get(url)
        .header(reqwest::header::AUTHORIZATION, format!("Bot {bot_token}"))
        .send()
        .await
        .map_err(|e| format!("{what}: {}", e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{what}: Discord answered {status}"));
    }
    let roles: Value = response
        .json()
        .await
        .map_err(|e| format!("{what}: {}", e.without_url()))?;
    Ok(roles
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some((
                r["id"].as_str()?.to_string(),
                r["name"].as_str()?.to_string(),
            ))
        })
        .collect())
}
