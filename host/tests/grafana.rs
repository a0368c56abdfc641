//! `grafana/instance` through the real `orch` binary against the Grafana simulator: dashboards
//! pushed from a file's text, alerting provisioning, annotations, and a wrong token that is
//! denied and never shown.

mod support;

use grafana_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use support::{Run, TestRepo, contains_bytes};

const TOKEN: &str = "glsa_e2e_right_token_4711";
const WRONG_TOKEN: &str = "glsa_e2e_wrong_token_0815";

/// The definition: the token from the vault, every method's arguments from `--input`.
fn model(url: &str) -> String {
    format!(
        r#"type: grafana/instance
globalArguments:
  url: {url}
  token: ${{{{ vault.get("grafana", "token") }}}}
methods:
  pushDashboard:
    arguments:
      dashboard: ${{{{ inputs.dashboard }}}}
      file: ${{{{ inputs.file }}}}
      message: pushed by orch
  exportDashboard:
    arguments:
      uid: ${{{{ inputs.uid }}}}
  pushAlertRule:
    arguments:
      rule: ${{{{ inputs.rule }}}}
  configureContactPoint:
    arguments:
      name: ${{{{ inputs.name }}}}
      type: ${{{{ inputs.type }}}}
      settings: ${{{{ inputs.settings }}}}
  configureNotificationPolicy:
    arguments:
      policy: ${{{{ inputs.policy }}}}
  createAnnotation:
    arguments:
      tags: ${{{{ inputs.tags }}}}
      text: ${{{{ inputs.text }}}}
"#
    )
}

/// A repository with the grafana plugin, the model `grafana`, and `token` in the vault.
fn lab(token: &str) -> (TestRepo, Simulator) {
    let sim = Simulator::start_blocking(SimConfig {
        token: TOKEN.into(),
        port: 0,
    })
    .expect("grafana simulator");
    let repo = TestRepo::new(&["grafana"]);
    repo.write("models/grafana.yaml", &model(&sim.url()));
    repo.orch_stdin(&["vault", "put", "grafana", "token"], token)
        .ok();
    (repo, sim)
}

/// `orch --json model run grafana METHOD --input k=v …`.
fn run(repo: &TestRepo, method: &str, inputs: &[(&str, String)]) -> Run {
    let mut args = vec![
        "--json".to_string(),
        "model".into(),
        "run".into(),
        "grafana".into(),
        method.into(),
    ];
    for (k, v) in inputs {
        args.push("--input".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    repo.orch(&args)
}

fn attributes(repo: &TestRepo, spec: &str, name: &str) -> Value {
    repo.orch(&["--json", "data", "get", "grafana", name, "--spec", spec])
        .ok()
        .json()["attributes"]
        .clone()
}

const DASHBOARD: &str = r#"{
  "uid": "minecraft",
  "title": "Minecraft server",
  "tags": ["games"],
  "panels": [{"id": 1, "type": "timeseries", "title": "Players"}]
}"#;

#[test]
fn a_pushed_dashboard_is_returned_by_uid_and_pushing_it_again_changes_nothing() {
    let (repo, sim) = lab(TOKEN);
    let file = || ("file", "dashboards/minecraft.json".to_string());
    let out = run(
        &repo,
        "pushDashboard",
        &[("dashboard", DASHBOARD.into()), file()],
    )
    .ok();
    assert!(
        out.stdout.contains("\"changed\": true") || out.stdout.contains("\"changed\":true"),
        "{}",
        out.all()
    );
    let stored = sim.dashboard("minecraft").expect("dashboard pushed");
    assert_eq!(stored["title"], "Minecraft server");
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["panels"][0]["title"], "Players");

    // The same JSON again: read, compared, not written (decided: a push is idempotent).
    let writes = sim.writes().len();
    run(
        &repo,
        "pushDashboard",
        &[("dashboard", DASHBOARD.into()), file()],
    )
    .ok();
    assert_eq!(
        sim.writes().len(),
        writes,
        "a second push of the same JSON wrote"
    );
    assert_eq!(sim.dashboard("minecraft").unwrap()["version"], 1);

    // A changed file is a new version.
    let changed = DASHBOARD.replace("Minecraft server", "Minecraft (survival)");
    run(&repo, "pushDashboard", &[("dashboard", changed), file()]).ok();
    assert_eq!(sim.dashboard("minecraft").unwrap()["version"], 2);
    assert_eq!(
        sim.dashboard("minecraft").unwrap()["title"],
        "Minecraft (survival)"
    );

    // discover lists it; exportDashboard keeps its whole JSON.
    run(&repo, "discover", &[]).ok();
    assert_eq!(
        attributes(&repo, "dashboard", "minecraft")["title"],
        "Minecraft (survival)"
    );
    run(&repo, "exportDashboard", &[("uid", "minecraft".into())]).ok();
    let exported = attributes(&repo, "dashboard", "minecraft");
    assert_eq!(exported["version"], 2);
    assert_eq!(exported["json"]["panels"][0]["type"], "timeseries");
    assert!(
        !contains_bytes(&repo.orch_dir_bytes(), TOKEN),
        "the token reached the data store"
    );
}

