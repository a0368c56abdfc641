//! `minecraft/server`: a Minecraft server running in a tmux session on an SSH host. The logic
//! talks through [`Connector`]/[`Remote`] and takes its sleep as a function, so it runs natively
//! against a fake session in tests.

use crate::console::{self, OpReply, PlayerList, StartOutcome};
use crate::metrics;
use crate::remote::{self, Connector, Remote, SshSettings};
use orch_plugin_sdk::game::Sample;
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Serialize};
use std::time::Duration;

fn default_session() -> String {
    "minecraft".to_string()
}

remote::ssh_globals! {
    /// Global arguments of `minecraft/server`.
    pub struct ServerGlobals {
        /// tmux session the server runs in: letters, digits, `_` and `-` (default `minecraft`).
        #[serde(default = "default_session")]
        pub tmux_session: String,
        /// Directory of the server on the host, e.g. `/opt/minecraft/allthemons`.
        #[serde(default)]
        pub server_dir: Option<String>,
        /// Command that starts the server, run by the shell in serverDir, e.g. `./run.sh`.
        #[serde(default)]
        pub start_script: Option<String>,
        /// The server's log; relative to serverDir unless absolute (default `logs/latest.log`).
        #[serde(default)]
        pub log_path: Option<String>,
        /// Name shown to people and in metrics (the chat bot finds the VM by it); default tmuxSession.
        #[serde(default)]
        pub server_name: Option<String>,
    }
}

fn non_blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ServerGlobals {
    /// The checked tmux session name.
    pub fn session(&self) -> Result<&str> {
        console::check_session(self.tmux_session.trim())
    }

    /// The server's label in metrics and messages.
    pub fn label(&self) -> &str {
        non_blank(&self.server_name).unwrap_or(self.tmux_session.trim())
    }

    /// The checked serverDir.
    pub fn server_dir(&self) -> Result<&str> {
        non_blank(&self.server_dir)
            .ok_or_else(|| error::invalid("serverDir is not set (e.g. /opt/minecraft/allthemons)"))
    }

    /// The log file, resolved against serverDir.
    pub fn log_file(&self) -> Result<String> {
        let log = non_blank(&self.log_path);
        match log {
            Some(path) if path.starts_with('/') => Ok(path.to_string()),
            _ => {
                let dir = self
                    .server_dir()
                    .map_err(|_| error::invalid("set logPath to an absolute path, or serverDir"))?;
                let relative = log.unwrap_or("logs/latest.log");
                Ok(format!("{}/{relative}", dir.trim_end_matches('/')))
            }
        }
    }
}

/// No arguments (the SDK's).
pub use orch_plugin_sdk::NoArgs;

fn default_stop_timeout() -> u32 {
    120
}

/// Arguments of `stopMinecraftServer`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopArgs {
    /// How long to wait for the session to end after `stop` (default 120 s, at most 600).
    #[serde(default = "default_stop_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: u32,
    /// Kill the tmux session when it outlives the timeout (a start script that restarts the
    /// server in a loop never ends by itself). Default false.
    #[serde(default)]
    pub kill_on_timeout: bool,
}

impl Default for StopArgs {
    fn default() -> Self {
        StopArgs {
            timeout_seconds: default_stop_timeout(),
            kill_on_timeout: false,
        }
    }
}

fn default_warn_seconds() -> u32 {
    60
}

/// Arguments of `warnShutdown`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarnArgs {
    /// Seconds until shutdown; the method counts down in chat and returns at zero (default 60, at most 600).
    #[serde(default = "default_warn_seconds")]
    #[schemars(range(max = 600))]
    pub seconds: u32,
}

/// Arguments of `say`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SayArgs {
    /// One line of text to broadcast in chat.
    pub message: String,
}

/// Arguments of `op` and `deop`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlayerArgs {
    /// The player's name, e.g. `Steve`.
    pub player: String,
}

/// Arguments of `collectMetrics`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectArgs {
    /// node_exporter textfile to write (default `/var/lib/node_exporter/textfile_collector/game_minecraft.prom`;
    /// give each server on one VM its own file).
    #[serde(default)]
    pub prom_path: Option<String>,
    /// JSON-lines player log to append to (default `/var/log/game-players.log`).
    #[serde(default)]
    pub player_log_path: Option<String>,
}

