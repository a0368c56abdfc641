//! `terraria/server`: a Terraria server in a tmux session inside a Docker container on an SSH
//! host. The logic talks through [`Connector`]/[`Remote`] and takes its sleep as a function, so
//! it runs natively against a fake session in tests.

use crate::console::{self, Answer, Place, Reached};
use crate::metrics;
use crate::remote::{self, Connector, Remote};
use orch_plugin_sdk::game::Sample;
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Serialize};
use std::time::Duration;

fn default_session() -> String {
    "terraria".to_string()
}

fn default_container() -> String {
    "terraria".to_string()
}

fn default_docker_bin() -> String {
    "docker".to_string()
}

remote::ssh_globals! {
    /// Global arguments of `terraria/server`.
    pub struct ServerGlobals {
        /// Docker container the server runs in, e.g. `calamity-terraria-1` (default `terraria`).
        #[serde(default = "default_container")]
        pub container: String,
        /// tmux session inside the container: letters, digits, `_` and `-` (default `terraria`).
        #[serde(default = "default_session")]
        pub tmux_session: String,
        /// The docker CLI on the host (default `docker`).
        #[serde(default = "default_docker_bin")]
        pub docker_bin: String,
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

    /// The checked place of the console.
    pub fn place(&self) -> Result<Place<'_>> {
        let docker = self.docker_bin.trim();
        if docker.is_empty() || docker.starts_with('-') {
            return Err(error::invalid(
                "dockerBin must name the docker CLI, e.g. docker",
            ));
        }
        Ok(Place {
            docker,
            container: console::check_container(self.container.trim())?,
            session: self.session()?,
        })
    }

    /// The server's label in metrics and messages.
    pub fn label(&self) -> &str {
        non_blank(&self.server_name).unwrap_or(self.tmux_session.trim())
    }
}

/// No arguments (the SDK's).
pub use orch_plugin_sdk::NoArgs;

/// Arguments of `warnShutdown`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarnArgs {
    /// Seconds until shutdown: named in the default message, and waited for after it so the
    /// stop that follows comes on time (default 0, at most 600).
    #[serde(default)]
    #[schemars(range(max = 600))]
    pub seconds: u32,
    /// The warning to `say` (default `Server shutting down in N seconds`).
    #[serde(default)]
    pub message: Option<String>,
}

/// Arguments of `collectMetrics`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectArgs {
    /// node_exporter textfile to write (default `/var/lib/node_exporter/textfile_collector/game_terraria.prom`;
    /// give each server on one VM its own file).
    #[serde(default)]
    pub prom_path: Option<String>,
    /// JSON-lines player log to append to (default `/var/log/game-players.log`).
    #[serde(default)]
    pub player_log_path: Option<String>,
}

/// What `status` returns, and the attributes of the `status` resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusOutput {
    /// The `server` label.
    pub server: String,
    /// True when the server answered `playing`.
    pub online: bool,
    /// Players online.
    pub players: u32,
    /// Player slots, when the server says (TShock does; vanilla and tModLoader do not).
    pub max_players: Option<u32>,
    /// Names of the players online.
    pub names: Vec<String>,
    /// Why it is not online: `offline` (the VM has no IP), `container not running`,
    /// `not running` (no tmux session) or `no reply` (the console did not answer in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `warnShutdown` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarnOutput {
    /// False when the server was not running, so nobody was warned.
    pub warned: bool,
    /// The console line sent, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// Seconds waited after the warning.
    pub waited_seconds: u32,
}

/// Attributes of the `metrics` resource (named after the tmux session).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsResource {
    /// The `server` label.
    pub server: String,
    /// The `game` label (`terraria`).
    pub game: String,
    /// True when the server answered `playing`.
    pub online: bool,
    /// Players online.
    pub players: u32,
    /// Player slots, when the server says.
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

/// The default warning for `seconds` left.
pub fn warning_text(seconds: u32) -> String {
    match seconds {
        0 => "Server shutting down now".to_string(),
        1 => "Server shutting down in 1 second".to_string(),
        s => format!("Server shutting down in {s} seconds"),
    }
}

