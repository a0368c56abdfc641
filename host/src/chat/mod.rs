//! Chat-ops: the Discord interactions endpoint of `orch serve` (`POST
//! /chat/discord/interactions`) and `orch chat register`.
//!
//! Discord signs every interaction (Ed25519 over timestamp + body) instead of sending a
//! token, so the route is outside the bearer-token check and [`verify`] is its authentication:
//! a bad, missing or stale signature is 401 and nothing runs. A command from a member with the
//! configured role in a configured channel is answered at once with a deferred response; the
//! game server's workflow (or method, for op/deop) runs in the background through the same path
//! as `POST /api/v1/runs`, and the original message is then edited with a short summary of the
//! outcome. Game servers are discovered from the definitions ([`discover`]).

pub mod commands;
pub mod config;
pub mod discord_api;
pub mod discover;
pub mod verify;

use crate::expr::{Evaluator, Vars};
use crate::method::StoreDataSource;
use crate::serve::{ApiError, AppState};
use crate::store::{RunRecord, RunStatus};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use commands::{Interaction, Kind};
use config::DiscordConfig;
use discover::{Game, GameServer};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Largest interaction body accepted (Discord's are a few KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Discord's ephemeral message flag (only the caller sees it).
const EPHEMERAL: u64 = 64;

/// Evaluates a config value that may be a `${{ … }}` expression (the vault); the error names
/// `field` and no secret.
pub fn resolve(
    data: &dyn crate::expr::DataSource,
    env: std::collections::BTreeMap<String, String>,
    text: &str,
    field: &str,
) -> Result<String, String> {
    let evaluator = Evaluator::new();
    let scope = evaluator.scope(
        data,
        Vars {
            env,
            ..Default::default()
        },
    );
    let value = scope.resolve_str(text, field);
    let redactor = crate::vault::Redactor::default();
    for s in evaluator.secrets() {
        redactor.add(&s);
    }
    match value {
        Ok(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) => Err(format!("orch.yaml {field}: not a non-empty string")),
        Err(e) => Err(redactor.redact(&format!("orch.yaml {field}: {e}"))),
    }
}

fn data_source(state: &AppState) -> StoreDataSource {
    StoreDataSource::new(
        state.env.store.clone(),
        state.env.vault.clone(),
        &state.env.repo,
    )
}

fn message(content: impl Into<String>, ephemeral: bool) -> Response {
    let mut data = json!({"content": content.into(), "allowed_mentions": {"parse": []}});
    if ephemeral {
        data["flags"] = json!(EPHEMERAL);
    }
    Json(json!({"type": 4, "data": data})).into_response()
}

/// `POST /chat/discord/interactions`.
pub async fn interactions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(cfg) = state.env.repo.config.chat.discord.clone() else {
        return Err(ApiError::not_found(
            "chat-ops is off: orch.yaml has no `chat.discord` section (see README, Chat-ops)",
        ));
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let data = data_source(&state);
    let key = resolve(
        &data,
        state.env.repo.env_values(),
        &cfg.public_key,
        "chat.discord.publicKey",
    )
    .and_then(|k| {
        verify::public_key(&k).map_err(|e| format!("orch.yaml chat.discord.publicKey: {e}"))
    })
    .map_err(|e| {
        tracing::error!(error = %e, "discord interaction: no public key");
        ApiError::internal(e)
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(refusal) = verify::verify(
        &key,
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        tracing::warn!(reason = %refusal, "discord interaction refused");
        return Err(ApiError::unauthorized(refusal));
    }
    let interaction = commands::parse(&body).map_err(ApiError::bad_request)?;
    if !first_time(&interaction.id) {
        tracing::warn!(interaction = %interaction.id, "discord interaction replayed");
        return Err(ApiError::unauthorized(
            "this interaction was already received (replayed?)",
        ));
    }
    match interaction.kind {
        Kind::Ping => Ok(Json(json!({"type": 1})).into_response()),
        Kind::Autocomplete => {
            let servers = discover::servers(&state.env.repo);
            let typed = match &interaction.focused {
                Some((name, text)) if name == "server" => text.as_str(),
                Some(_) => {
                    return Ok(Json(json!({"type": 8, "data": {"choices": []}})).into_response());
                }
                None => "",
            };
            let choices = commands::server_choices(&servers, &interaction.command, typed);
            Ok(Json(json!({"type": 8, "data": {"choices": choices}})).into_response())
        }
        Kind::Command => match with_role_ids(&state, &cfg, &interaction).await {
            Ok(cfg) => Ok(command(&state, &cfg, interaction)),
            Err(refusal) => Ok(message(refusal, true)),
        },
        Kind::Other(n) => Err(ApiError::bad_request(format!(
            "interaction type {n} is not handled (only PING, commands and autocomplete)"
        ))),
    }
}

/// Interaction ids seen within the signature window, with when.
static SEEN: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, i64>>> =
    std::sync::LazyLock::new(Default::default);

/// False when interaction `id` came before (within twice the signature window, after which
/// its timestamp is refused anyway): a replay of a validly signed request.
fn first_time(id: &str) -> bool {
    if id.is_empty() {
        return true;
    }
    let now = chrono::Utc::now().timestamp();
    let Ok(mut seen) = SEEN.lock() else {
        return true;
    };
    seen.retain(|_, at| now - *at <= 2 * verify::MAX_SKEW_SECONDS);
    seen.insert(id.to_string(), now).is_none()
}

/// Role names looked up per (guild, name), with when: kept for [`ROLE_CACHE_SECONDS`].
static ROLE_IDS: std::sync::LazyLock<std::sync::Mutex<RoleCache>> =
    std::sync::LazyLock::new(Default::default);

/// (guild id, lower-case role name) → (role id, when it was looked up).
type RoleCache = std::collections::HashMap<(String, String), (String, std::time::Instant)>;

/// How long a role name's id is kept before it is looked up again.
const ROLE_CACHE_SECONDS: u64 = 300;

/// `cfg` with the role `i`'s command needs given as an id: a name is looked up in the guild's
/// roles with the bot token. Err: the polite refusal.
async fn with_role_ids(
    state: &AppState,
    cfg: &DiscordConfig,
    i: &Interaction,
) -> Result<DiscordConfig, String> {
    let key = if cfg.command_roles.contains_key(&i.command) {
        Some(i.command.clone())
    } else {
        None
    };
    let needed = key
        .as_ref()
        .map_or(&cfg.role, |k| &cfg.command_roles[k])
        .clone();
    let wrong_channel = !cfg.channels.is_empty() && !cfg.channels.contains(&i.channel_id);
    if config::is_snowflake(&needed)
        || matches!(i.command.as_str(), "help" | "list")
        || wrong_channel
    {
        return Ok(cfg.clone());
    }
    if i.guild_id.is_empty() {
        return Err("Sorry, I take commands only in a server channel, not in DMs.".to_string());
    }
    let cached = ROLE_IDS
        .lock()
        .ok()
        .and_then(|m| m.get(&(i.guild_id.clone(), needed.to_lowercase())).cloned())
        .filter(|(_, at)| at.elapsed().as_secs() < ROLE_CACHE_SECONDS)
        .map(|(id, _)| id);
    let id = match cached {
        Some(id) => id,
        None => {
            let data = data_source(state);
            let looked_up = async {
                let token = resolve(
                    &data,
                    state.env.repo.env_values(),
                    &cfg.bot_token,
                    "chat.discord.botToken",
                )?;
                discord_api::guild_roles(&cfg.api_base, &i.guild_id, &token).await
            };
            let roles = looked_up.await.map_err(|e| {
                tracing::error!(error = %e, "cannot look up the role `{needed}`");
                format!("Sorry, I cannot check the `{needed}` role right now; try again later.")
            })?;
            if let Ok(mut cache) = ROLE_IDS.lock() {
                for (id, name) in &roles {
                    cache.insert(
                        (i.guild_id.clone(), name.to_lowercase()),
                        (id.clone(), std::time::Instant::now()),
                    );
                }
            }
            roles
                .into_iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(&needed))
                .map(|(id, _)| id)
                .ok_or_else(|| {
                    tracing::error!(role = %needed, guild = %i.guild_id, "no such role in the server (orch.yaml chat.discord)");
                    format!("Sorry, this server has no `{needed}` role, so nobody may `/{}` yet.", i.command)
                })?
        }
    };
    let mut resolved = cfg.clone();
    match key {
        Some(k) => {
            resolved.command_roles.insert(k, id);
        }
        None => resolved.role = id,
    }
    Ok(resolved)
}

/// What a command runs.
enum Plan {
    Workflow(String, Map<String, Value>),
    Method(String, String, Map<String, Value>),
}

fn command(state: &Arc<AppState>, cfg: &DiscordConfig, i: Interaction) -> Response {
    if let Err(refusal) = commands::permit(cfg, &i.command, &i.channel_id, &i.roles) {
        tracing::info!(user = %i.user, command = %i.command, channel = %i.channel_id, "chat command refused");
        return message(refusal, true);
    }
    let servers = discover::servers(&state.env.repo);
    match i.command.as_str() {
        "help" => return message(commands::help_text(), true),
        "list" => return message(commands::list_text(&servers), false),
        c if !commands::COMMANDS.iter().any(|s| s.name == c) => {
            return message(format!("Sorry, I don't know `/{c}`; try `/help`."), true);
        }
        _ => {}
    }
    let wanted = i.server.clone().unwrap_or_default();
    let Some(server) = servers.iter().find(|s| s.name == wanted) else {
        return message(
            format!("Sorry, I don't know a server called `{wanted}`; `/list` shows them."),
            true,
        );
    };
    if !server.supports(&i.command) {
        return message(
            format!(
                "Sorry, {} ({}) cannot `{}`; it can {}.",
                server.name,
                server.game.label(),
                i.command,
                server.game.actions().join(", ")
            ),
            true,
        );
    }
    let player = i.player.clone().unwrap_or_default();
    if matches!(i.command.as_str(), "op" | "deop") && !commands::valid_player(&player) {
        return message(
            format!("Sorry, `{player}` is not a player name (3 to 16 letters, digits or _)."),
            true,
        );
    }
    let plan = match plan(state, cfg, server, &i.command, &player) {
        Ok(p) => p,
        Err(why) => {
            return message(
                format!("Sorry, I cannot {} {}: {why}", i.command, server.name),
                true,
            );
        }
    };
    let started = match plan {
        Plan::Workflow(workflow, inputs) => {
            crate::serve::api::runs::start_workflow(state, &workflow, inputs)
        }
        Plan::Method(model, method, inputs) => {
            crate::serve::api::runs::start_method(state, &model, &method, inputs)
        }
    };
    let (id, done) = match started {
        Ok(s) => (s.id, s.done),
        Err(e) => {
            tracing::error!(error = %e.message(), command = %i.command, server = %server.name, "chat command could not start");
            return message(
                format!(
                    "Sorry, {} {} could not start: {}",
                    i.command,
                    server.name,
                    crate::excerpt::excerpt_to(e.message(), 300)
                ),
                true,
            );
        }
    };
    tracing::info!(user = %i.user, command = %i.command, server = %server.name, run = %id, "chat command started a run");
    let state = state.clone();
    let cfg = cfg.clone();
    let server = server.clone();
    tokio::spawn(async move {
        let status = done.await.ok();
        let record = crate::cli::runs::show(&state.env.store, &id).ok();
        let text = summary(
            &state,
            &server,
            &i.command,
            &player,
            status,
            record.as_ref(),
        );
        if let Err(e) =
            discord_api::edit_original(&cfg.api_base, &cfg.application_id, &i.token, &text).await
        {
            tracing::error!(run = %id, error = %e, "cannot post the chat command's outcome");
        }
    });
    Json(json!({"type": 5})).into_response()
}

/// The VM `name` as the fleet data records it (`fleet` model, `vm` spec): its attributes.
fn fleet_vm(state: &AppState, name: &str) -> Option<Value> {
    use crate::expr::DataSource;
    let data = data_source(state);
    data.model_resources("fleet")
        .ok()?
        .into_iter()
        .find(|r| r.spec == "vm" && r.name == name && r.retired.is_none())
        .map(|r| r.attributes)
}

fn plan(
    state: &AppState,
    cfg: &DiscordConfig,
    server: &GameServer,
    action: &str,
    player: &str,
) -> Result<Plan, String> {
    let repo = &state.env.repo;
    if matches!(action, "op" | "deop") {
        let mut inputs = Map::new();
        inputs.insert("player".into(), Value::String(player.to_string()));
        return Ok(Plan::Method(
            server.model.clone(),
            action.to_string(),
            inputs,
        ));
    }
    // Verify before destroy: the vmid the fleet data records for this name, never a guess.
    // The homelab's workflows read it from the fleet themselves; one that takes `expectVmid`
    // gets it from here.
    let vmid = fleet_vm(state, &server.name)
        .and_then(|v| v.get("vmid").cloned())
        .filter(|v| !v.is_null());
    if matches!(action, "stop" | "reboot" | "update") && vmid.is_none() {
        return Err(format!(
            "the fleet data has no VM `{}` with a vmid (run `orch run sync-fleet`)",
            server.name
        ));
    }
    let (workflow, mut inputs) = match server.game {
        Game::Terraria => (format!("{action}-{}", server.name), Map::new()),
        Game::Minecraft => {
            let def = repo.model(&server.model).map_err(|e| e.to_string())?;
            let data = data_source(state);
            let mut inputs = Map::new();
            inputs.insert("vmName".into(), Value::String(server.name.clone()));
            for field in ["tmuxSession", "serverDir", "startScript", "logPath"] {
                let text = def
                    .global_arguments
                    .get(field)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("model `{}` has no {field}", server.model))?;
                let value = resolve(
                    &data,
                    repo.env_values(),
                    text,
                    &format!("{}.{field}", server.model),
                )?;
                inputs.insert(field.into(), Value::String(value));
            }
            (format!("{action}-minecraft"), inputs)
        }
    };
    let wf = repo
        .workflow(&workflow)
        .map_err(|_| format!("there is no workflow `{workflow}`"))?;
    let takes = |input: &str| {
        wf.inputs
            .as_ref()
            .and_then(|s| s["properties"].get(input))
            .is_some()
    };
    if let Some(seconds) = cfg.warn_seconds.filter(|_| takes("warnSeconds")) {
        inputs.insert("warnSeconds".into(), json!(seconds));
    }
    if let Some(vmid) = vmid.filter(|_| takes("expectVmid")) {
        inputs.insert("expectVmid".into(), vmid);
    }
    Ok(Plan::Workflow(workflow, inputs))
}

/// The last info line a step `status` logged, without the leading `label: `.
fn status_line(record: &RunRecord) -> Option<String> {
    record
        .events
        .iter()
        .filter(|e| e["event"] == "log" && e["level"] == "info")
        .filter(|e| {
            e["step"]
                .as_str()
                .is_some_and(|s| s.rsplit('.').next() == Some("status"))
        })
        .filter_map(|e| e["message"].as_str())
        .next_back()
        .map(|m| m.split_once(": ").map_or(m, |(_, rest)| rest).to_string())
}

/// The short human summary posted when a command's run ends.
fn summary(
    state: &AppState,
    server: &GameServer,
    action: &str,
    player: &str,
    status: Option<RunStatus>,
    record: Option<&RunRecord>,
) -> String {
    let name = &server.name;
    let vm = fleet_vm(state, name);
    let vm_status = vm
        .as_ref()
        .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string));
    if status != Some(RunStatus::Succeeded)
        && action == "status"
        && let Some(down) = vm_status.as_deref().filter(|s| *s != "running")
    {
        return format!("💤 {name} is down (its VM is {down})");
    }
    if status != Some(RunStatus::Succeeded) {
        let failed = record.and_then(|r| r.steps.iter().find(|s| s.status == "failed"));
        let why = match failed {
            Some(step) => format!(
                " at step `{}`: {}",
                step.name,
                crate::excerpt::excerpt_to(
                    step.error.as_deref().unwrap_or("no reason recorded"),
                    300
                )
            ),
            None => match record.and_then(|r| r.error.as_deref()) {
                Some(e) => format!(": {}", crate::excerpt::excerpt_to(e, 300)),
                None => String::new(),
            },
        };
        let run = record
            .map(|r| format!(" (run {})", r.id))
            .unwrap_or_default();
        return format!("❌ `{action}` of {name} failed{why}{run}");
    }
    let ip = vm.and_then(|v| v.get("ip").and_then(Value::as_str).map(str::to_string));
    let at = ip.map(|ip| format!(" at {ip}")).unwrap_or_default();
    match action {
        "start" => format!("✅ {name} is up{at}"),
        "reboot" => format!("✅ {name} was restarted and is up{at}"),
        "update" => format!("✅ {name} was updated and is up{at}"),
        "stop" => format!("🛑 {name} is stopped"),
        "op" => format!("✅ {player} is now an operator on {name}"),
        "deop" => format!("✅ {player} is no longer an operator on {name}"),
        _ => {
            let line = record.and_then(status_line);
            match line {
                Some(line) if line.contains("offline") || line.contains("not running") => {
                    format!("💤 {name} is down ({line})")
                }
                Some(line) => format!("🟢 {name} is up{at}, {line}"),
                None => format!("🟢 {name}: status checked{at}"),
            }
        }
    }
}