#[test]
fn an_alert_rule_a_contact_point_and_the_policy_tree_are_provisioned_once() {
    let (repo, sim) = lab(TOKEN);
    let contact = [
        ("name", "discord-ops".to_string()),
        ("type", "discord".to_string()),
        (
            "settings",
            r#"{"url": "https://discord.example/api/webhooks/1"}"#.to_string(),
        ),
    ];
    let policy = json!({"receiver": "discord-ops", "group_by": ["alertname"],
                        "routes": [{"receiver": "grafana-default-email",
                                    "object_matchers": [["severity", "=", "low"]]}]});
    let rule = json!({"uid": "mc-down", "title": "Minecraft down", "folderUID": "games",
                      "ruleGroup": "minecraft", "condition": "A", "for": "5m",
                      "data": [{"refId": "A", "datasourceUid": "prom",
                                "model": {"expr": "up{job=\"minecraft\"} == 0"}}],
                      "labels": {"severity": "high"}});
    for round in 0..2 {
        run(&repo, "configureContactPoint", &contact).ok();
        run(
            &repo,
            "configureNotificationPolicy",
            &[("policy", policy.to_string())],
        )
        .ok();
        run(&repo, "pushAlertRule", &[("rule", rule.to_string())]).ok();
        if round == 0 {
            assert_eq!(sim.writes().len(), 3, "{:?}", sim.writes());
        }
    }
    assert_eq!(
        sim.writes().len(),
        3,
        "the second round wrote: {:?}",
        sim.writes()
    );
    let points = sim.contact_points();
    let discord = points
        .iter()
        .find(|p| p["name"] == "discord-ops")
        .expect("contact point");
    assert_eq!(discord["type"], "discord");
    assert_eq!(sim.policies(), policy);
    let rules = sim.alert_rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["uid"], "mc-down");
    assert_eq!(rules[0]["for"], "5m");

    // A changed rule is updated in place.
    let mut louder = rule.clone();
    louder["for"] = json!("1m");
    run(&repo, "pushAlertRule", &[("rule", louder.to_string())]).ok();
    assert_eq!(sim.alert_rules()[0]["for"], "1m");
    assert_eq!(sim.writes().last().unwrap().method, "PUT");
    assert_eq!(
        attributes(&repo, "alertRule", "mc-down")["ruleGroup"],
        "minecraft"
    );
}