/// One `terraria/server` call: the definition, a way to connect and a way to wait.
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

    fn connect(&self) -> Result<C::Session<'a>> {
        remote::connect(self.connector, &self.globals.ssh(), self.model)
    }

    fn down(&self, reason: &str) -> StatusOutput {
        StatusOutput {
            server: self.globals.label().to_string(),
            online: false,
            players: 0,
            max_players: None,
            names: Vec::new(),
            reason: Some(reason.to_string()),
        }
    }

    /// Runs a console script and reads its markers; failures name the container and session.
    fn run_script(&self, remote: &impl Remote, place: &Place, script: &str) -> Result<Reached> {
        let out = remote.run(script)?;
        match out.exit_code {
            0 => Ok(console::reached(out.stdout)),
            console::EXIT_NO_DOCKER => Err(error::failed(format!(
                "the docker CLI `{}` is not on {}; set dockerBin",
                place.docker,
                self.globals.ssh().describe()
            ))),
            console::EXIT_NO_TMUX => Err(error::failed(format!(
                "tmux is not installed in container {}",
                place.container
            ))),
            code => Err(error::failed(format!(
                "the console of {} (tmux session {} in container {}) failed (exit {code}): {}",
                self.globals.label(),
                place.session,
                place.container,
                out.reason()
            ))),
        }
    }

    /// `warnShutdown`: one `say` line, then a wait of `seconds` so the stop comes on time.
    pub fn warn(&self, args: &WarnArgs) -> Result<WarnOutput> {
        let place = self.globals.place()?;
        let seconds = args.seconds.min(600);
        let text = match non_blank(&args.message) {
            Some(message) => console::check_console_text(message)?.to_string(),
            None => warning_text(seconds),
        };
        let line = format!("say {text}");
        let remote = self.connect()?;
        // Nobody to warn; the stop that usually follows copes with a stopped server itself.
        let sent = match self.run_script(&remote, &place, &place.console_script(&line))? {
            Reached::Console(out) => out.trim() == console::MARK_SENT,
            Reached::ContainerDown | Reached::NotRunning => false,
        };
        if !sent {
            return Ok(WarnOutput {
                warned: false,
                sent: None,
                waited_seconds: 0,
            });
        }
        if seconds > 0 {
            (self.sleep)(Duration::from_secs(seconds.into()));
        }
        Ok(WarnOutput {
            warned: true,
            sent: Some(line),
            waited_seconds: seconds,
        })
    }

    /// `status`: who is online, from the console's answer to `playing`. A VM without IP is
    /// `offline`, not an error, so chat bots and dashboards can ask any time.
    pub fn status(&self) -> Result<StatusOutput> {
        let place = self.globals.place()?;
        if self.globals.ssh().host(self.model).is_err() {
            return Ok(self.down("offline"));
        }
        let remote = self.connect()?;
        self.status_on(&remote, &place)
    }

    fn status_on(&self, remote: &impl Remote, place: &Place) -> Result<StatusOutput> {
        let pane = match self.run_script(remote, place, &place.playing_script())? {
            Reached::ContainerDown => return Ok(self.down("container not running")),
            Reached::NotRunning => return Ok(self.down("not running")),
            Reached::Console(pane) => pane,
        };
        match console::parse_playing(&pane) {
            Answer::Players(list) => Ok(StatusOutput {
                server: self.globals.label().to_string(),
                online: true,
                players: list.online,
                max_players: list.max,
                names: list.names,
                reason: None,
            }),
            Answer::NoReply => Ok(self.down("no reply")),
            Answer::Unreadable(lines) => Err(error::failed(format!(
                "cannot read the answer to `playing` from tmux session {} in container {}: \
                 expected Terraria's player list (`No players connected.`, `N players \
                 connected.` or TShock's `Online Players (N/M)`), got: {lines}. Check that \
                 tmuxSession names the Terraria server's console",
                place.session, place.container
            ))),
        }
    }

    /// `collectMetrics`: status, then the node_exporter textfile and the player log on the
    /// host. Returns the `metrics` resource to record.
    pub fn collect(&self, args: &CollectArgs, now: &str) -> Result<MetricsResource> {
        let place = self.globals.place()?;
        let prom_path = non_blank(&args.prom_path).unwrap_or(metrics::DEFAULT_PROM_PATH);
        let player_log = non_blank(&args.player_log_path).unwrap_or(metrics::DEFAULT_PLAYER_LOG);
        orch_plugin_sdk::game::prom_dir(prom_path)?;
        let remote = self.connect()?;
        let status = self.status_on(&remote, &place)?;
        let sample = Sample {
            timestamp: now,
            server: &status.server,
            game: Some(metrics::GAME),
            online: status.online,
            players: status.players,
            max_players: status.max_players,
            names: &status.names,
        };
        orch_plugin_sdk::game::publish(&remote, prom_path, player_log, &sample)?;
        Ok(MetricsResource {
            server: status.server,
            game: metrics::GAME.to_string(),
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
mod tests {
    use super::*;
    use crate::remote::fake::{self, FakeConnector, FakeRemote};
    use serde_json::json;

    fn globals(host: serde_json::Value) -> ServerGlobals {
        serde_json::from_value(json!({
            "sshHost": host,
            "sshKey": "-----BEGIN OPENSSH PRIVATE KEY-----",
            "container": "calamity-terraria-1",
            "serverName": "calamity",
        }))
        .unwrap()
    }

    fn no_sleep(_: Duration) {}

    fn console(pane: &'static str) -> FakeConnector {
        FakeConnector::new(FakeRemote::new(move |c| {
            if c.contains("-l 'playing'") {
                fake::ok(pane)
            } else {
                fake::ok("")
            }
        }))
    }

    #[test]
    fn a_stopped_vm_is_offline_without_connecting_and_collect_fails() {
        let connector = console(": playing\nNo players connected.\n");
        let g = globals(json!(null));
        let server = Server::new(&connector, &g, "calamityTerraria", &no_sleep);
        let status = server.status().unwrap();
        assert_eq!(status.reason.as_deref(), Some("offline"));
        let err = server.collect(&CollectArgs::default(), "now").unwrap_err();
        assert!(err.to_string().contains("no IP"), "{err}");
        assert_eq!(connector.opens(), 0);
    }

    #[test]
    fn status_reads_the_playing_answer_in_one_round_trip() {
        let connector = console(
            ": playing\nalice (10.0.0.5:1234)\nbob (10.0.0.6:1234)\n2 players connected.\n: \n",
        );
        let g = globals(json!("10.0.0.96"));
        let status = Server::new(&connector, &g, "m", &no_sleep)
            .status()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"server": "calamity", "online": true, "players": 2, "maxPlayers": null, "names": ["alice", "bob"]})
        );
        let commands = connector.remote.commands();
        assert_eq!(commands.len(), 1);
        assert!(commands[0].contains("c='calamity-terraria-1'"));
    }

    #[test]
    fn a_stopped_container_is_down_not_an_error() {
        let connector = FakeConnector::new(FakeRemote::new(|_| {
            fake::ok(&format!("{}\n", console::MARK_CONTAINER_DOWN))
        }));
        let g = globals(json!("10.0.0.96"));
        let server = Server::new(&connector, &g, "m", &no_sleep);
        assert_eq!(
            server.status().unwrap().reason.as_deref(),
            Some("container not running")
        );
        assert!(!server.warn(&WarnArgs::default()).unwrap().warned);
    }
}