/// What `startMinecraftServer` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartOutput {
    /// The tmux session.
    pub session: String,
    /// True when this call started it; false when it already ran.
    pub started: bool,
}

/// What `stopMinecraftServer` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StopOutput {
    /// The tmux session.
    pub session: String,
    /// Whether it was running when the call began.
    pub was_running: bool,
    /// True when the session had to be killed after the timeout.
    pub killed: bool,
    /// Seconds waited for the session to end.
    pub waited_seconds: u32,
}

/// What `status` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusOutput {
    /// True when the server answered `list`.
    pub online: bool,
    /// Players online.
    pub players: u32,
    /// Player slots; null when the server did not answer.
    pub max_players: Option<u32>,
    /// Names of the players online.
    pub names: Vec<String>,
    /// Why it is not online: `offline` (the VM has no IP), `not running` (no tmux session) or
    /// `no reply` (the session runs but the server did not answer, e.g. still starting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl StatusOutput {
    fn down(reason: &str) -> Self {
        StatusOutput {
            online: false,
            players: 0,
            max_players: None,
            names: Vec::new(),
            reason: Some(reason.to_string()),
        }
    }

    fn up(list: PlayerList) -> Self {
        StatusOutput {
            online: true,
            players: list.online,
            max_players: Some(list.max),
            names: list.names,
            reason: None,
        }
    }
}

/// What `warnShutdown` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarnOutput {
    /// False when the server was not running, so nobody was warned.
    pub warned: bool,
    /// The messages sent, in order.
    pub messages: Vec<String>,
}

/// What `say`, `op` and `deop` return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleOutput {
    /// The console command sent.
    pub sent: String,
    /// For `op`/`deop`: `changed`, `unchanged` or `noReply` (the log showed no answer in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// Attributes of the `metrics` resource (named after the tmux session).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsResource {
    /// The `server` label.
    pub server: String,
    /// True when the server answered `list`.
    pub online: bool,
    /// Players online.
    pub players: u32,
    /// Player slots; null when the server did not answer.
    pub max_players: Option<u32>,
    /// Names of the players online.
    pub names: Vec<String>,
    /// Why it is not online, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The textfile written.
    pub prom_path: String,
    /// When it was collected (RFC 3339, UTC).
    pub timestamp: String,
}

/// Seconds between `has-session` polls while waiting for a stop.
pub const STOP_POLL_SECONDS: u32 = 2;

/// The countdown `warnShutdown` announces: (seconds left, pause after the message).
pub fn countdown(seconds: u32) -> Vec<(u32, u32)> {
    const MARKS: [u32; 14] = [600, 300, 240, 180, 120, 60, 30, 15, 10, 5, 4, 3, 2, 1];
    let seconds = seconds.min(600);
    let mut left: Vec<u32> = vec![seconds];
    left.extend(MARKS.iter().copied().filter(|&m| m < seconds));
    left.iter()
        .enumerate()
        .map(|(i, &s)| (s, s - left.get(i + 1).copied().unwrap_or(0)))
        .collect()
}

/// The chat message for `seconds` left.
pub fn warning_text(seconds: u32) -> String {
    match seconds {
        0 => "Server shutting down now".to_string(),
        1 => "Server shutting down in 1 second".to_string(),
        s if s >= 120 && s % 60 == 0 => format!("Server shutting down in {} minutes", s / 60),
        s => format!("Server shutting down in {s} seconds"),
    }
}

/// One `minecraft/server` call: the definition, a way to connect and a way to wait.
pub struct Server<'a, C: Connector> {
    connector: &'a C,
    globals: &'a ServerGlobals,
    model: &'a str,
    sleep: &'a dyn Fn(Duration),
}

impl<'a, C: Connector> Server<'a, C> {
    /// Binds a call's parts together.
    pub fn new(
        connector: &'a C,
        globals: &'a ServerGlobals,
        model: &'a str,
        sleep: &'a dyn Fn(Duration),
    ) -> Self {
        Server {
            connector,
            globals,
            model,
            sleep,
        }
    }

