//! Workers: a coordinator (`orch run`) and `orch worker` processes on one PostgreSQL datastore
//! (Debian's `postgresql`, started by `support::postgres`), against the Proxmox simulator.
//! Steps with `runsOn` go to the workers whose labels they name; the simulator's request log
//! shows each ran once; a worker killed with SIGKILL mid-step leaves its step `outcome
//! unknown`; no secret reaches the database.

mod support;

use pve_sim::SimConfig;
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::lab::{self, Lab};
use support::postgres;

/// One `orch worker` process, killed when dropped.
struct Worker {
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    fn start(lab: &Lab, name: &str, labels: &str) -> Worker {
        Worker::start_with(lab, name, labels, 1)
    }

    fn start_with(lab: &Lab, name: &str, labels: &str, concurrency: usize) -> Worker {
        let log = lab.repo.path().join(format!(".orch/{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = lab
            .repo
            .command(&[
                "worker",
                "--name",
                name,
                "--labels",
                labels,
                "--lease-seconds",
                "5",
                "--concurrency",
                &concurrency.to_string(),
            ])
            .env("PROXMOX_API_URL", lab.sim.url())
            .env("PGPASSWORD", postgres::PASSWORD)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start orch worker");
        Worker { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lab whose orch.yaml names a fresh, migrated PostgreSQL database; returns it and its name.
fn lab_on_postgres(config: SimConfig) -> (Lab, String) {
    lab_on_postgres_with(config, "")
}

/// [`lab_on_postgres`] with more `datastore:` settings (indented lines).
fn lab_on_postgres_with(config: SimConfig, settings: &str) -> (Lab, String) {
    let lab = Lab::with_config(config);
    let url = postgres::fresh_database();
    let path = lab.repo.path().join("orch.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("datastore:\n  postgres: \"{url}\"\n{settings}"));
    std::fs::write(&path, text).unwrap();
    orch(&lab, &["datastore", "migrate"]).ok();
    let db = url.rsplit('/').next().unwrap().to_string();
    (lab, db)
}

/// `orch ARGS` in the lab with the simulator and the database password.
fn orch(lab: &Lab, args: &[&str]) -> support::Run {
    let mut cmd = lab.repo.command(args);
    cmd.env("PROXMOX_API_URL", lab.sim.url())
        .env("PGPASSWORD", postgres::PASSWORD);
    support::Run::from_output(cmd.output().unwrap())
}

/// `orch --json run WORKFLOW` started in the lab (the coordinator), its output piped.
fn spawn_run(lab: &Lab, workflow: &str) -> Child {
    lab.repo
        .command(&["--json", "run", workflow])
        .env("PROXMOX_API_URL", lab.sim.url())
        .env("PGPASSWORD", postgres::PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A step calling `model.method` with `inputs` (YAML flow map), on `runsOn` labels.
fn step(name: &str, runs_on: Option<&str>, model: &str, method: &str, inputs: &str) -> String {
    let runs_on = runs_on
        .map(|l| format!("        runsOn: [{l}]\n"))
        .unwrap_or_default();
    let depends = if name == "auth" {
        String::new()
    } else {
        "        dependsOn: [ { step: auth, condition: { type: succeeded } } ]\n".to_string()
    };
    format!(
        "      - name: {name}\n{runs_on}{depends}        task: {{ type: model_method, \
         modelIdOrName: {model}, methodName: {method}, inputs: {inputs} }}\n"
    )
}

fn workflow(name: &str, steps: &[String]) -> String {
    format!(
        "name: {name}\ndescription: steps spread over workers\njobs:\n  - name: fleet\n    steps:\n{}",
        steps.concat()
    )
}

/// The step records of run `id`, by step name.
fn steps_of(lab: &Lab, id: &str) -> Vec<Value> {
    let run = orch(lab, &["--json", "runs", "show", id]).ok().json();
    run["steps"].as_array().cloned().unwrap_or_default()
}

/// The running VMs of `SimConfig::generated(1, guests, 0)`: (name, vmid).
fn running_vms(guests: usize) -> Vec<(String, u32)> {
    (0..guests)
        .filter(|i| i % 2 == 0 && i % 5 != 4)
        .map(|i| (format!("vm-{:05}", i + 1), 1000 + i as u32))
        .collect()
}

#[test]
fn runs_on_steps_run_once_on_the_workers_with_their_labels_and_no_secret_reaches_postgres() {
    let (lab, db) = lab_on_postgres(SimConfig::generated(1, 50, 0));
    let vms = running_vms(50);
    assert_eq!(vms.len(), 20);
    // auth logs in with the vault's password: it runs on site-b, from site-b's vault.
    let mut steps = vec![step("auth", Some("site-b"), "keebDev02", "auth", "{}")];
    for (i, (vm, _)) in vms.iter().enumerate() {
        let labels = if i % 2 == 0 { Some("site-a") } else { Some("") };
        steps.push(step(
            &format!("lookup-{vm}"),
            labels,
            "fleet",
            "lookup",
            &format!("{{ vmName: {vm} }}"),
        ));
    }
    lab.repo
        .write("workflows/spread.yaml", &workflow("spread", &steps));
    let a = Worker::start(&lab, "w-a", "site-a");
    let b = Worker::start(&lab, "w-b", "site-b");

    let run = orch(&lab, &["--json", "run", "spread"]);
    assert_eq!(
        run.code,
        0,
        "{}\nworker a:\n{}\nworker b:\n{}",
        run.all(),
        a.output(),
        b.output()
    );
    let id = run.json()["id"].as_str().unwrap_or_default().to_string();
    let records = steps_of(&lab, &id);
    assert_eq!(records.len(), 21, "{records:?}");
    // The coordinator's events show where each step ran and what it wrote.
    let events = orch(&lab, &["--json", "runs", "show", &id]).ok().json()["events"].clone();
    let text = events.to_string();
    assert!(text.contains("ran on worker `w-b`"), "{text}");
    assert!(text.contains("\"vm-00001\""), "{text}");
    for r in &records {
        assert_eq!(r["status"], "succeeded", "{r}");
        let name = r["name"].as_str().unwrap();
        let worker = r["worker"]
            .as_str()
            .unwrap_or_else(|| panic!("no worker: {r}"));
        if name == "auth" {
            assert_eq!(worker, "w-b", "runsOn: [site-b] runs only on w-b");
        }
    }
    for (i, (vm, _)) in vms.iter().enumerate() {
        let r = records
            .iter()
            .find(|r| r["name"] == format!("lookup-{vm}").as_str())
            .unwrap();
        if i % 2 == 0 {
            assert_eq!(r["worker"], "w-a", "runsOn: [site-a] runs only on w-a: {r}");
        }
        assert_eq!(r["resources"][0], format!("vm/{vm}@v1").as_str(), "{r}");
    }
    // Each lookup asked the simulator once: no step ran twice.
    let requests = lab.sim.requests();
    for (_, vmid) in &vms {
        let path = format!("/qemu/{vmid}/agent/network-get-interfaces");
        let n = requests.iter().filter(|r| r.ends_with(&path)).count();
        assert_eq!(n, 1, "{path} asked {n} times: {requests:?}");
    }

    let listed = orch(&lab, &["--json", "worker", "list"]).ok().json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w-a", "w-b"], "{listed}");
    assert_eq!(listed[0]["labels"][0], "site-a");
    assert_eq!(listed[1]["labels"][0], "site-b");
    assert_eq!(listed[0]["connected"], true, "{listed}");
    let human = orch(&lab, &["worker", "list"]).ok();
    assert!(human.stdout.contains("w-b  [site-b]"), "{}", human.stdout);

    // A step whose inputs hold a vault secret is refused before anything is queued.
    lab.repo.write(
        "workflows/leaky.yaml",
        &workflow(
            "leaky",
            &[step(
                "auth",
                Some(""),
                "fleet",
                "lookup",
                "{ vmName: '${{ vault.get(\"proxmox-vault\", \"password\") }}' }",
            )],
        ),
    );
    let leaky = orch(&lab, &["run", "leaky"]);
    assert_ne!(leaky.code, 0, "{}", leaky.all());
    assert!(
        leaky.all().contains("nothing was queued"),
        "{}",
        leaky.all()
    );
    assert!(!leaky.all().contains(lab::PASSWORD), "{}", leaky.all());

    let dump = postgres::server().dump(&db);
    assert!(dump.contains("orch_queue"), "the queue is in the dump");
    assert!(
        dump.contains("lookup-vm-00001"),
        "the steps' provenance is in the dump"
    );
    let queued = postgres::server().psql_in(&db, "SELECT count(*) FROM orch_queue");
    assert_eq!(queued.trim(), "0", "finished steps leave the queue");
    assert!(
        !dump.contains(lab::PASSWORD),
        "the Proxmox password reached PostgreSQL"
    );
    assert!(
        !dump.contains(postgres::PASSWORD),
        "the PostgreSQL password was stored"
    );
    drop((a, b));
}

#[test]
fn a_worker_killed_mid_step_leaves_its_action_outcome_unknown_and_the_run_fails() {
    // Guests' agents never answer: `start` keeps asking for an address until it gives up.
    let (lab, _db) = lab_on_postgres(SimConfig {
        agent_warmup: u32::MAX,
        ..SimConfig::generated(1, 10, 0)
    });
    // vm-00002 (vmid 1001) is stopped; vm-00004 and vm-00006 too.
    let steps = vec![
        step("auth", Some("site-b"), "keebDev02", "auth", "{}"),
        step(
            "start",
            Some("site-a"),
            "fleet",
            "start",
            "{ vmName: vm-00002, waitForIpSeconds: 100 }",
        ),
        step(
            "lookup-4",
            Some("site-b"),
            "fleet",
            "lookup",
            "{ vmName: vm-00004 }",
        ),
        step(
            "lookup-6",
            Some("site-b"),
            "fleet",
            "lookup",
            "{ vmName: vm-00006 }",
        ),
    ];
    lab.repo
        .write("workflows/killed.yaml", &workflow("killed", &steps));
    let mut a = Worker::start(&lab, "w-a", "site-a");
    let b = Worker::start(&lab, "w-b", "site-b");
    let coordinator = spawn_run(&lab, "killed");
    // Kill w-a once the simulator saw it start the VM (the step is mid-call).
    let start = "POST /api2/json/nodes/keeb-dev-02/qemu/1001/status/start";
    wait_for_request(&lab, start, &a);
    a.child.kill().expect("SIGKILL w-a");
    a.child.wait().unwrap();
    let out = coordinator.wait_with_output().unwrap();
    let run = support::Run::from_output(out);
    assert_ne!(run.code, 0, "{}", run.all());
    let id = run.json()["id"].as_str().unwrap_or_default().to_string();
    let records = steps_of(&lab, &id);
    let by = |n: &str| records.iter().find(|r| r["name"] == n).cloned().unwrap();
    let start_record = by("start");
    assert_eq!(start_record["status"], "failed", "{start_record}");
    assert_eq!(start_record["outcome"], "unknown", "{start_record}");
    assert_eq!(start_record["worker"], "w-a", "{start_record}");
    assert!(
        start_record["error"]
            .as_str()
            .unwrap()
            .contains("outcome unknown"),
        "{start_record}"
    );
    for n in ["auth", "lookup-4", "lookup-6"] {
        assert_eq!(by(n)["status"], "succeeded", "{}", by(n));
        assert_eq!(by(n)["worker"], "w-b", "{}", by(n));
    }
    // The start was sent once: nobody ran it again.
    let starts = lab.sim.requests().iter().filter(|r| *r == start).count();
    assert_eq!(starts, 1);
    let listed = orch(&lab, &["--json", "worker", "list"]).ok().json();
    assert_eq!(listed[0]["name"], "w-a");
    assert_eq!(listed[0]["connected"], false, "{listed}");
    assert_eq!(listed[1]["connected"], true, "{listed}");
    drop(b);
}

#[test]
fn a_converge_step_of_a_killed_worker_runs_again_on_another_worker_and_changes_nothing_twice() {
    // The agents never answer: converge starts the VM, then waits for its address.
    let (lab, _db) = lab_on_postgres(SimConfig {
        agent_warmup: u32::MAX,
        ..SimConfig::generated(1, 10, 0)
    });
    lab.repo.write(
        "models/guests.yaml",
        r#"type: proxmox/guests
description: One declared guest, started and waited for
globalArguments:
  apiUrl: ${{ env.PROXMOX_API_URL }}
  node: ${{ env.PROXMOX_NODE }}
  ticket: ${{ model.keebDev02.resource.node.node.attributes.ticket }}
  csrfToken: ${{ model.keebDev02.resource.node.node.attributes.csrfToken }}
  insecureTls: true
  guests:
    - { name: vm-00002, kind: qemu, vmid: 1001, waitForAgent: true }
"#,
    );
    let steps = vec![
        step("auth", Some("site-b"), "keebDev02", "auth", "{}"),
        step("converge", Some("site-a"), "guests", "converge", "{}"),
    ];
    lab.repo
        .write("workflows/again.yaml", &workflow("again", &steps));
    let mut a = Worker::start(&lab, "w-a", "site-a");
    let b = Worker::start(&lab, "w-b", "site-b");
    let coordinator = spawn_run(&lab, "again");
    let start = "POST /api2/json/nodes/keeb-dev-02/qemu/1001/status/start";
    wait_for_request(&lab, start, &a);
    // Killed while it waits for the agent, after its start took effect.
    let deadline = Instant::now() + Duration::from_secs(120);
    while lab.sim.guest_status(1001).as_deref() != Some("running") {
        assert!(Instant::now() < deadline, "vm-00002 never started");
        std::thread::yield_now();
    }
    a.child.kill().expect("SIGKILL w-a");
    a.child.wait().unwrap();
    // Another site-a worker takes the converge step once w-a's lease ran out.
    let c = Worker::start(&lab, "w-c", "site-a");
    let run = support::Run::from_output(coordinator.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}\nw-c:\n{}", run.all(), c.output());
    let record = run.json();
    let converge = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "converge")
        .cloned()
        .unwrap();
    assert_eq!(converge["status"], "succeeded", "{converge}");
    assert_eq!(converge["worker"], "w-c", "{converge}");
    assert_eq!(converge["outcome"], Value::Null, "{converge}");
    // The VM was started once: the converge run again found it running and left it alone.
    let starts = lab.sim.requests().iter().filter(|r| *r == start).count();
    assert_eq!(starts, 1, "{:?}", lab.sim.requests());
    assert_eq!(lab.sim.guest_status(1001).as_deref(), Some("running"));
    drop((b, c));
}

/// Returns once the simulator has received `request` (`METHOD /path`).
fn wait_for_request(lab: &Lab, request: &str, worker: &Worker) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    loop {
        let count = lab.sim.request_count();
        if count != seen {
            seen = count;
            if lab.sim.requests().iter().any(|r| r == request) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{request} never reached the simulator: {:?}\n{}",
            lab.sim.requests(),
            worker.output()
        );
        std::thread::yield_now();
    }
}

#[test]
fn two_hundred_steps_over_three_workers_one_killed_mid_run_all_run_and_versions_stay_contiguous() {
    let (lab, db) = lab_on_postgres(SimConfig::generated(1, 500, 0));
    let vms = running_vms(500);
    assert_eq!(vms.len(), 200);
    let mut steps = vec![step("auth", Some(""), "keebDev02", "auth", "{}")];
    for (i, (vm, _)) in vms.iter().enumerate() {
        let labels = if i % 4 == 0 { "site-b" } else { "" };
        steps.push(step(
            &format!("lookup-{vm}"),
            Some(labels),
            "fleet",
            "lookup",
            &format!("{{ vmName: {vm} }}"),
        ));
    }
    lab.repo
        .write("workflows/big.yaml", &workflow("big", &steps));
    let mut one = Worker::start_with(&lab, "w-1", "site-a", 2);
    let two = Worker::start_with(&lab, "w-2", "site-a", 2);
    let three = Worker::start_with(&lab, "w-3", "site-b", 2);
    let coordinator = spawn_run(&lab, "big");
    // SIGKILL w-1 once a third of the lookups reached the simulator.
    let agent = |r: &String| r.ends_with("/agent/network-get-interfaces");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = 0;
    loop {
        let count = lab.sim.request_count();
        if count != seen {
            seen = count;
            if lab.sim.requests().iter().filter(|r| agent(r)).count() >= 70 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "{}", one.output());
        std::thread::yield_now();
    }
    one.child.kill().expect("SIGKILL w-1");
    one.child.wait().unwrap();
    let run = support::Run::from_output(coordinator.wait_with_output().unwrap());
    assert_eq!(
        run.code,
        0,
        "{}\nw-2:\n{}\nw-3:\n{}",
        run.all(),
        two.output(),
        three.output()
    );
    let record = run.json();
    let records = record["steps"].as_array().unwrap();
    assert_eq!(records.len(), 201);
    for r in records {
        // Lookups are reads: a lost one ran again, none is `outcome unknown`.
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["outcome"], Value::Null, "{r}");
        let worker = r["worker"].as_str().unwrap();
        assert!(["w-1", "w-2", "w-3"].contains(&worker), "{r}");
    }
    for (i, (vm, _)) in vms.iter().enumerate() {
        let r = records
            .iter()
            .find(|r| r["name"] == format!("lookup-{vm}").as_str())
            .unwrap();
        if i % 4 == 0 {
            assert_eq!(r["worker"], "w-3", "{r}");
        }
    }
    // Each lookup reached the simulator once, but for the (at most 2) steps w-1 held when it
    // was killed, which ran again.
    let requests = lab.sim.requests();
    let mut again = 0;
    for (_, vmid) in &vms {
        let path = format!("/qemu/{vmid}/agent/network-get-interfaces");
        match requests.iter().filter(|r| r.ends_with(&path)).count() {
            1 => {}
            2 => again += 1,
            n => panic!("{path} asked {n} times"),
        }
    }
    assert!(again <= 2, "{again} lookups ran twice");
    // One version per VM, none missing or duplicated: a lookup run again stored no new one.
    let versions = postgres::server().psql_in(
        &db,
        "SELECT count(*), count(DISTINCT name), min(version), max(version) \
         FROM orch_resource_versions WHERE model = 'fleet' AND spec = 'vm'",
    );
    assert_eq!(versions.trim(), "200|200|1|1", "{versions}");
    let listed = orch(&lab, &["--json", "worker", "list"]).ok().json();
    let connected: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["connected"] == true))
        .collect();
    // w-1 shows as gone once its last heartbeat is older than its lease.
    assert_eq!(connected[0].0, "w-1", "{listed}");
    assert_eq!(connected[1..], [("w-2", true), ("w-3", true)], "{listed}");
    drop((two, three));
}

/// A read step whose worker died after committing its writes, before it returned the output,
/// runs again on another worker instead of failing the run: repeating a read is safe, and its
/// unchanged write stores no new version. The dead worker is played by the queue row itself,
/// marked `committed` by worker `ghost` with a lease that has run out, so the window is hit
/// every time (a real kill lands in it only by chance).
#[test]
fn a_read_step_whose_worker_died_after_its_commit_runs_again_elsewhere() {
    let (lab, db) = lab_on_postgres(SimConfig::generated(1, 2, 0));
    let steps = [
        step("auth", None, "keebDev02", "auth", "{}"),
        step(
            "lookup",
            Some("site-x"),
            "fleet",
            "lookup",
            "{ vmName: vm-00001 }",
        ),
    ];
    lab.repo
        .write("workflows/lost.yaml", &workflow("lost", &steps));
    let coordinator = spawn_run(&lab, "lost");
    // No worker has label site-x yet: the step waits in the queue until it is "committed".
    wait_for_sql(
        &db,
        "SELECT state FROM orch_queue WHERE method = 'lookup'",
        "ready",
    );
    postgres::server().psql_in(
        &db,
        "UPDATE orch_queue SET state = 'committed', worker = 'ghost', \
         lease_until = now() - interval '1 second' WHERE method = 'lookup'",
    );
    wait_for_sql(
        &db,
        "SELECT state || ' ' || array_to_string(lost_workers, ',') FROM orch_queue \
         WHERE method = 'lookup'",
        "ready ghost",
    );
    let worker = Worker::start(&lab, "w-x", "site-x");
    let run = support::Run::from_output(coordinator.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}\nw-x:\n{}", run.all(), worker.output());
    let record = run.json();
    let lookup = &record["steps"][1];
    assert_eq!(lookup["name"], "lookup", "{record}");
    assert_eq!(lookup["worker"], "w-x", "{lookup}");
    assert_eq!(lookup["status"], "succeeded", "{lookup}");
    drop(worker);
}

#[test]
fn runs_on_without_the_postgres_datastore_fails_the_step_at_its_line() {
    let lab = Lab::with_config(SimConfig::default());
    lab.repo.write(
        "workflows/remote.yaml",
        &workflow(
            "remote",
            &[step("auth", Some("site-b"), "keebDev02", "auth", "{}")],
        ),
    );
    let run = lab.orch(&["run", "remote"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all()
            .contains("workflows/remote.yaml:7: jobs[0].steps[0].runsOn: steps with runsOn"),
        "{}",
        run.all()
    );
    assert!(run.all().contains("datastore"), "{}", run.all());
    // `orch check` says so before anything runs.
    let check = lab.orch(&["check"]);
    assert_ne!(check.code, 0, "{}", check.all());
    assert!(
        check
            .all()
            .contains("workflows/remote.yaml:7: jobs[0].steps[0].runsOn:"),
        "{}",
        check.all()
    );
    // Nothing else changed: the same step without runsOn runs here.
    lab.repo.write(
        "workflows/local.yaml",
        &workflow("local", &[step("auth", None, "keebDev02", "auth", "{}")]),
    );
    lab.orch(&["run", "local"]).ok();
}

#[test]
fn a_worker_without_the_step_s_plugin_refuses_it_naming_plugin_and_version() {
    let (lab, _db) = lab_on_postgres(SimConfig::default());
    // Another machine: its own repository with the models and the datastore, but no plugins.
    let bare = support::TestRepo::new(&[]);
    for file in ["models/keebDev02.yaml", "models/fleet.yaml", "orch.yaml"] {
        std::fs::copy(lab.repo.path().join(file), bare.path().join(file)).unwrap();
    }
    let log = bare.path().join(".orch/worker.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = bare
        .command(&["worker", "--name", "bare", "--labels", "site-x"])
        .env("PGPASSWORD", postgres::PASSWORD)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let _bare = Worker { child, log };
    lab.repo.write(
        "workflows/elsewhere.yaml",
        &workflow(
            "elsewhere",
            &[step("auth", Some("site-x"), "keebDev02", "auth", "{}")],
        ),
    );
    let run = orch(&lab, &["--json", "run", "elsewhere"]);
    assert_ne!(run.code, 0, "{}", run.all());
    let auth = &run.json()["steps"][0];
    assert_eq!(auth["worker"], "bare", "{auth}");
    let error = auth["error"].as_str().unwrap();
    assert!(
        error.contains("worker `bare` refused step fleet.auth: it needs plugin `proxmox`"),
        "{error}"
    );
    assert!(
        error.contains("it has no plugin providing type proxmox/node"),
        "{error}"
    );
    assert_eq!(lab.sim.request_count(), 0, "nothing reached Proxmox");
}

#[test]
fn orch_serve_is_a_coordinator_too() {
    use std::io::{BufRead, BufReader};
    let (lab, _db) = lab_on_postgres(SimConfig::default());
    lab.repo.write(
        "workflows/served.yaml",
        &workflow(
            "served",
            &[step("auth", Some("site-b"), "keebDev02", "auth", "{}")],
        ),
    );
    let _b = Worker::start(&lab, "w-b", "site-b");
    let token = orch(
        &lab,
        &["--json", "token", "create", "bot", "--scope", "run"],
    )
    .ok()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut serve = lab
        .repo
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("PROXMOX_API_URL", lab.sim.url())
        .env("PGPASSWORD", postgres::PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("orch serve ended").unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    let serve = Worker {
        child: serve,
        log: lab.repo.path().join(".orch/none.log"),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let id = runtime.block_on(async {
        let http = reqwest::Client::new();
        let started: Value = http
            .post(format!("{url}/api/v1/runs"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "workflow": "served" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = started["id"].as_str().expect("id").to_string();
        // The event stream ends when the run does.
        http.get(format!("{url}/api/v1/runs/{id}/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        id
    });
    drop(serve);
    let record = orch(&lab, &["--json", "runs", "show", &id]).ok().json();
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["steps"][0]["worker"], "w-b", "{record}");
}

#[test]
fn a_worker_stops_on_sigterm_and_shows_as_gone() {
    let (lab, _db) = lab_on_postgres(SimConfig::default());
    let mut w = Worker::start(&lab, "w-t", "site-t");
    // Registered: it is listed with its labels.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = orch(&lab, &["--json", "worker", "list"]).ok().json();
        if listed[0]["name"] == "w-t" {
            assert_eq!(listed[0]["labels"], serde_json::json!(["site-t"]));
            assert_eq!(listed[0]["connected"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never registered: {}",
            w.output()
        );
        std::thread::yield_now();
    }
    // SAFETY: kill(2) on the child this test spawned.
    assert_eq!(
        unsafe { libc::kill(w.child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = w.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", w.output());
    let listed = orch(&lab, &["--json", "worker", "list"]).ok().json();
    assert_eq!(listed[0]["connected"], false, "{listed}");
}

/// Installs the test plugin in the lab's repository, with a model `web` whose requests may
/// reach `base_url`.
fn install_testplug(lab: &Lab, base_url: &str) {
    lab.repo.install("testplug");
    lab.repo.write(
        "models/web.yaml",
        &format!("type: test/echo\nglobalArguments:\n  baseUrl: \"{base_url}\"\n"),
    );
}

/// An HTTP server that holds the first request it gets (handed to the test) and answers every
/// later one at once.
fn held_server() -> (String, std::sync::mpsc::Receiver<std::net::TcpStream>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            if i == 0 {
                let _ = tx.send(stream);
            } else {
                let _ = stream.write_all(PONG.as_bytes());
            }
        }
    });
    (url, rx)
}

const PONG: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong";

/// Sends `signal` to a worker process.
fn signal(worker: &Worker, signal: libc::c_int) {
    // SAFETY: kill(2) on a child this test spawned.
    assert_eq!(
        unsafe { libc::kill(worker.child.id() as libc::pid_t, signal) },
        0
    );
}

/// Polls `sql` in `db` until it prints `want`, for up to two minutes.
fn wait_for_sql(db: &str, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = postgres::server().psql_in(db, sql);
        if got.trim() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {got:?}, waited for {want:?}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_worker_that_lost_its_lease_commits_nothing_and_the_step_runs_once_elsewhere() {
    let (lab, db) = lab_on_postgres(SimConfig::generated(1, 2, 0));
    let (url, held) = held_server();
    install_testplug(&lab, &url);
    let fetch = format!(
        "      - name: fetch\n        runsOn: [site-a]\n        task: {{ type: model_method, \
         modelIdOrName: web, methodName: fetch, inputs: {{ url: \"{url}/ping\" }} }}\n"
    );
    lab.repo
        .write("workflows/held.yaml", &workflow("held", &[fetch]));
    let a = Worker::start(&lab, "w-a", "site-a");
    let coordinator = spawn_run(&lab, "held");
    // w-a's request is held; then w-a stops (SIGSTOP), so its heartbeat stops too.
    let first = held
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("w-a never fetched:\n{}", a.output()));
    signal(&a, libc::SIGSTOP);
    // Once w-a's lease ran out, the coordinator gives the read step to w-b, which finishes it.
    let b = Worker::start(&lab, "w-b", "site-a");
    let run = support::Run::from_output(coordinator.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}\nw-b:\n{}", run.all(), b.output());
    let record = run.json();
    let step = &record["steps"][0];
    assert_eq!(step["worker"], "w-b", "{step}");
    assert_eq!(step["resources"][0], "response/last@v1", "{step}");
    // w-a wakes up, gets its answer and tries to commit its write: refused, nothing stored.
    {
        use std::io::Write;
        let mut first = first;
        // Another body than w-b's, so a write would be a new version, not a sighting.
        first
            .write_all(PONG.replace("pong", "late").as_bytes())
            .unwrap();
    }
    signal(&a, libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !a.output().contains("no longer holds queued step") {
        assert!(
            Instant::now() < deadline,
            "w-a never reported its lost lease:\n{}",
            a.output()
        );
        std::thread::yield_now();
    }
    let id = record["id"].as_str().unwrap();
    let versions = postgres::server().psql_in(
        &db,
        "SELECT string_agg(version || ' ' || run_id, ',') FROM orch_resource_versions \
         WHERE spec = 'response'",
    );
    assert_eq!(
        versions.trim(),
        format!("1 {id}"),
        "only w-b's version is stored"
    );
    drop((a, b));
}

#[test]
fn the_queued_steps_of_a_killed_coordinator_are_dropped_unrun_and_a_live_one_s_run_with_their_logs()
{
    let (lab, db) = lab_on_postgres_with(
        SimConfig::generated(1, 2, 0),
        "  coordinatorLeaseSeconds: 3\n",
    );
    install_testplug(&lab, "http://127.0.0.1:9");
    let echo = "      - name: echo\n        runsOn: [site-z]\n        task: { type: model_method, \
                modelIdOrName: web, methodName: echo, inputs: { value: hello } }\n";
    lab.repo.write(
        "workflows/echo.yaml",
        &workflow("echo", &[echo.to_string()]),
    );
    // No worker has site-z yet: the step waits in the queue; then its coordinator is killed.
    let mut coordinator = lab
        .repo
        .command(&["run", "echo"])
        .env("PGPASSWORD", postgres::PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_sql(
        &db,
        "SELECT count(*) FROM orch_queue WHERE state = 'ready'",
        "1",
    );
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
    // Its lease runs out: no heartbeat renews it any more.
    wait_for_sql(
        &db,
        "SELECT count(*) FROM orch_coordinators \
         WHERE heartbeat > now() - make_interval(secs => lease_seconds)",
        "0",
    );
    let z = Worker::start(&lab, "w-z", "site-z");
    // The worker sweeps the dead coordinator's step and its row away without running it.
    wait_for_sql(&db, "SELECT count(*) FROM orch_queue", "0");
    wait_for_sql(&db, "SELECT count(*) FROM orch_coordinators", "0");
    assert!(!z.output().contains("echo from model"), "{}", z.output());

    // A live coordinator's step runs on the same worker, and its log line comes back.
    let run = orch(&lab, &["--json", "run", "echo"]);
    assert_eq!(run.code, 0, "{}\nw-z:\n{}", run.all(), z.output());
    assert!(z.output().contains("echo from model web"), "{}", z.output());
    let id = run.json()["id"].as_str().unwrap_or_default().to_string();
    let shown = orch(&lab, &["--json", "runs", "show", &id]).ok().json();
    let logs: Vec<&Value> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["message"] == "echo from model web")
        .collect();
    assert_eq!(logs.len(), 1, "{}", shown["events"]);
    assert!(
        logs[0]["step"].as_str().unwrap().ends_with("echo"),
        "{}",
        logs[0]
    );
    assert_eq!(logs[0]["level"], "info", "{}", logs[0]);
    drop(z);
}
