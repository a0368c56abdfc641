//! Chat-ops end to end: the real `orch serve` answers Discord interactions signed with a
//! generated Ed25519 key, as Discord signs them; a fake Discord REST API on loopback records
//! every call the bot makes (the follow-up edits, `orch chat register`). The game commands run
//! the homelab's workflows against the Proxmox simulator and the game-server rig
//! (`support::game_lab`: real sshd, tmux consoles).

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;
use support::TestRepo;
use support::game_lab::{GRAFANA_TOKEN, GameLab, PVE_PASSWORD};

const BOT_TOKEN: &str = "MTEwMDAw.bot-token.chat-s3cret-value";
const APP_ID: &str = "1100000000000000001";
const CHANNEL: &str = "2200000000000000002";
const OTHER_CHANNEL: &str = "2200000000000000009";
const HOMIE: &str = "3300000000000000003";
const ADMIN: &str = "3300000000000000004";

/// One call the fake Discord API received.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

type Calls = Arc<(Mutex<Vec<Call>>, Condvar)>;

/// A fake Discord REST API on loopback: records every call and answers `{}`.
struct FakeDiscord {
    url: String,
    calls: Calls,
}

async fn record(
    State(calls): State<Calls>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let call = Call {
        method: method.to_string(),
        path: uri.path().to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let roles = call.method == "GET" && call.path.ends_with("/roles");
    let (list, changed) = &*calls;
    list.lock().unwrap().push(call);
    changed.notify_all();
    if roles {
        return axum::Json(json!([
            {"id": "4400000000000000004", "name": "@everyone"},
            {"id": HOMIE, "name": "homie"},
            {"id": ADMIN, "name": "Admin"},
        ]));
    }
    axum::Json(json!({}))
}

impl FakeDiscord {
    fn start(rt: &tokio::runtime::Runtime) -> FakeDiscord {
        let calls: Calls = Arc::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(calls.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/api/v10", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        FakeDiscord { url, calls }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.0.lock().unwrap().clone()
    }

    /// Waits (up to 5 minutes) until a call's path contains `part`; returns the calls.
    fn wait_for(&self, part: &str) -> Vec<Call> {
        let (list, changed) = &*self.calls;
        let (list, timeout) = changed
            .wait_timeout_while(list.lock().unwrap(), Duration::from_secs(300), |l| {
                !l.iter().any(|c| c.path.contains(part))
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} Discord calls: {:?}",
            list.len(),
            *list
        );
        list.clone()
    }
}

/// A running `orch serve --no-schedules` on a free port; its stderr is kept.
struct Server {
    child: Child,
    url: String,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    fn start(mut cmd: Command) -> Server {
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-schedules"]);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orch serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut before = String::new();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => match line.strip_prefix("listening on ") {
                    Some(url) => break url.to_string(),
                    None => before.push_str(&format!("{line}\n")),
                },
                _ => panic!("orch serve ended before listening:\n{before}"),
            }
        };
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let rest: Vec<String> = lines.map_while(Result::ok).collect();
            let _ = tx.send(format!("{before}{}", rest.join("\n")));
        });
        Server { child, url, stderr }
    }

    /// Stops the server; returns everything it wrote on stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Discord's side: signs interactions with the application's key and posts them.
