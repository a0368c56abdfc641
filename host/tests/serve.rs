//! `orch serve` end to end: the real binary listens on a free port, a reqwest client calls the
//! API with tokens made by `orch token create`; sync-fleet runs against the Proxmox simulator.

mod support;

use pve_sim::SimConfig;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use support::lab::{Lab, PASSWORD};
use support::{Run, TestRepo};

/// A running `orch serve`.
struct Server {
    child: Child,
    url: String,
    /// The rest of its stderr, once it exits.
    stderr: mpsc::Receiver<String>,
    /// Its stderr before the listening line.
    before: String,
}

impl Server {
    /// Starts `orch serve --listen 127.0.0.1:0 EXTRA…` from `cmd` (a repo command without
    /// arguments yet) and waits for its `listening on` line.
    fn start(mut cmd: Command, extra: &[&str]) -> Server {
        cmd.arg("serve");
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(extra);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orch serve");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
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
            let _ = tx.send(rest.join("\n"));
        });
        Server {
            child,
            url,
            stderr,
            before,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the child this test spawned.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// Waits for the server to exit; returns its exit code and the stderr after the listening line.
    fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait for orch serve");
        let rest = self.stderr.recv().unwrap_or_default();
        (status.code(), rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a token; returns its text.
fn token(repo: &TestRepo, name: &str, scope: &str, workflows: Option<&str>) -> String {
    let mut args = vec!["--json", "token", "create", name, "--scope", scope];
    if let Some(w) = workflows {
        args.extend(["--workflows", w]);
    }
    let made = repo.orch(&args).ok().json();
    made["token"].as_str().expect("token").to_string()
}

/// An HTTP client whose every response body is kept, to check none holds a secret.
struct Client {
    http: reqwest::Client,
    bodies: std::sync::Mutex<Vec<String>>,
}

impl Client {
    fn new() -> Client {
        Client::with(reqwest::Client::new())
    }

    fn with(http: reqwest::Client) -> Client {
        Client {
            http,
            bodies: Default::default(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        self.bodies.lock().unwrap().push(text.clone());
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn get(&self, url: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, url, token, None).await
    }

    async fn post(&self, url: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, url, Some(token), Some(body))
            .await
    }

    /// Starts `workflow` through the API (expects 202); returns the run's id.
    async fn start(&self, server: &Server, token: &str, workflow: &str) -> String {
        let (status, body) = self
            .post(
                &server.url("/api/v1/runs"),
                token,
                json!({ "workflow": workflow }),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// Reads a run's SSE stream to its end; returns the events (name, JSON).
    async fn events(&self, url: &str, token: &str) -> Vec<(String, Value)> {
        let mut resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("events request");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut text = String::new();
        while let Some(chunk) = resp.chunk().await.expect("event chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        self.bodies.lock().unwrap().push(text.clone());
        text.split("\n\n")
            .filter(|block| block.lines().any(|l| l.starts_with("data: ")))
            .map(|block| {
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                (
                    name,
                    serde_json::from_str(&data).expect("event data is JSON"),
                )
            })
            .collect()
    }

    /// Asserts no body so far holds `secret`.
    fn assert_never_saw(&self, secret: &str) {
        let bodies = self.bodies.lock().unwrap();
        assert!(bodies.len() >= 3, "only {} bodies checked", bodies.len());
        for body in bodies.iter() {
            assert!(
                !body.contains(secret),
                "a response holds the secret: {body}"
            );
        }
    }
}

/// A repo whose `hang` workflow waits in a plugin call to `listener` until the test answers,
/// and whose `quick` workflow writes one resource.
fn hanging_repo() -> (TestRepo, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/w.yaml", "type: test/echo\n");
    repo.write(
        "models/web.yaml",
        &format!("type: test/echo\nglobalArguments:\n  baseUrl: {base}\n"),
    );
    repo.write(
        "workflows/hang.yaml",
        &format!(
            "name: hang\njobs:\n  - name: main\n    steps:\n      - name: wait\n        task:\n          \
             type: model_method\n          modelIdOrName: web\n          methodName: fetch\n          \
             inputs:\n            url: {base}/hang\n"
        ),
    );
    repo.write(
        "workflows/quick.yaml",
        "name: quick\njobs:\n  - name: main\n    steps:\n      - name: quick\n        task:\n          \
         type: model_method\n          modelIdOrName: w\n          methodName: write\n          \
         inputs:\n            name: quick\n            attributes: { a: 1 }\n",
    );
    (repo, listener)
}

/// Waits until the plugin's call reaches `listener` (the run is in its step).
fn in_flight(listener: &TcpListener) -> TcpStream {
    let (mut stream, _) = listener.accept().expect("the plugin connects");
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
    stream
}

/// Answers the plugin's hanging call.
fn answer(mut stream: TcpStream) {
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
}

fn status_of(repo: &TestRepo, id: &str) -> Value {
    repo.orch(&["--json", "runs", "show", id]).ok().json()["status"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_needs_no_token_and_the_api_refuses_a_missing_unknown_or_revoked_token() {
    let repo = TestRepo::new(&["testplug"]);
    let admin = token(&repo, "admin", "admin", None);
    let server = Server::start(repo.command(&[]), &[]);
    let client = Client::new();
    let (status, body) = client.get(&server.url("/healthz"), None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    for path in ["/api/v1/whoami", "/api/v1/runs", "/api/v1/openapi.json"] {
        let (status, body) = client.get(&server.url(path), None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
        let (status, _) = client.get(&server.url(path), Some("orch_nope")).await;
        assert_eq!(status, 401, "{path} with an unknown token");
    }
    let (status, me) = client
        .get(&server.url("/api/v1/whoami"), Some(&admin))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({"name": "admin", "scope": "admin", "workflows": null})
    );
    // A revoke reaches the running server at once.
    repo.orch(&["token", "revoke", "admin"]).ok();
    let (status, _) = client
        .get(&server.url("/api/v1/whoami"), Some(&admin))
        .await;
    assert_eq!(status, 401, "a revoked token is refused");
    let listed = repo.orch(&["--json", "token", "list"]).ok();
    assert!(!listed.stdout.contains(&admin));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_cannot_do_more_than_its_scope_and_workflows_allow() {
    let (repo, _listener) = hanging_repo();
    let read = token(&repo, "reader", "read", None);
    let limited = token(&repo, "bot", "run", Some("quick"));
    let server = Server::start(repo.command(&[]), &[]);
    let client = Client::new();
    let runs = server.url("/api/v1/runs");
    let (status, body) = client
        .post(&runs, &read, json!({"workflow": "quick"}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("scope"), "{body}");
    let (status, body) = client
        .post(&runs, &limited, json!({"workflow": "hang"}))
        .await;
    assert_eq!(status, 403, "another workflow: {body}");
    let (status, body) = client
        .post(
            &runs,
            &limited,
            json!({"model": "w", "method": "write", "inputs": {"name": "x", "attributes": {}}}),
        )
        .await;
    assert_eq!(status, 403, "a method run: {body}");
    let (status, body) = client
        .post(
            &server.url("/api/v1/eval"),
            &limited,
            json!({"expression": "1 + 1"}),
        )
        .await;
    assert_eq!(status, 403, "eval: {body}");
    let (status, body) = client
        .post(&runs, &limited, json!({"workflow": "quick"}))
        .await;
    assert_eq!(status, 202, "its own workflow: {body}");
    let id = body["id"].as_str().expect("id").to_string();
    let events = client
        .events(&server.url(&format!("/api/v1/runs/{id}/events")), &read)
        .await;
    assert_eq!(events.last().expect("events").0, "runFinished");
    let (status, body) = client
        .post(&runs, &limited, json!({"workflow": "nope"}))
        .await;
    assert_eq!(status, 403, "{body}");
    let admin = token(&repo, "admin", "admin", None);
    let (status, body) = client
        .post(&runs, &admin, json!({"workflow": "nope"}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unknown workflow"),
        "{body}"
    );
    // An admin token runs a single method.
    let (status, body) = client
        .post(
            &runs,
            &admin,
            json!({"model": "w", "method": "noop", "inputs": {}}),
        )
        .await;
    assert_eq!(status, 202, "a method run: {body}");
    let id = body["id"].as_str().expect("id").to_string();
    let events = client
        .events(&server.url(&format!("/api/v1/runs/{id}/events")), &admin)
        .await;
    assert_eq!(events.last().expect("events").1["status"], "succeeded");
    assert_eq!(status_of(&repo, &id), "succeeded");
    let (status, record) = client
        .get(&server.url(&format!("/api/v1/runs/{id}")), Some(&read))
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["kind"], "method");
    assert_eq!(record["target"], "w.noop");
    let (status, body) = client
        .post(&runs, &admin, json!({"model": "w", "method": "nope"}))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_served_sync_fleet_streams_its_events_and_writes_the_reference_ips() {
    let lab = Lab::with_config(SimConfig::default());
    let admin = token(&lab.repo, "admin", "admin", None);
    let reader = token(&lab.repo, "reader", "read", None);
    let mut cmd = lab.repo.command(&[]);
    cmd.env("PROXMOX_API_URL", lab.sim.url());
    // The homelab's collect-game-metrics schedule must not fire into the test.
    let server = Server::start(cmd, &["--no-schedules"]);
    let client = Client::new();
    let (status, body) = client
        .post(
            &server.url("/api/v1/runs"),
            &admin,
            json!({"workflow": "sync-fleet", "inputs": {}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let events = client
        .events(&server.url(&format!("/api/v1/runs/{id}/events")), &reader)
        .await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"runStarted"), "{names:?}");
    assert!(
        names.contains(&"stepStarted") && names.contains(&"resourceWritten"),
        "{names:?}"
    );
    let (last, finished) = events.last().expect("events");
    assert_eq!(last, "runFinished");
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["runId"], id.as_str());

    let (status, record) = client
        .get(&server.url(&format!("/api/v1/runs/{id}")), Some(&reader))
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["target"], "sync-fleet");
    // A finished run replays its recorded events.
    let replay = client
        .events(&server.url(&format!("/api/v1/runs/{id}/events")), &reader)
        .await;
    assert_eq!(replay.last().expect("replay").0, "runFinished");

    let (status, list) = client
        .get(&server.url("/api/v1/data/fleet"), Some(&reader))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().expect("list").len(), 10, "{list}");
    let (status, gold) = client
        .get(&server.url("/api/v1/data/fleet/gold-image"), Some(&reader))
        .await;
    assert_eq!(status, 200, "{gold}");
    assert_eq!(gold["attributes"]["ip"], "10.0.0.143");
    let (status, spaced) = client
        .get(&server.url("/api/v1/data/fleet/vm/VM%20102"), Some(&reader))
        .await;
    assert_eq!(status, 200, "spec/name with a space: {spaced}");
    assert_eq!(spaced["attributes"]["vmid"], 102);
    let (_, allthemons) = client
        .get(
            &server.url("/api/v1/data/fleet/allthemons?version=1"),
            Some(&reader),
        )
        .await;
    assert_eq!(allthemons["attributes"]["ip"], "10.0.0.96");
    let (status, versions) = client
        .get(
            &server.url("/api/v1/data/fleet/gold-image/versions"),
            Some(&reader),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(versions.as_array().expect("versions").len(), 1);
    let (status, missing) = client
        .get(&server.url("/api/v1/data/fleet/no-such-vm"), Some(&reader))
        .await;
    assert_eq!(status, 404, "{missing}");
    let (status, changes) = client
        .get(&server.url("/api/v1/changes?since=1h"), Some(&reader))
        .await;
    assert_eq!(status, 200);
    assert!(changes.to_string().contains("gold-image"), "{changes}");
    let (status, runs) = client
        .get(&server.url("/api/v1/runs?limit=5"), Some(&reader))
        .await;
    assert_eq!(status, 200);
    assert_eq!(runs[0]["id"], id.as_str(), "{runs}");
    let (status, _) = client
        .get(&server.url("/api/v1/openapi.json"), Some(&reader))
        .await;
    assert_eq!(status, 200);

    // The catalog: types, models, workflows with their inputs schema.
    let (_, types) = client
        .get(&server.url("/api/v1/types"), Some(&reader))
        .await;
    assert!(types.to_string().contains("proxmox/vm"), "{types}");
    let (status, vm) = client
        .get(&server.url("/api/v1/types/proxmox/vm"), Some(&reader))
        .await;
    assert_eq!(status, 200, "{vm}");
    assert_eq!(vm["type"]["name"], "proxmox/vm");
    let (_, models) = client
        .get(&server.url("/api/v1/models"), Some(&reader))
        .await;
    assert!(models.to_string().contains("\"fleet\""), "{models}");
    let (status, _) = client
        .get(&server.url("/api/v1/models/fleet"), Some(&reader))
        .await;
    assert_eq!(status, 200);
    let (_, workflows) = client
        .get(&server.url("/api/v1/workflows"), Some(&reader))
        .await;
    let sync = workflows
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "sync-fleet")
        .expect("sync-fleet listed");
    assert!(sync["inputs"].is_object(), "{sync}");
    let (status, graph) = client
        .get(&server.url("/api/v1/workflows/sync-fleet"), Some(&reader))
        .await;
    assert_eq!(status, 200, "{graph}");
    assert!(
        graph["inputs"].is_object() && graph["triggers"].is_array(),
        "{graph}"
    );
    assert!(graph.to_string().contains("sync"), "{graph}");

    // eval: admin only, vault values redacted.
    let eval = server.url("/api/v1/eval");
    let ip = r#"model.fleet.resource.vm["gold-image"].attributes.ip"#;
    let (status, body) = client.post(&eval, &reader, json!({"expression": ip})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = client.post(&eval, &admin, json!({"expression": ip})).await;
    assert_eq!((status, body), (200, json!({"value": "10.0.0.143"})));
    let (status, body) = client
        .post(
            &eval,
            &admin,
            json!({"expression": r#"vault.get("proxmox-vault", "password")"#}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["value"], PASSWORD);

    // The same data as the CLI's.
    assert_eq!(lab.resource("fleet", "gold-image")["ip"], "10.0.0.143");
    client.assert_never_saw(PASSWORD);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_run_while_a_served_run_is_in_flight_succeeds_and_both_are_listed() {
    let (repo, listener) = hanging_repo();
    let admin = token(&repo, "admin", "admin", None);
    let server = Server::start(repo.command(&[]), &[]);
    let client = Client::new();
    let (status, body) = client
        .post(
            &server.url("/api/v1/runs"),
            &admin,
            json!({"workflow": "hang"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let served = body["id"].as_str().expect("id").to_string();
    let call = in_flight(&listener);
    assert_eq!(status_of(&repo, &served), "running");

    let cli: Run = repo.orch(&["--json", "run", "quick"]).ok();
    let cli_id = cli.json()["id"].as_str().expect("id").to_string();
    assert_eq!(status_of(&repo, &cli_id), "succeeded");

    answer(call);
    let events = client
        .events(
            &server.url(&format!("/api/v1/runs/{served}/events")),
            &admin,
        )
        .await;
    assert_eq!(events.last().expect("events").1["status"], "succeeded");
    assert_eq!(status_of(&repo, &served), "succeeded");
    let listed = repo.orch(&["--json", "runs", "list"]).ok().json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(
        ids.contains(&served.as_str()) && ids.contains(&cli_id.as_str()),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_served_run_records_it_cancelled() {
    let (repo, listener) = hanging_repo();
    let runner = token(&repo, "runner", "run", None);
    let server = Server::start(repo.command(&[]), &[]);
    let client = Client::new();
    let id = client.start(&server, &runner, "hang").await;
    let _call = in_flight(&listener);
    let (status, body) = client
        .post(
            &server.url(&format!("/api/v1/runs/{id}/cancel")),
            &runner,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], id.as_str());
    let events = client
        .events(&server.url(&format!("/api/v1/runs/{id}/events")), &runner)
        .await;
    assert_eq!(events.last().expect("events").1["status"], "cancelled");
    assert_eq!(status_of(&repo, &id), "cancelled");
    let (status, body) = client
        .post(
            &server.url(&format!("/api/v1/runs/{id}/cancel")),
            &runner,
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "a finished run cannot be cancelled: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_cancels_a_run_still_in_flight_after_the_grace_period() {
    let (repo, listener) = hanging_repo();
    let admin = token(&repo, "admin", "admin", None);
    let server = Server::start(repo.command(&[]), &["--grace", "0s"]);
    let client = Client::new();
    let id = client.start(&server, &admin, "hang").await;
    let _call = in_flight(&listener);
    server.signal(libc::SIGTERM);
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("cancelling 1 run"), "{stderr}");
    assert_eq!(status_of(&repo, &id), "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_run_in_flight_finish_within_the_grace_period() {
    let (repo, listener) = hanging_repo();
    let admin = token(&repo, "admin", "admin", None);
    let server = Server::start(repo.command(&[]), &["--grace", "5m"]);
    let client = Client::new();
    let id = client.start(&server, &admin, "hang").await;
    let call = in_flight(&listener);
    server.signal(libc::SIGTERM);
    answer(call);
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(status_of(&repo, &id), "succeeded", "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_leaves_nothing_that_stops_the_next_one() {
    let (repo, listener) = hanging_repo();
    let admin = token(&repo, "admin", "admin", None);
    let server = Server::start(repo.command(&[]), &[]);
    let client = Client::new();
    let id = client.start(&server, &admin, "hang").await;
    let _call = in_flight(&listener);
    server.signal(libc::SIGKILL);
    let _ = server.wait();
    let next = Server::start(repo.command(&[]), &[]);
    let (status, _) = client.get(&next.url("/healthz"), None).await;
    assert_eq!(status, 200);
    let (status, body) = client
        .post(
            &next.url("/api/v1/runs"),
            &admin,
            json!({"workflow": "quick"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let quick = body["id"].as_str().expect("id").to_string();
    let events = client
        .events(&next.url(&format!("/api/v1/runs/{quick}/events")), &admin)
        .await;
    assert_eq!(events.last().expect("events").1["status"], "succeeded");
    assert_eq!(
        status_of(&repo, &id),
        "abandoned",
        "the killed server's run does not stay running"
    );
}

#[test]
fn a_listen_address_beyond_loopback_needs_tls_or_insecure_http() {
    let repo = TestRepo::new(&[]);
    let refused = repo.orch(&["serve", "--listen", "0.0.0.0:0"]).code(2);
    assert!(
        refused.stderr.contains("--tls-cert") && refused.stderr.contains("--insecure-http"),
        "{}",
        refused.all()
    );
}

/// A self-signed certificate for 127.0.0.1 written as PEM files: (cert path, key path, cert PEM).
fn certificate(dir: &std::path::Path) -> (String, String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    let pem = |label: &str, der: &[u8]| {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let cert_pem = pem("CERTIFICATE", cert.der());
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, pem("PRIVATE KEY", &key.serialize_der())).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
        cert_pem,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_certificate_the_api_is_served_over_https_also_beyond_loopback() {
    let repo = TestRepo::new(&[]);
    let reader = token(&repo, "reader", "read", None);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = certificate(dir.path());
    let server = Server::start(
        repo.command(&[]),
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    assert!(server.url.starts_with("https://0.0.0.0:"), "{}", server.url);
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let client = Client::with(http);
    let base = format!("https://127.0.0.1:{port}");
    let (status, me) = client
        .get(&format!("{base}/api/v1/whoami"), Some(&reader))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "reader");
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "no plain HTTP on the TLS port"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destructive_run_through_the_api_keeps_the_verify_before_destroy_rule() {
    let lab = Lab::with_config(SimConfig::default());
    let admin = token(&lab.repo, "admin", "admin", None);
    lab.orch(&["run", "sync-fleet"]).ok();
    let mut cmd = lab.repo.command(&[]);
    cmd.env("PROXMOX_API_URL", lab.sim.url());
    // The homelab's collect-game-metrics schedule must not fire into the test.
    let server = Server::start(cmd, &["--no-schedules"]);
    let client = Client::new();
    let runs = server.url("/api/v1/runs");
    let (status, body) = client
        .post(
            &runs,
            &admin,
            json!({"workflow": "delete-vm", "inputs": {"vmName": "allthemons"}}),
        )
        .await;
    assert_eq!(status, 400, "the confirm input is required: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("expectVmid"),
        "{body}"
    );
    let (status, body) = client
        .post(
            &runs,
            &admin,
            json!({"workflow": "delete-vm", "inputs": {"vmName": "allthemons", "expectVmid": 101}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let events = client
        .events(&server.url(&format!("/api/v1/runs/{id}/events")), &admin)
        .await;
    assert_eq!(events.last().expect("events").1["status"], "failed");
    let (_, record) = client
        .get(&server.url(&format!("/api/v1/runs/{id}")), Some(&admin))
        .await;
    assert!(record.to_string().contains("refusing"), "{record}");
    assert_eq!(lab.sim.vm_status("allthemons").as_deref(), Some("running"));
    client.assert_never_saw(PASSWORD);
}

#[tokio::test(flavor = "multi_thread")]
async fn orch_runs_cancel_of_a_served_run_cancels_that_run_and_the_server_keeps_serving() {
    let (repo, listener) = hanging_repo();
    let admin = token(&repo, "admin", "admin", None);
    let server = Server::start(repo.command(&[]), &[]);
    let client = Client::new();
    let id = client.start(&server, &admin, "hang").await;
    let _call = in_flight(&listener);
    let cancelled = repo.orch(&["--json", "runs", "cancel", &id]).ok().json();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let (status, _) = client.get(&server.url("/healthz"), None).await;
    assert_eq!(status, 200, "the server still serves");
    let (status, body) = client
        .post(
            &server.url("/api/v1/runs"),
            &admin,
            json!({"workflow": "quick"}),
        )
        .await;
    assert_eq!(status, 202, "and still starts runs: {body}");
}

/// The hook secret the tests sign with (stored in the vault, never in a file or a response).
const HOOK_SECRET: &str = "hook-secret-9f2c41";

fn signature(body: &[u8], secret: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A repo whose `deploy` workflow runs on a signed webhook (writing the pushed ref) and once a
/// year on a schedule.
fn hooked_repo() -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/w.yaml", "type: test/echo\n");
    repo.write(
        "workflows/deploy.yaml",
        "name: deploy\ninputs:\n  type: object\n  properties:\n    body: {}\ntriggers:\n  \
         - webhook:\n      path: github/push\n      secret: \"${{ vault.get('hooks', 'github') }}\"\n  \
         - schedule: \"0 3 1 1 *\"\njobs:\n  - name: main\n    steps:\n      - name: record\n        \
         task:\n          type: model_method\n          modelIdOrName: w\n          methodName: write\n          \
         inputs:\n            name: pushed\n            attributes: { ref: \"${{ inputs.body.ref }}\" }\n",
    );
    repo.orch_stdin(&["vault", "put", "hooks", "github"], HOOK_SECRET)
        .ok();
    repo.orch(&["check"]).ok();
    repo
}

fn run_count(repo: &TestRepo) -> usize {
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    runs.as_array()
        .or_else(|| runs["runs"].as_array())
        .map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_webhook_starts_its_workflow_and_a_bad_signature_runs_nothing() {
    let repo = hooked_repo();
    let reader = token(&repo, "reader", "read", None);
    let server = Server::start(repo.command(&[]), &[]);
    let http = reqwest::Client::new();
    let body = br#"{"ref": "refs/heads/main", "after": "4f1c0de"}"#;
    let hook = server.url("/hooks/github/push");
    let send = |signature: Option<String>, body: &'static [u8], url: String| {
        let mut req = http.post(url).body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("X-Hub-Signature-256", s);
        }
        async move {
            let resp = req.send().await.expect("hook request");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("hook body"))
        }
    };

    // Refused: no signature, a signature made with another secret, a tampered body.
    let mut answers = Vec::new();
    for (sig, sent) in [
        (None, &body[..]),
        (Some(signature(body, "not-the-secret")), &body[..]),
        (
            Some(signature(body, HOOK_SECRET)),
            &br#"{"ref": "refs/heads/evil", "after": "4f1c0de"}"#[..],
        ),
    ] {
        let (status, text) = send(sig, sent, hook.clone()).await;
        assert_eq!(status, 401, "{text}");
        answers.push(text);
    }
    let (status, text) = send(
        Some(signature(body, HOOK_SECRET)),
        body,
        server.url("/hooks/nowhere"),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(run_count(&repo), 0, "a refused hook ran something");

    // Signed with the vault's secret: 202 and the run gets the body as inputs.body.
    let (status, text) = send(Some(signature(body, HOOK_SECRET)), body, hook.clone()).await;
    assert_eq!(status, 202, "{text}");
    answers.push(text.clone());
    let started: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(started["workflow"], "deploy");
    let id = started["id"].as_str().expect("run id").to_string();
    let client = Client::new();
    let events = client
        .events(&server.url(&format!("/api/v1/runs/{id}/events")), &reader)
        .await;
    assert_eq!(events.last().expect("events").0, "runFinished");
    let (_, run) = client
        .get(&server.url(&format!("/api/v1/runs/{id}")), Some(&reader))
        .await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["inputs"]["body"]["ref"], "refs/heads/main");
    let (_, pushed) = client
        .get(&server.url("/api/v1/data/w/pushed"), Some(&reader))
        .await;
    assert!(pushed.to_string().contains("refs/heads/main"), "{pushed:#}");

    // The schedule is listed with its next time; the route needs a token like the others.
    let (status, _) = client.get(&server.url("/api/v1/schedules"), None).await;
    assert_eq!(status, 401);
    let (status, schedules) = client
        .get(&server.url("/api/v1/schedules"), Some(&reader))
        .await;
    assert_eq!(status, 200, "{schedules}");
    assert_eq!(schedules[0]["workflow"], "deploy");
    assert_eq!(schedules[0]["schedule"], "0 3 1 1 *");
    assert!(schedules[0]["nextRun"].is_string(), "{schedules:#}");

    // The secret reached no answer, no API body and nothing the server logged.
    for text in &answers {
        assert!(!text.contains(HOOK_SECRET), "{text}");
    }
    client.assert_never_saw(HOOK_SECRET);
    server.signal(libc::SIGTERM);
    let (code, stderr) = server.wait();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(HOOK_SECRET), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn times_missed_while_no_server_ran_are_reported_at_start_and_not_run() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/w.yaml", "type: test/echo\n").write(
        "workflows/yearly.yaml",
        "name: yearly\ntriggers:\n  - schedule: \"0 3 1 1 *\"\njobs:\n  - name: main\n    steps:\n      \
         - name: a\n        task: { type: model_method, modelIdOrName: w, methodName: noop }\n",
    );
    // The schedule last fired on 1 January 2025 (UTC); 1 January 2026 passed with nothing running.
    repo.command(&["triggers", "run-due", "--now", "2025-01-01T03:00:10Z"])
        .env("TZ", "UTC")
        .status()
        .expect("run-due");
    assert_eq!(run_count(&repo), 1);
    let reader = token(&repo, "reader", "read", None);
    let client = Client::new();
    // A server told to fire no schedules lists them and leaves their state alone.
    let mut cmd = repo.command(&[]);
    cmd.env("TZ", "UTC");
    let quiet = Server::start(cmd, &["--no-schedules"]);
    let (_, schedules) = client
        .get(&quiet.url("/api/v1/schedules"), Some(&reader))
        .await;
    assert_eq!(schedules[0]["workflow"], "yearly", "{schedules:#}");
    assert_eq!(schedules[0]["missed"], 0, "{schedules:#}");
    assert!(!quiet.before.contains("missed"), "{}", quiet.before);
    drop(quiet);
    let mut cmd = repo.command(&[]);
    cmd.env("TZ", "UTC");
    let server = Server::start(cmd, &[]);
    let (_, schedules) = client
        .get(&server.url("/api/v1/schedules"), Some(&reader))
        .await;
    assert!(
        schedules[0]["nextRun"]
            .as_str()
            .is_some_and(|t| t.ends_with("-01-01T03:00:00.000Z")),
        "{schedules:#}"
    );
    // Reported before the server says it listens.
    let before = server.before.clone();
    assert!(
        before.contains("scheduled runs missed") && before.contains("yearly"),
        "{before}"
    );
    assert_eq!(schedules[0]["missed"], 1, "{schedules:#}");
    server.signal(libc::SIGTERM);
    let (code, rest) = server.wait();
    assert_eq!(code, Some(0), "{before}{rest}");
    assert_eq!(run_count(&repo), 1, "a missed time was run late");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_is_readable_as_soon_as_its_start_is_answered() {
    let (repo, _listener) = hanging_repo();
    let runner = token(&repo, "runner", "run", None);
    let server = Server::start(repo.command(&[]), &[]);
    let client = Client::new();
    for _ in 0..20 {
        let (status, started) = client
            .post(
                &server.url("/api/v1/runs"),
                &runner,
                json!({"workflow": "quick"}),
            )
            .await;
        assert_eq!(status, 202, "{started}");
        let id = started["id"].as_str().unwrap();
        let (status, run) = client
            .get(&server.url(&format!("/api/v1/runs/{id}")), Some(&runner))
            .await;
        assert_eq!(status, 200, "GET right after 202: {run}");
        assert_eq!(run["id"], id);
    }
    // The store itself has it, not only the server: another process finds it at once, and so
    // does a method run's.
    for body in [
        json!({"workflow": "quick"}),
        json!({"model": "w", "method": "write", "inputs": {"name": "x", "attributes": {}}}),
    ] {
        let (status, started) = client
            .post(&server.url("/api/v1/runs"), &runner, body)
            .await;
        assert_eq!(status, 202, "{started}");
        let id = started["id"].as_str().unwrap();
        let shown = repo.orch(&["--json", "runs", "show", id]).ok().json();
        assert_eq!(shown["id"], id, "orch runs show right after 202");
    }
}