#[test]
fn annotations_are_listed_with_their_tags() {
    let (repo, sim) = lab(TOKEN);
    let add = |tags: &str, text: &str| {
        run(
            &repo,
            "createAnnotation",
            &[("tags", tags.into()), ("text", text.into())],
        )
        .ok()
    };
    add(r#"["deploy", "minecraft"]"#, "minecraft 1.21.4 deployed");
    add(r#"["backup"]"#, "nightly backup");
    let annotations = sim.annotations();
    assert_eq!(annotations.len(), 2);
    assert_eq!(annotations[0]["tags"], json!(["deploy", "minecraft"]));
    assert_eq!(annotations[0]["text"], "minecraft 1.21.4 deployed");
    assert_eq!(annotations[1]["tags"], json!(["backup"]));
    let id = annotations[0]["id"].to_string();
    assert_eq!(
        attributes(&repo, "annotation", &id)["tags"],
        json!(["deploy", "minecraft"])
    );
}

#[test]
fn a_wrong_token_is_denied_with_where_to_look_and_never_shown() {
    let (repo, sim) = lab(WRONG_TOKEN);
    let out = run(&repo, "discover", &[]);
    let seen = out.all();
    assert!(!seen.is_empty());
    assert!(seen.contains("Grafana denied the token (401)"), "{seen}");
    assert!(seen.contains("check vault grafana/token"), "{seen}");
    assert!(!seen.contains(WRONG_TOKEN), "token in output:\n{seen}");
    assert_eq!(sim.requests()[0].status, 401);
    assert!(sim.dashboard_uids().is_empty());
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    let runs = runs.as_array().unwrap();
    assert!(!runs.is_empty());
    for r in runs {
        let id = r["id"].as_str().unwrap();
        for args in [
            &["--json", "runs", "show", id][..],
            &["runs", "show", id][..],
        ] {
            let shown = repo.orch(args).ok().all();
            assert!(
                !shown.contains(WRONG_TOKEN),
                "token in the run record: {shown}"
            );
        }
    }
    assert!(
        !contains_bytes(&repo.orch_dir_bytes(), WRONG_TOKEN),
        "token in the data store or another .orch file"
    );
}

#[test]
fn a_dashboard_that_is_not_json_names_the_argument_and_its_file() {
    let (repo, sim) = lab(TOKEN);
    let broken = "{\n  \"uid\": \"minecraft\",\n  \"title\": \"Minecraft\"\n  \"panels\": []\n}";
    let out = run(
        &repo,
        "pushDashboard",
        &[
            ("dashboard", broken.into()),
            ("file", "dashboards/broken.json".into()),
        ],
    );
    let seen = out.all();
    assert_ne!(out.code, 0, "{seen}");
    assert!(
        seen.contains("argument `dashboard` is not valid JSON"),
        "{seen}"
    );
    assert!(seen.contains("dashboards/broken.json:4:"), "{seen}");
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
}

/// A workflow passes a repository file's text as an input, then marks the push with an
/// annotation.
const PUSH_WORKFLOW: &str = r#"name: push-dashboard
description: Push a dashboard file (--input file=dashboards/x.json --input dashboard="$(cat dashboards/x.json)")
inputs:
  type: object
  properties:
    file: { type: string }
    dashboard: { description: the file's text }
  required: [file, dashboard]
jobs:
  - name: push
    steps:
      - name: push
        task:
          type: model_method
          modelIdOrName: grafana
          methodName: pushDashboard
          inputs: { dashboard: '${{ inputs.dashboard }}', file: '${{ inputs.file }}' }
      - name: annotate
        task:
          type: model_method
          modelIdOrName: grafana
          methodName: createAnnotation
          inputs: { tags: [dashboard, deploy], text: 'pushed ${{ inputs.file }}' }
"#;

#[test]
fn a_workflow_pushes_a_repository_file_and_annotates_the_push() {
    let (repo, sim) = lab(TOKEN);
    repo.write("workflows/push-dashboard.yaml", PUSH_WORKFLOW);
    repo.write("dashboards/minecraft.json", DASHBOARD);
    let text = std::fs::read_to_string(repo.path().join("dashboards/minecraft.json")).unwrap();
    repo.orch(&[
        "run",
        "push-dashboard",
        "--input",
        "file=dashboards/minecraft.json",
        "--input",
        &format!("dashboard={text}"),
    ])
    .ok();
    assert_eq!(
        sim.dashboard("minecraft").unwrap()["title"],
        "Minecraft server"
    );
    let annotations = sim.annotations();
    assert_eq!(annotations.len(), 1);
    assert_eq!(annotations[0]["tags"], json!(["dashboard", "deploy"]));
    assert_eq!(annotations[0]["text"], "pushed dashboards/minecraft.json");
}

#[test]
fn a_grafana_error_fails_the_step_with_its_status_and_message() {
    let (repo, sim) = lab(TOKEN);
    sim.fail_next(500);
    let out = run(
        &repo,
        "pushDashboard",
        &[("dashboard", DASHBOARD.into()), ("file", "d.json".into())],
    );
    let seen = out.all();
    assert_ne!(out.code, 0, "{seen}");
    assert!(
        seen.contains("GET /api/dashboards/uid/minecraft: HTTP 500 simulated failure"),
        "{seen}"
    );
    assert!(sim.dashboard("minecraft").is_none());
}

#[test]
fn the_plugin_validates_against_0_2_and_marks_the_token_write_only() {
    let repo = TestRepo::new(&["grafana"]);
    let report = repo
        .orch(&["--json", "plugin", "validate", "plugins/grafana"])
        .ok()
        .json();
    assert_eq!(report["apiVersion"], "0.2.0", "{report}");
    assert!(report.to_string().contains("grafana/instance"), "{report}");
    let described = repo
        .orch(&["--json", "type", "describe", "grafana/instance"])
        .ok()
        .json();
    let token = &described["type"]["globalArgumentsSchema"]["properties"]["token"];
    assert_eq!(token["writeOnly"], true, "{described}");
}