struct Discord {
    key: SigningKey,
    http: reqwest::Client,
    endpoint: String,
    /// Every response body, to check none holds a secret.
    seen: Mutex<Vec<String>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Discord {
    fn new(key: SigningKey, server: &Server) -> Discord {
        Discord {
            key,
            http: reqwest::Client::new(),
            endpoint: format!("{}/chat/discord/interactions", server.url),
            seen: Mutex::default(),
            next: Default::default(),
        }
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// Posts `body` signed by `key` with timestamp `ts`; `tamper` changes the body after signing.
    fn post_signed(
        &self,
        rt: &tokio::runtime::Runtime,
        key: &SigningKey,
        ts: i64,
        body: &Value,
        tamper: bool,
    ) -> (u16, Value) {
        let text = body.to_string();
        let ts = ts.to_string();
        let signature = hex::encode(key.sign(format!("{ts}{text}").as_bytes()).to_bytes());
        let sent = if tamper {
            text.replace("\"type\":1", "\"type\":2")
        } else {
            text
        };
        let request = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header("x-signature-ed25519", signature)
            .header("x-signature-timestamp", ts)
            .body(sent);
        self.finish(rt, request)
    }

    fn finish(
        &self,
        rt: &tokio::runtime::Runtime,
        request: reqwest::RequestBuilder,
    ) -> (u16, Value) {
        rt.block_on(async {
            let response = request.send().await.expect("POST the interaction");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            self.seen.lock().unwrap().push(text.clone());
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    fn post(&self, rt: &tokio::runtime::Runtime, body: &Value) -> (u16, Value) {
        self.post_signed(rt, &self.key.clone(), Self::now(), body, false)
    }

    /// A slash command (type 2), or autocomplete (type 4) when `kind` is 4.
    fn interaction(
        &self,
        kind: u64,
        command: &str,
        options: Value,
        channel: &str,
        roles: &[&str],
    ) -> Value {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        json!({
            "id": format!("9900000000000000{n:03}"),
            "application_id": APP_ID,
            "type": kind,
            "token": format!("interaction-token-{n}"),
            "channel_id": channel,
            "guild_id": "4400000000000000004",
            "member": {"user": {"id": "5500000000000000005", "username": "amy"}, "roles": roles},
            "data": {"id": "6600000000000000006", "name": command, "type": 1, "options": options}
        })
    }

    /// `/command server [player]` in the right channel with `roles`.
    fn command(
        &self,
        rt: &tokio::runtime::Runtime,
        command: &str,
        server: &str,
        player: Option<&str>,
        roles: &[&str],
    ) -> (u16, Value, String) {
        let mut options = vec![json!({"name": "server", "type": 3, "value": server})];
        if let Some(p) = player {
            options.push(json!({"name": "player", "type": 3, "value": p}));
        }
        let body = self.interaction(2, command, Value::Array(options), CHANNEL, roles);
        let token = body["token"].as_str().unwrap().to_string();
        let (status, answer) = self.post(rt, &body);
        (status, answer, token)
    }

    fn responses(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// The `chat:` section for `key` and the fake API.
/// The `chat:` section for `key` and the fake API; `role` and `admin` are ids or names.
fn chat_config(key: &SigningKey, api: &str, role: &str, admin: &str) -> String {
    format!(
        "\nchat:\n  discord:\n    applicationId: \"{APP_ID}\"\n    publicKey: {}\n    botToken: ${{{{ vault.get(\"discord\", \"bot-token\") }}}}\n    apiBase: {api}\n    channels: [\"{CHANNEL}\"]\n    role: \"{role}\"\n    commandRoles: {{ op: \"{admin}\", deop: \"{admin}\" }}\n    warnSeconds: 0\n",
        hex::encode(key.verifying_key().to_bytes())
    )
}

/// Appends the chat section to the repo's orch.yaml and puts the bot token in the vault.
fn enable_chat(repo: &TestRepo, key: &SigningKey, api: &str, role: &str, admin: &str) {
    let path = repo.path().join("orch.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&chat_config(key, api, role, admin));
    std::fs::write(&path, text).unwrap();
    repo.orch_stdin(&["vault", "put", "discord", "bot-token"], BOT_TOKEN)
        .ok();
}

/// The homelab repository with the game plugins, without the lab around it.
fn homelab_repo() -> TestRepo {
    let repo = TestRepo::new(&["proxmox", "minecraft", "terraria", "docker", "grafana"]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab");
    for sub in ["models", "workflows"] {
        for e in std::fs::read_dir(example.join(sub)).unwrap().flatten() {
            std::fs::copy(e.path(), repo.path().join(sub).join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(example.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
    repo
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn choices(answer: &Value) -> Vec<String> {
    answer["data"]["choices"]
        .as_array()
        .unwrap_or_else(|| panic!("no choices: {answer}"))
        .iter()
        .map(|c| c["value"].as_str().unwrap().to_string())
        .collect()
}

fn assert_ephemeral_refusal(answer: &Value, says: &str) {
    assert_eq!(answer["type"], 4, "{answer}");
    assert_eq!(
        answer["data"]["flags"], 64,
        "only the caller sees it: {answer}"
    );
    let content = answer["data"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Sorry") && content.contains(says),
        "{answer}"
    );
}

#[test]
fn signatures_roles_channels_autocomplete_and_register() {
    let rt = runtime();
    let fake = FakeDiscord::start(&rt);
    let key = signing_key();
    let repo = homelab_repo();
    enable_chat(&repo, &key, &fake.url, HOMIE, ADMIN);
    let server = Server::start(repo.command(&[]));
    let discord = Discord::new(key.clone(), &server);
    let ping = json!({"type": 1, "id": "1", "application_id": APP_ID, "token": "t"});

    assert_eq!(discord.post(&rt, &ping), (200, json!({"type": 1})));

    // Signed by another key; the body changed after signing; no signature at all.
    let (status, answer) = discord.post_signed(&rt, &signing_key(), Discord::now(), &ping, false);
    assert_eq!(status, 401, "{answer}");
    let (status, _) = discord.post_signed(&rt, &key, Discord::now(), &ping, true);
    assert_eq!(status, 401, "a tampered body");
    let unsigned = discord.http.post(&discord.endpoint).body(ping.to_string());
    assert_eq!(discord.finish(&rt, unsigned).0, 401);
    // A replay: a good signature over a timestamp 10 minutes old (an interaction not seen yet).
    let old_ping = json!({"type": 1, "id": "2", "application_id": APP_ID, "token": "t"});
    let (status, answer) = discord.post_signed(&rt, &key, Discord::now() - 600, &old_ping, false);
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("timestamp is more than 300s from now"),
        "{answer}"
    );
    // The same PING again, freshly signed: its id was seen, so it is a replay too.
    let (status, answer) = discord.post(&rt, &ping);
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("already received"),
        "{answer}"
    );
    // A body over 64 KiB is refused, signed or not.
    let huge = json!({"type": 1, "padding": "x".repeat(70 * 1024)});
    assert_eq!(discord.post(&rt, &huge).0, 413);
    // A command in a bad-signature request runs nothing either.
    let start = discord.interaction(
        2,
        "start",
        json!([{"name": "server", "type": 3, "value": "calamity"}]),
        CHANNEL,
        &[HOMIE],
    );
    assert_eq!(
        discord
            .post_signed(&rt, &signing_key(), Discord::now(), &start, false)
            .0,
        401
    );

    // Without the role; in another channel; op needs the admin role.
    let (status, answer, _) = discord.command(&rt, "start", "calamity", None, &[]);
    assert_eq!(status, 200);
    assert_ephemeral_refusal(&answer, &format!("<@&{HOMIE}>"));
    let elsewhere = discord.interaction(
        2,
        "start",
        json!([{"name": "server", "type": 3, "value": "calamity"}]),
        OTHER_CHANNEL,
        &[HOMIE],
    );
    let (_, answer) = discord.post(&rt, &elsewhere);
    assert_ephemeral_refusal(&answer, &format!("<#{CHANNEL}>"));
    let (_, answer, _) = discord.command(&rt, "op", "allthemons", Some("Steve"), &[HOMIE]);
    assert_ephemeral_refusal(&answer, &format!("<@&{ADMIN}>"));
    // An unknown server, and an action its type does not have.
    let (_, answer, _) = discord.command(&rt, "start", "nope", None, &[HOMIE]);
    assert_ephemeral_refusal(&answer, "`/list`");
    let (_, answer, _) = discord.command(&rt, "update", "allthemons", None, &[HOMIE]);
    assert_ephemeral_refusal(&answer, "cannot `update`");
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(
        runs.as_array().map(Vec::len),
        Some(0),
        "nothing ran: {runs}"
    );
    assert!(
        fake.calls().is_empty(),
        "no follow-up for a refusal: {:?}",
        fake.calls()
    );

    // Autocomplete: the servers discovered from the definitions that support the command.
    let typing = |command: &str, text: &str| {
        let body = discord.interaction(
            4,
            command,
            json!([{"name": "server", "type": 3, "value": text, "focused": true}]),
            CHANNEL,
            &[HOMIE],
        );
        let (status, answer) = discord.post(&rt, &body);
        assert_eq!(
            (status, answer["type"].clone()),
            (200, json!(8)),
            "{answer}"
        );
        choices(&answer)
    };
    assert_eq!(typing("start", ""), ["allthemons", "calamity", "infinity"]);
    assert_eq!(typing("update", ""), ["calamity"]);
    assert_eq!(typing("op", "inf"), ["infinity"]);

    let list = discord.interaction(2, "list", json!([]), CHANNEL, &[]);
    let (_, answer) = discord.post(&rt, &list);
    // The same interaction again (a fresh, valid signature): a replay.
    let (status, again) = discord.post(&rt, &list);
    assert_eq!(status, 401, "{again}");
    let content = answer["data"]["content"].as_str().unwrap();
    for s in ["allthemons", "calamity", "infinity"] {
        assert!(content.contains(s), "{answer}");
    }

    // orch chat register: every command in one bulk overwrite, as the bot.
    let registered = repo.orch(&["chat", "register", "--json"]).ok();
    assert_eq!(registered.json()["registered"].as_array().unwrap().len(), 9);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "PUT");
    assert_eq!(
        calls[0].path,
        format!("/api/v10/applications/{APP_ID}/commands")
    );
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bot {BOT_TOKEN}").as_str())
    );
    let sent: Value = serde_json::from_str(&calls[0].body).unwrap();
    let names: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "start", "stop", "reboot", "update", "status", "op", "deop", "list", "help"
        ]
    );
    let op = sent
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "op")
        .unwrap();
    assert_eq!(op["options"][0]["autocomplete"], true, "{op}");
    assert_eq!(op["options"][1]["name"], "player", "{op}");

    // The bot token went only into the register call's Authorization header.
    for call in &calls {
        assert!(
            !call.body.contains(BOT_TOKEN) && !call.path.contains(BOT_TOKEN),
            "{call:?}"
        );
    }
    assert!(!registered.all().contains(BOT_TOKEN));
    assert!(!discord.responses().contains(BOT_TOKEN));
    let log = server.stop();
    assert!(!log.contains(BOT_TOKEN), "{log}");
}

#[test]
fn a_chat_section_with_a_bad_field_is_reported_at_its_line() {
    let repo = TestRepo::new(&[]);
    repo.write(
        "orch.yaml",
        "chat:\n  discord:\n    applicationId: \"1\"\n    publicKey: abc\n    botToken: ${{ vault.get('discord', 'bot-token') }}\n    channels: [general]\n    role: homie\n",
    );
    let out = repo.orch(&["check"]);
    assert_ne!(out.code, 0, "{}", out.all());
    let text = out.all();
    assert!(
        text.contains("orch.yaml:4") && text.contains("chat.discord.publicKey"),
        "{text}"
    );
    assert!(
        text.contains("orch.yaml:6") && text.contains("chat.discord.channels[0]"),
        "{text}"
    );
}

/// The follow-up edit of the interaction whose token is `token`: its content.
fn follow_up(fake: &FakeDiscord, token: &str) -> String {
    let calls = fake.wait_for(&format!("/{token}/"));
    let call = calls
        .iter()
        .find(|c| c.path.contains(&format!("/{token}/")))
        .unwrap_or_else(|| panic!("no follow-up for {token}: {calls:?}"));
    assert_eq!(call.method, "PATCH");
    assert_eq!(
        call.path,
        format!("/api/v10/webhooks/{APP_ID}/{token}/messages/@original")
    );
    assert_eq!(
        call.authorization, None,
        "the interaction token authorises the edit"
    );
    let body: Value = serde_json::from_str(&call.body).unwrap();
    body["content"].as_str().unwrap().to_string()
}

#[test]
fn game_commands_run_their_workflows_and_the_follow_up_names_the_outcome() {
    let rt = runtime();
    let fake = FakeDiscord::start(&rt);
    let key = signing_key();
    let lab = GameLab::new();
    // start-minecraft waits for SSH through the ssh plugin (testVmSsh), which the rig lacks.
    let ssh = lab.repo.path().join("plugins/ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(support::dist().join("ssh").join(f), ssh.join(f)).unwrap();
    }
    // Roles by name here: looked up in the guild's roles with the bot token.
    enable_chat(&lab.repo, &key, &fake.url, "homie", "admin");
    lab.orch(&["run", "sync-fleet"]).ok();
    let ip = |vm: &str| {
        let got = lab
            .orch(&["--json", "data", "get", "fleet", vm, "--spec", "vm"])
            .ok()
            .json();
        got["attributes"]["ip"].as_str().unwrap().to_string()
    };
    let (allthemons_ip, calamity_ip) = (ip("allthemons"), ip("calamity"));
    lab.players("allthemons", &["dave", "erin"]);
    lab.players("calamity", &["alice"]);
    let server = Server::start(lab.command(&[]));
    let discord = Discord::new(key, &server);
    let run = |command: &str, server_name: &str, player: Option<&str>, roles: &[&str]| {
        let (status, answer, token) = discord.command(&rt, command, server_name, player, roles);
        assert_eq!(
            (status, answer.clone()),
            (200, json!({"type": 5})),
            "answered at once, deferred"
        );
        follow_up(&fake, &token)
    };

    // The `admin` role, looked up by name, is what op needs.
    let (_, answer, _) = discord.command(&rt, "op", "allthemons", Some("Steve"), &[HOMIE]);
    assert_ephemeral_refusal(&answer, &format!("<@&{ADMIN}>"));

    let said = run("start", "allthemons", None, &[HOMIE]);
    assert_eq!(said, format!("✅ allthemons is up at {allthemons_ip}"));
    assert!(
        lab.session_runs("allthemons"),
        "the server runs in its tmux session"
    );

    let said = run("status", "allthemons", None, &[HOMIE]);
    assert_eq!(
        said,
        format!("🟢 allthemons is up at {allthemons_ip}, 2 of 20 players online")
    );

    let said = run("op", "allthemons", Some("Steve"), &[HOMIE, ADMIN]);
    assert_eq!(said, "✅ Steve is now an operator on allthemons");
    assert!(
        lab.read("allthemons/logs/latest.log")
            .contains("Made Steve a server operator")
    );

    let said = run("stop", "allthemons", None, &[HOMIE]);
    assert_eq!(said, "🛑 allthemons is stopped");
    assert!(!lab.session_runs("allthemons"), "the server stopped");
    assert_eq!(
        lab.pve.vm_status("allthemons").as_deref(),
        Some("stopped"),
        "and its VM"
    );

    let said = run("status", "allthemons", None, &[HOMIE]);
    assert_eq!(said, "💤 allthemons is down (offline)");

    // A failure names what failed, and why.
    let said = run("deop", "allthemons", Some("Steve"), &[HOMIE, ADMIN]);
    assert!(said.starts_with("❌ `deop` of allthemons failed"), "{said}");
    assert!(said.contains("has no IP"), "{said}");

    let said = run("start", "calamity", None, &[HOMIE]);
    assert_eq!(said, format!("✅ calamity is up at {calamity_ip}"));
    assert!(
        lab.session_runs("terraria"),
        "compose up started the server"
    );

    let said = run("status", "calamity", None, &[HOMIE]);
    assert_eq!(
        said,
        format!("🟢 calamity is up at {calamity_ip}, 1 players online")
    );

    let docker_calls = lab.read("calamity/docker.log").lines().count();
    let said = run("update", "calamity", None, &[HOMIE]);
    assert_eq!(
        said,
        format!("✅ calamity was updated and is up at {calamity_ip}")
    );
    let log = lab.read("calamity/docker.log");
    let compose: Vec<&str> = log
        .lines()
        .skip(docker_calls)
        .filter(|l| l.starts_with("compose"))
        .collect();
    assert_eq!(compose, ["compose pull", "compose up -d"], "{log}");

    let docker_calls = lab.read("calamity/docker.log").lines().count();
    let said = run("reboot", "calamity", None, &[HOMIE]);
    assert_eq!(
        said,
        format!("✅ calamity was restarted and is up at {calamity_ip}")
    );
    let log = lab.read("calamity/docker.log");
    let compose: Vec<&str> = log
        .lines()
        .skip(docker_calls)
        .filter(|l| l.starts_with("compose"))
        .collect();
    assert_eq!(compose, ["compose down", "compose up -d"], "{log}");

    let said = run("stop", "calamity", None, &[HOMIE]);
    assert_eq!(said, "🛑 calamity is stopped");
    assert!(!lab.session_runs("terraria"), "compose down stopped it");

    // No secret reached Discord: not in a follow-up, not in an answer, not in the log.
    let ssh_key = lab.sshds[0].user_key();
    let key_line = ssh_key.lines().nth(1).unwrap().to_string();
    let log = server.stop();
    let calls = fake.calls();
    // The bot token authorises only the role lookup (once: it is cached), in its header.
    let authorised: Vec<&Call> = calls.iter().filter(|c| c.authorization.is_some()).collect();
    assert_eq!(authorised.len(), 1, "{calls:?}");
    assert_eq!(authorised[0].method, "GET");
    assert_eq!(
        authorised[0].path,
        "/api/v10/guilds/4400000000000000004/roles"
    );
    assert_eq!(
        authorised[0].authorization.as_deref(),
        Some(format!("Bot {BOT_TOKEN}").as_str())
    );
    let everything = format!(
        "{}\n{}\n{log}",
        calls
            .iter()
            .map(|c| format!("{} {} {}", c.method, c.path, c.body))
            .collect::<Vec<_>>()
            .join("\n"),
        discord.responses()
    );
    for secret in [BOT_TOKEN, PVE_PASSWORD, GRAFANA_TOKEN, key_line.as_str()] {
        assert!(
            !everything.contains(secret),
            "a secret reached Discord or the log"
        );
    }
}
