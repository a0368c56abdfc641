//! The web dashboard in a real browser: headless Chromium over WebDriver against `orch serve`
//! on the home-lab repository and the Proxmox simulator. Screenshots of every page land in
//! `target/test-artifacts/dashboard/`.

mod support;

use pve_sim::{SimConfig, WorldChange};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use support::browser::Browser;
use support::lab::{Lab, PASSWORD};

/// The name a VM gets in the simulator: shown as text, it must never become an element.
const XSS: &str = "<img src=x onerror=alert(1)>";

/// The VMs of the reference fleet that run, and the IPs their guest agents report.
const REFERENCE_IPS: &[(&str, &str)] = &[
    ("slate", "10.0.0.33"),
    ("calamity", "10.0.0.208"),
    ("allthemons", "10.0.0.96"),
    ("gold-image", "10.0.0.143"),
];

/// `orch serve` on a free loopback port, stopped when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(lab: &Lab) -> Served {
        Served::start_against(lab, &lab.sim.url())
    }

    /// A server whose runs reach Proxmox at `api_url`.
    fn start_against(lab: &Lab, api_url: &str) -> Served {
        let log = lab.repo.path().join("serve.log");
        let mut cmd = lab.repo.command(&[
            "--json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-schedules",
        ]);
        cmd.env("PROXMOX_API_URL", api_url)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("start orch serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // Keep reading, so a later line on stdout never meets a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let listening: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "orch serve did not print where it listens ({e}): {line}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let url = listening["listening"].as_str().unwrap().to_string();
        Served { child, url }
    }

    /// The dashboard URL of the hash route `route` (e.g. `#/fleet`).
    fn page(&self, route: &str) -> String {
        format!("{}/{route}", self.url)
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay to the simulator that holds every connection until opened, so a run stays in
/// flight (its first Proxmox call pending) for as long as the test needs.
struct Gate {
    port: u16,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    fn start(to: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let gate = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let gate = gate.clone();
                std::thread::spawn(move || {
                    let (lock, opened) = &*gate;
                    let mut is_open = lock.lock().unwrap();
                    while !*is_open {
                        is_open = opened.wait(is_open).unwrap();
                    }
                    drop(is_open);
                    let Ok(server) = TcpStream::connect(to) else {
                        return;
                    };
                    let (mut c_in, mut s_out) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c_in, &mut s_out);
                        let _ = s_out.shutdown(Shutdown::Write);
                    });
                    let (mut s_in, mut c_out) = (server, client);
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(Shutdown::Write);
                });
            }
        });
        Gate { port, open }
    }

    /// Lets every held and later connection through.
    fn open(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

/// The reference lab with VM 104 renamed to [`XSS`], its server and a `run` token.
fn lab_with_server() -> (Lab, Served, String) {
    let (lab, token) = lab_with_token();
    let served = Served::start(&lab);
    (lab, served, token)
}

/// The reference lab with VM 104 renamed to [`XSS`], a `nightly` schedule, and a `run` token.
fn lab_with_token() -> (Lab, String) {
    let lab = Lab::with_config(SimConfig::default());
    lab.sim
        .change(WorldChange::RenameGuest {
            vmid: 104,
            name: XSS.into(),
        })
        .unwrap();
    // A nightly schedule for the schedules page (servers here run with --no-schedules).
    lab.repo.write(
        "workflows/nightly.yaml",
        "name: nightly\ntriggers:\n  - schedule: \"0 3 * * *\"\njobs:\n  - name: main\n    steps:\n      \
         - name: sync\n        task: { type: workflow, workflowIdOrName: sync-fleet }\n",
    );
    let token = create_token(&lab, "dashboard", "run");
    (lab, token)
}

/// [`lab_with_token`] served with its Proxmox calls passing through a [`Gate`] the test opens.
fn gated_lab() -> (Lab, Gate, Served, String) {
    let (lab, token) = lab_with_token();
    let sim: SocketAddr = lab
        .sim
        .url()
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    let gate = Gate::start(sim);
    let served = Served::start_against(&lab, &gate.url());
    (lab, gate, served, token)
}

/// `orch token create NAME --scope SCOPE`: the token text, shown once.
fn create_token(lab: &Lab, name: &str, scope: &str) -> String {
    lab.orch(&["--json", "token", "create", name, "--scope", scope])
        .ok()
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn log_in(browser: &Browser, served: &Served, token: &str) {
    browser.goto(&served.page("#/login"));
    browser.wait_for("the login form", "document.querySelector('#token')");
    browser.fill("#token", token);
    browser.click("#login-submit");
    browser.wait_for(
        "the fleet page after logging in",
        "location.hash === '#/fleet' && document.querySelector('#whoami').textContent !== '' && \
         !document.querySelector('#nav').hidden && \
         document.querySelector('main h1')?.textContent.startsWith('Fleet')",
    );
}

/// Rows of the VM table as `[name, vmid, status, ip]`.
fn vm_rows(browser: &Browser) -> Vec<Vec<String>> {
    let rows = browser.eval(
        "return [...document.querySelectorAll('section[data-model=fleet] table.vms tbody tr')]
           .map((tr) => [...tr.children].slice(0, 4).map((td) => td.textContent));",
    );
    serde_json::from_value(rows).unwrap()
}

#[test]
fn dashboard_logs_in_starts_sync_fleet_and_shows_the_live_log_and_the_fleet() {
    let (lab, gate, served, token) = gated_lab();
    let browser = Browser::open("sync-fleet");

    log_in(&browser, &served, &token);
    assert!(
        !browser
            .eval("return location.href")
            .to_string()
            .contains(&token),
        "the token must never be in a URL"
    );
    browser.screenshot("1-fleet-before-sync");

    // The workflow list, then sync-fleet's page: its DAG and the form built from its inputs.
    browser.click("#nav a[href='#/workflows']");
    browser.wait_for(
        "the workflow list",
        "document.querySelector(\"#workflows a[href='#/workflows/sync-fleet']\")",
    );
    browser.screenshot("2-workflows");
    browser.click("#workflows a[href='#/workflows/sync-fleet']");
    browser.wait_for(
        "the sync-fleet graph and start form",
        "document.querySelectorAll('#dag g.node').length === 2 && document.querySelector('#start-form')",
    );
    let edges = browser.eval(
        "return [...document.querySelectorAll('#dag path[data-from]')].map((p) => [p.dataset.from, p.dataset.to]);",
    );
    assert_eq!(edges, json!([["sync.auth", "sync.sync"]]));
    browser.screenshot("2-workflow-sync-fleet");

    // Start it from the form; the run page streams its log while the run waits on Proxmox…
    browser.click("#start-submit");
    browser.wait_for(
        "the live log of the run in flight",
        "document.querySelector('#run-state')?.dataset.state === 'live' && \
         document.querySelector('#run-log [data-event=stepStarted]')",
    );
    let live = browser.eval(
        "return [document.querySelector('#run-status').textContent, \
                 [...document.querySelectorAll('#run-log [data-event]')].map((e) => e.dataset.event)];",
    );
    assert_eq!(
        live,
        json!(["running", ["runStarted", "stepStarted"]]),
        "the run is in flight, its first step waiting on the gate"
    );
    browser.screenshot("3-run-live");
    // …and on until it finishes once Proxmox answers.
    gate.open();
    browser.wait_for(
        "the run's live log to reach the finished state",
        "document.querySelector('#run-state')?.dataset.state === 'finished'",
    );
    let state = browser.eval(
        "const s = document.querySelector('#run-state'); \
         return [s.dataset.status, document.querySelector('#run-status').textContent, \
                 document.querySelector('#run-log').textContent];",
    );
    assert_eq!(state[0], "succeeded", "{state}");
    assert_eq!(state[1], "succeeded", "{state}");
    let log = state[2].as_str().unwrap();
    for line in [
        "sync.auth succeeded",
        "sync.sync succeeded",
        "synced 10 VMs",
    ] {
        assert!(log.contains(line), "live log lacks `{line}`:\n{log}");
    }
    let run_id = browser
        .eval("return location.hash.slice('#/runs/'.length)")
        .as_str()
        .unwrap()
        .to_string();
    browser.screenshot("4-run-finished");

    // The fleet: every VM with the reference IPs, the hostile name as plain text.
    browser.goto(&served.page("#/fleet"));
    browser.wait_for(
        "the VM table with 10 VMs",
        "document.querySelectorAll('section[data-model=fleet] table.vms tbody tr').length === 10",
    );
    let rows = vm_rows(&browser);
    for (name, ip) in REFERENCE_IPS {
        let row = rows.iter().find(|r| r[0] == *name);
        assert_eq!(
            row.map(|r| (r[2].as_str(), r[3].as_str())),
            Some(("running", *ip)),
            "{name}: {rows:?}"
        );
    }
    let xss = rows.iter().find(|r| r[1] == "104");
    assert_eq!(xss.map(|r| r[0].as_str()), Some(XSS), "{rows:?}");
    assert_eq!(
        browser.eval("return document.querySelectorAll('img').length"),
        0,
        "an <img> element was created from data"
    );
    assert_eq!(browser.open_dialog(), None, "a dialog opened");
    let text = browser
        .eval("return document.body.innerText")
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(XSS), "{text}");
    assert!(!text.contains(PASSWORD), "the vault password is shown");
    assert!(!text.contains("PVE:"), "a Proxmox ticket is shown:\n{text}");
    browser.screenshot("5-fleet");

    // A second sync from the CLI while the server runs: slate stopped, the history shows it.
    lab.sim
        .change(WorldChange::StopGuest { vmid: 100 })
        .unwrap();
    lab.orch(&["run", "sync-fleet"]).ok();
    browser.click("section[data-model=fleet] a[href='#/resource/fleet/vm%2Fslate']");
    browser.wait_for(
        "slate's diff between v1 and v2",
        "document.querySelector('#diff-lines')",
    );
    let diff = browser.text("#diff-lines").unwrap();
    assert!(
        diff.contains(r#"status: "running" → "stopped""#)
            && diff.contains(r#"ip: "10.0.0.33" → null"#),
        "{diff}"
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('#versions tbody tr').length"),
        2
    );
    browser.screenshot("6-resource-history");

    // Runs: the served run and the CLI run, both succeeded.
    browser.goto(&served.page("#/runs"));
    browser.wait_for(
        "both runs in the list",
        "document.querySelectorAll('#runs tbody tr').length === 2",
    );
    let runs = browser.eval(
        "return [...document.querySelectorAll('#runs tbody tr')].map((tr) => [tr.children[0].textContent, tr.children[3].textContent]);",
    );
    let runs: Vec<(String, String)> = serde_json::from_value(runs).unwrap();
    assert!(
        runs.iter().all(|(_, status)| status == "succeeded"),
        "{runs:?}"
    );
    assert!(runs.iter().any(|(id, _)| *id == run_id), "{runs:?}");
    browser.screenshot("7-runs");

    browser.goto(&served.page("#/schedules"));
    browser.wait_for(
        "the schedules page with the homelab's and the nightly schedule",
        "document.querySelectorAll('#schedules tbody tr').length === 2",
    );
    let rows = browser.eval(
        "return [...document.querySelectorAll('#schedules tbody tr')].map((tr) => tr.textContent);",
    );
    let rows: Vec<String> = serde_json::from_value(rows).unwrap();
    assert!(
        rows.iter()
            .any(|r| r.starts_with("nightly") && r.contains("0 3 * * *")),
        "{rows:?}"
    );
    browser.screenshot("8-schedules");

    // The hostile name on the resource page (title, attributes) is text as well.
    browser.goto(&served.page("#/fleet"));
    browser.wait_for(
        "the fleet table",
        "document.querySelectorAll('section[data-model=fleet] table.vms tbody tr').length === 10",
    );
    let xss = serde_json::to_string(XSS).unwrap();
    browser.eval(&format!(
        "[...document.querySelectorAll('section[data-model=fleet] tbody a')].find((a) => a.textContent === {xss}).click();"
    ));
    browser.wait_for(
        "the hostile VM's history",
        "document.querySelector('#versions') && document.querySelector('#diff-single')",
    );
    let title = browser.text("h1").unwrap();
    assert_eq!(title, format!("fleet / vm/{XSS}"));
    assert!(browser.text("#attributes").unwrap().contains(XSS));
    assert_eq!(
        browser.eval("return document.querySelectorAll('img').length"),
        0
    );
    assert_eq!(browser.open_dialog(), None, "a dialog opened");
    browser.screenshot("9-hostile-resource");

    browser.click("#logout");
    browser.wait_for(
        "the login page after logging out",
        "document.querySelector('#token') && sessionStorage.length === 0",
    );
}

#[test]
fn wrong_and_revoked_tokens_are_refused_and_a_read_token_cannot_start_a_run() {
    let (lab, served, token) = lab_with_server();
    let browser = Browser::open("wrong-token");
    browser.goto(&served.page(""));
    browser.wait_for("the login form", "document.querySelector('#token')");
    let wrong = format!("{}x", &token[..token.len() - 1]);
    browser.fill("#token", &wrong);
    browser.click("#login-submit");
    browser.wait_for(
        "the refusal",
        "document.querySelector('#login-error .error')",
    );
    let error = browser.text("#login-error").unwrap();
    assert!(error.contains("Token refused"), "{error}");
    assert_eq!(browser.eval("return sessionStorage.length"), 0);
    browser.screenshot("refused");

    // A page opened directly without a token goes back to the login form.
    browser.goto(&served.page("#/fleet"));
    browser.wait_for(
        "the login form instead of the fleet",
        "location.hash === '#/login' && document.querySelector('#token')",
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('table').length"),
        0
    );

    // A token revoked while its session is open: the next page is refused and the session
    // ends on the login form, saying why.
    log_in(&browser, &served, &token);
    lab.orch(&["token", "revoke", "dashboard"]).ok();
    browser.click("#nav a[href='#/runs']");
    browser.wait_for(
        "the login form after the revoked token was refused",
        "location.hash === '#/login' && document.querySelector('#login-error .error')",
    );
    let error = browser.text("#login-error").unwrap();
    assert!(error.contains("Token refused"), "{error}");
    assert_eq!(browser.eval("return sessionStorage.length"), 0);
    assert_eq!(browser.text("#whoami").as_deref(), Some(""));
    browser.screenshot("revoked-during-session");

    // Pasting it again is refused too.
    browser.fill("#token", &token);
    browser.click("#login-submit");
    browser.wait_for(
        "the refusal of the revoked token",
        "document.querySelector('#login-error .error')",
    );
    assert_eq!(browser.eval("return sessionStorage.length"), 0);

    // A read token logs in and sees, but starting a run shows orch's refusal and starts nothing.
    let read = create_token(&lab, "reader", "read");
    log_in(&browser, &served, &read);
    browser.goto(&served.page("#/workflows/sync-fleet"));
    browser.wait_for("the start form", "document.querySelector('#start-form')");
    browser.click("#start-submit");
    browser.wait_for(
        "the scope refusal",
        "document.querySelector('#start-error .error')",
    );
    let error = browser.text("#start-error").unwrap();
    assert!(
        error.contains("scope `read`") && error.contains("--scope run"),
        "{error}"
    );
    assert_eq!(lab.orch(&["--json", "runs", "list"]).ok().json(), json!([]));
    browser.screenshot("read-scope-cannot-start");
}

/// `GET path` over plain HTTP/1.1: the status line and headers (lower-cased), and the body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn the_page_is_served_without_a_token_under_a_policy_that_forbids_inline_script() {
    let (_lab, served, _token) = lab_with_server();
    let (head, body) = get(served.port(), "/");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let csp = head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .unwrap_or_else(|| panic!("no Content-Security-Policy on /:\n{head}"));
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(body.contains("/ui/app.js"), "{body}");
    let (head, body) = get(served.port(), "/ui/app.js");
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(
        body.contains("textContent") || body.contains("replace("),
        "{body}"
    );
    let (head, _) = get(served.port(), "/ui/../Cargo.toml");
    assert!(!head.starts_with("http/1.1 200"), "{head}");
    // The API itself still needs the token.
    let (head, _) = get(served.port(), "/api/v1/whoami");
    assert!(head.starts_with("http/1.1 401"), "{head}");
}

/// A workflow whose inputs use every kind the start form builds a field for.
const TYPED_INPUTS: &str = "name: typed-inputs
description: Takes one input of each kind
inputs:
  type: object
  required: [name]
  properties:
    name: { type: string, description: the guest's name }
    count: { type: integer, default: 3 }
    ratio: { type: number }
    dry: { type: boolean, default: true }
    mode: { enum: [fast, slow], default: slow }
jobs:
  - name: main
    steps:
      - name: auth
        task: { type: model_method, modelIdOrName: keebDev02, methodName: auth }
";

#[test]
fn the_start_form_is_built_from_the_inputs_schema_and_sends_typed_values() {
    let lab = Lab::with_config(SimConfig::default());
    lab.repo.write("workflows/typed-inputs.yaml", TYPED_INPUTS);
    let token = create_token(&lab, "form", "run");
    let served = Served::start(&lab);
    let browser = Browser::open("typed-inputs");
    log_in(&browser, &served, &token);
    browser.goto(&served.page("#/workflows/typed-inputs"));
    browser.wait_for("the start form", "document.querySelector('#input-mode')");
    let fields = browser.eval(
        "return ['name', 'count', 'ratio', 'dry', 'mode'].map((n) => {
           const e = document.querySelector('#input-' + n);
           return [e.tagName.toLowerCase(), e.type, e.type === 'checkbox' ? String(e.checked) : e.value];
         });",
    );
    assert_eq!(
        fields,
        json!([
            ["input", "text", ""],
            ["input", "number", "3"],
            ["input", "number", ""],
            ["input", "checkbox", "true"],
            ["select", "select-one", "1"],
        ]),
        "defaults are filled in"
    );
    browser.screenshot("form");

    // The required name is missing: nothing starts.
    browser.click("#start-submit");
    browser.wait_for(
        "the missing-input message",
        "document.querySelector('#start-form .form-error .error')",
    );
    let error = browser.text("#start-form .form-error").unwrap();
    assert!(error.contains("name is required"), "{error}");
    let runs = lab.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(runs, json!([]), "a run started without its input");

    browser.fill("#input-name", "web");
    browser.fill("#input-ratio", "0.5");
    browser.click("#input-dry");
    browser.click("#start-submit");
    browser.wait_for(
        "the run to finish",
        "document.querySelector('#run-state')?.dataset.status === 'succeeded'",
    );
    let id = browser
        .eval("return location.hash.slice('#/runs/'.length)")
        .as_str()
        .unwrap()
        .to_string();
    let record = lab.orch(&["--json", "runs", "show", &id]).ok().json();
    assert_eq!(
        record["inputs"],
        json!({"name": "web", "count": 3, "ratio": 0.5, "dry": false, "mode": "slow"}),
        "{record}"
    );
}

#[test]
fn a_run_in_flight_is_cancelled_from_its_page() {
    // Never opened: the run's first Proxmox call waits until the run is cancelled.
    let (lab, _gate, served, token) = gated_lab();
    let browser = Browser::open("cancel");
    log_in(&browser, &served, &token);
    browser.goto(&served.page("#/workflows/sync-fleet"));
    browser.wait_for("the start form", "document.querySelector('#start-form')");
    browser.click("#start-submit");
    browser.wait_for(
        "the run in flight with its cancel button",
        "document.querySelector('#run-log [data-event=stepStarted]') && \
         !document.querySelector('#run-cancel').hidden",
    );
    browser.click("#run-cancel");
    browser.wait_for(
        "the run to end cancelled",
        "['finished', 'ended'].includes(document.querySelector('#run-state')?.dataset.state)",
    );
    assert_eq!(
        browser.text("#run-status").as_deref(),
        Some("cancelled"),
        "{:?}",
        browser.text("#run-log")
    );
    browser.screenshot("cancelled");
    let id = browser
        .eval("return location.hash.slice('#/runs/'.length)")
        .as_str()
        .unwrap()
        .to_string();
    let record = lab.orch(&["--json", "runs", "show", &id]).ok().json();
    assert_eq!(record["status"], "cancelled", "{record}");
}

#[test]
fn the_pages_event_stream_parser_handles_split_chunks_crlf_comments_and_multiline_data() {
    let (_lab, served, _token) = lab_with_server();
    let browser = Browser::open("sse-parser");
    browser.goto(&served.page("#/login"));
    browser.wait_for("the login form", "document.querySelector('#token')");
    // The module the run page reads `GET /api/v1/runs/{id}/events` with, fed the way a network
    // may cut the stream: mid-line, between \r and \n, with comments and keep-alives.
    let events = browser.eval_async(
        "const done = arguments[arguments.length - 1];
         import('/ui/sse.js').then(({ EventStreamParser }) => {
           const got = [];
           const parser = new EventStreamParser((e) => got.push([e.event, e.data]));
           for (const chunk of ['event: stepStarted\\r', '\\ndata: {\"step\":', '\"a\"}\\r\\n\\r\\n',
                                ': keep-alive\\n\\n', 'event: log\\ndata: one\\ndata: two\\n\\n',
                                'data: plain\\n\\n', 'event: runFinished\\ndata: {}\\n']) {
             parser.push(chunk);
           }
           parser.end();
           done(got);
         }, (e) => done(String(e)));",
    );
    assert_eq!(
        events,
        json!([
            ["stepStarted", "{\"step\":\"a\"}"],
            ["log", "one\ntwo"],
            ["message", "plain"],
        ]),
        "an event without its closing blank line is dropped, as EventSource does"
    );
}