    fn settings(&self) -> SshSettings {
        self.globals.ssh()
    }

    fn connect(&self) -> Result<C::Session<'a>> {
        remote::connect(self.connector, &self.settings(), self.model)
    }

    fn not_running(&self, session: &str) -> orch_plugin_sdk::Error {
        error::conflict(format!(
            "tmux session `{session}` is not running on {}; start it with startMinecraftServer",
            self.settings().describe()
        ))
    }

    fn is_running(&self, remote: &impl Remote, session: &str) -> Result<bool> {
        console::running_from(&remote.run(&console::has_session(session))?)
    }

    /// Sends one console line to a running server.
    fn send(&self, remote: &impl Remote, session: &str, text: &str) -> Result<()> {
        let out = remote.run(&console::console_script(session, text))?;
        match out.exit_code {
            0 => Ok(()),
            console::EXIT_NOT_RUNNING => Err(self.not_running(session)),
            console::EXIT_NO_TMUX => Err(console::no_tmux()),
            code => Err(error::failed(format!(
                "sending `{text}` to the console failed (exit {code}): {}",
                out.reason()
            ))),
        }
    }

    /// Sends a console command and returns the log written after it (None: no session).
    fn query(
        &self,
        remote: &impl Remote,
        session: &str,
        command: &str,
        reply_words: &[&str],
    ) -> Result<Option<String>> {
        let log = self.globals.log_file()?;
        let out = remote.run(&console::query_script(session, &log, command, reply_words))?;
        if out.exit_code == console::EXIT_NO_TMUX {
            return Err(console::no_tmux());
        }
        if out.exit_code == console::EXIT_NO_LOG {
            return Err(error::failed(format!(
                "the server log {log} does not exist on the host; set logPath"
            )));
        }
        if !out.success() {
            return Err(error::failed(format!(
                "sending `{command}` to the console failed (exit {}): {}",
                out.exit_code,
                out.reason()
            )));
        }
        if out.stdout.trim() == console::MARK_NOT_RUNNING {
            return Ok(None);
        }
        Ok(Some(out.stdout))
    }

    /// `startMinecraftServer`: a detached tmux session running startScript in serverDir,
    /// unless the session already exists.
    pub fn start(&self) -> Result<StartOutput> {
        let session = self.globals.session()?;
        let dir = self.globals.server_dir()?;
        let script = non_blank(&self.globals.start_script)
            .ok_or_else(|| error::invalid("startScript is not set (e.g. ./run.sh)"))?;
        let log = self.globals.log_file()?;
        let remote = self.connect()?;
        let out = remote.run(&console::start_script(session, dir, script))?;
        let outcome = console::start_outcome(&out, dir, &log)?;
        Ok(StartOutput {
            session: session.to_string(),
            started: outcome == StartOutcome::Started,
        })
    }

    /// `stopMinecraftServer`: `stop` on the console, then bounded polls until the session ends.
    pub fn stop(&self, args: &StopArgs) -> Result<StopOutput> {
        let session = self.globals.session()?;
        let remote = self.connect()?;
        let mut output = StopOutput {
            session: session.to_string(),
            was_running: false,
            killed: false,
            waited_seconds: 0,
        };
        if !self.is_running(&remote, session)? {
            return Ok(output);
        }
        output.was_running = true;
        self.send(&remote, session, "stop")?;
        let timeout = args.timeout_seconds.clamp(1, 600);
        while output.waited_seconds < timeout {
            (self.sleep)(Duration::from_secs(STOP_POLL_SECONDS.into()));
            output.waited_seconds += STOP_POLL_SECONDS;
            if !self.is_running(&remote, session)? {
                return Ok(output);
            }
        }
        if args.kill_on_timeout {
            remote.run_ok(&console::kill_session(session), "killing the tmux session")?;
            output.killed = true;
            return Ok(output);
        }
        Err(error::transient(format!(
            "tmux session `{session}` still runs {} s after `stop`; the server may still be \
             saving. Run stopMinecraftServer again, or pass killOnTimeout: true",
            output.waited_seconds
        )))
    }

    /// `warnShutdown`: a chat countdown that returns when it reaches zero.
    pub fn warn(&self, args: &WarnArgs) -> Result<WarnOutput> {
        let session = self.globals.session()?;
        let remote = self.connect()?;
        let mut output = WarnOutput {
            warned: false,
            messages: Vec::new(),
        };
        // Nobody to warn; the stop that usually follows copes with a stopped server itself.
        if !self.is_running(&remote, session)? {
            return Ok(output);
        }
        for (left, pause) in countdown(args.seconds) {
            let text = warning_text(left);
            self.send(&remote, session, &format!("say {text}"))?;
            output.messages.push(text);
            if pause > 0 {
                (self.sleep)(Duration::from_secs(pause.into()));
            }
        }
        output.warned = true;
        Ok(output)
    }

    /// `status`: who is online, from the server's answer to `list`. A VM without IP is
    /// `offline`, not an error, so chat bots and dashboards can ask any time.
    pub fn status(&self) -> Result<StatusOutput> {
        let session = self.globals.session()?;
        self.globals.log_file()?;
        if self.settings().host(self.model).is_err() {
            return Ok(StatusOutput::down("offline"));
        }
        let remote = self.connect()?;
        self.status_on(&remote, session)
    }

    fn status_on(&self, remote: &impl Remote, session: &str) -> Result<StatusOutput> {
        let Some(log) = self.query(remote, session, "list", console::LIST_REPLY)? else {
            return Ok(StatusOutput::down("not running"));
        };
        Ok(match console::parse_player_list(&log) {
            Some(list) => StatusOutput::up(list),
            None => StatusOutput::down("no reply"),
        })
    }

    /// `say`: one chat line.
    pub fn say(&self, args: &SayArgs) -> Result<ConsoleOutput> {
        let session = self.globals.session()?;
        let text = format!("say {}", console::check_console_text(&args.message)?);
        let remote = self.connect()?;
        self.send(&remote, session, &text)?;
        Ok(ConsoleOutput {
            sent: text,
            result: None,
        })
    }

    /// `op` (`grant` true) or `deop`, confirmed from the server's answer in the log.
    pub fn op(&self, args: &PlayerArgs, grant: bool) -> Result<ConsoleOutput> {
        let session = self.globals.session()?;
        let player = console::check_player(args.player.trim())?;
        let command = format!("{} {player}", if grant { "op" } else { "deop" });
        let remote = self.connect()?;
        let Some(log) = self.query(&remote, session, &command, console::OP_REPLY)? else {
            return Err(self.not_running(session));
        };
        let reply = console::parse_op_reply(&log, player);
        if reply == OpReply::UnknownPlayer {
            return Err(error::not_found(format!(
                "the server does not know player {player}"
            )));
        }
        Ok(ConsoleOutput {
            sent: command,
            result: Some(reply.as_str().to_string()),
        })
    }

    /// `collectMetrics`: status, then the node_exporter textfile and the player log on the
    /// host. Returns the `metrics` resource to record.
    pub fn collect(&self, args: &CollectArgs, now: &str) -> Result<MetricsResource> {
        let session = self.globals.session()?;
        self.globals.log_file()?;
        let prom_path = non_blank(&args.prom_path).unwrap_or(metrics::DEFAULT_PROM_PATH);
        let player_log = non_blank(&args.player_log_path).unwrap_or(metrics::DEFAULT_PLAYER_LOG);
        orch_plugin_sdk::game::prom_dir(prom_path)?;
        let remote = self.connect()?;
        let status = self.status_on(&remote, session)?;
        let sample = Sample {
            timestamp: now,
            server: self.globals.label(),
            game: None,
            online: status.online,
            players: status.players,
            max_players: status.max_players,
            names: &status.names,
        };
        orch_plugin_sdk::game::publish(&remote, prom_path, player_log, &sample)?;
        Ok(MetricsResource {
            server: sample.server.to_string(),
            online: status.online,
            players: status.players,
            max_players: status.max_players,
            names: status.names,
            reason: status.reason,
            prom_path: prom_path.to_string(),
            timestamp: now.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
