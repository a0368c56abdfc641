//! Data parity with swamp, through the real binary: `orch data query`, tags (definition,
//! workflow, `--tag`, `data.findByTag`), retention (`orch data gc`, `orch runs gc`) and the
//! `lifetime` of a resource. Most tests use the `testplug` plugin's `write` method, which
//! stores whatever attributes it is given; the sensitive-attribute test uses the home lab.

mod support;

use serde_json::{Value, json};
use support::TestRepo;
use support::lab::Lab;

/// A repo whose `fleet` model (type `test/echo`) has `definition` appended to its YAML.
fn repo_with(definition: &str) -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/fleet.yaml",
        &format!("type: test/echo\nglobalArguments:\n  greeting: hi\n{definition}"),
    );
    repo
}

/// `orch model run fleet write` of `attributes` to `spec`/`name`; returns the run's JSON.
fn write(repo: &TestRepo, spec: &str, name: &str, attributes: Value, extra: &[&str]) -> Value {
    let input = json!({"name": name, "spec": spec, "attributes": attributes}).to_string();
    let mut args = vec![
        "--json", "model", "run", "fleet", "write", "--input", &input,
    ];
    args.extend_from_slice(extra);
    repo.orch(&args).ok().json()
}

fn data_file(repo: &TestRepo) -> std::path::PathBuf {
    repo.path().join(".orch/data.redb")
}

#[test]
fn query_with_a_select_prints_the_selected_value_of_each_match() {
    let repo = repo_with("");
    write(
        &repo,
        "item",
        "web",
        json!({"status": "running", "ip": "10.0.0.1"}),
        &[],
    );
    write(
        &repo,
        "item",
        "db",
        json!({"status": "stopped", "ip": "10.0.0.2"}),
        &[],
    );
    write(
        &repo,
        "item",
        "web",
        json!({"status": "running", "ip": "10.0.0.3"}),
        &[],
    );
    // No `status` at all: it does not match (swamp-like), and is no error.
    write(&repo, "item", "bare", json!({"ip": "10.0.0.4"}), &[]);

    let rows = repo
        .orch(&[
            "--json",
            "data",
            "query",
            r#"attributes.status == "running""#,
            "--select",
            "attributes.ip",
        ])
        .ok()
        .json();
    assert_eq!(
        rows,
        json!([{"model": "fleet", "spec": "item", "name": "web", "version": 2, "value": "10.0.0.3"}])
    );
    let text = repo
        .orch(&[
            "data",
            "query",
            r#"spec == "item" && name.startsWith("d") && version == 1"#,
            "--select",
            "provenance.method + ':' + attributes.ip",
            "--model",
            "fleet",
        ])
        .ok()
        .stdout;
    assert!(
        text.contains("item/db") && text.contains("write:10.0.0.2"),
        "{text}"
    );
    assert!(!text.contains("item/web"), "{text}");
}

#[test]
fn a_predicate_that_is_not_boolean_is_refused_naming_it() {
    let repo = repo_with("");
    write(&repo, "item", "web", json!({"ip": "10.0.0.1"}), &[]);
    let out = repo.orch(&["data", "query", "attributes.ip"]).code(2);
    let all = out.all();
    assert!(
        all.contains("`attributes.ip`")
            && all.contains("a string")
            && all.contains("true or false"),
        "{all}"
    );
    let bad = repo
        .orch(&["data", "query", "attributes.ip ==", "--select", "x"])
        .code(2);
    assert!(bad.all().contains("`attributes.ip ==`"), "{}", bad.all());
}

#[test]
fn select_never_prints_a_sensitive_attribute() {
    let lab = Lab::with_config(Default::default());
    lab.orch(&["run", "sync-fleet"]).ok();
    let out = lab.orch(&[
        "--json",
        "data",
        "query",
        r#"model == "keebDev02""#,
        "--select",
        "attributes",
    ]);
    let rows = out.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["value"]["ticket"], json!("(sensitive)"), "{rows}");
    assert_eq!(
        rows[0]["value"]["csrfToken"],
        json!("(sensitive)"),
        "{rows}"
    );
    let text = lab
        .orch(&[
            "data",
            "query",
            "true",
            "--select",
            "attributes.ticket",
            "--model",
            "keebDev02",
        ])
        .ok()
        .stdout;
    assert!(text.contains("(sensitive)"), "{text}");
    for shown in [&out.stdout, &text] {
        assert!(!shown.contains("PVE:"), "a ticket was printed: {shown}");
    }
}

#[test]
fn tags_flow_from_definition_workflow_and_command_line_into_data_and_find_by_tag() {
    let repo = repo_with("tags:\n  env: lab\n  owner: definition\n");
    repo.write(
        "workflows/tagged.yaml",
        "tags:\n  owner: workflow\n  team: infra\ninputs:\n  type: object\n  properties:\n    \
         ip: { type: string, default: 10.0.0.7 }\njobs:\n  - name: j\n    steps:\n      - name: w\n        \
         task:\n          type: model_method\n          modelIdOrName: fleet\n          methodName: write\n          \
         inputs: { name: web, attributes: { ip: '${{ inputs.ip }}' } }\n",
    );
    repo.orch(&["run", "tagged", "--tag", "team=cli", "--tag", "ticket=T-1"])
        .ok();
    let got = repo
        .orch(&["--json", "data", "get", "fleet", "web"])
        .ok()
        .json();
    assert_eq!(
        got["tags"],
        json!({"env": "lab", "owner": "workflow", "team": "cli", "ticket": "T-1"}),
        "definition < workflow < --tag: {got}"
    );
    // A method run carries the definition's tags and its own --tag.
    write(
        &repo,
        "item",
        "db",
        json!({"ip": "10.0.0.8"}),
        &["--tag", "team=db"],
    );
    let db = repo
        .orch(&["--json", "data", "get", "fleet", "db"])
        .ok()
        .json();
    assert_eq!(
        db["tags"],
        json!({"env": "lab", "owner": "definition", "team": "db"})
    );

    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--json", "data"];
        all.extend_from_slice(args);
        let rows = repo.orch(&all).ok().json();
        rows.as_array()
            .unwrap_or_else(|| panic!("{rows}"))
            .iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names(&["list", "--tag", "team=cli"]), vec!["web"]);
    assert_eq!(names(&["list", "--tag", "env=lab"]), vec!["db", "web"]);
    assert!(names(&["list", "--tag", "env=prod"]).is_empty());
    assert_eq!(names(&["query", "true", "--tag", "team=db"]), vec!["db"]);
    assert_eq!(
        names(&["query", r#"tags.owner == "workflow""#]),
        vec!["web"]
    );
    let versions = repo.orch(&["data", "versions", "fleet", "web"]).ok().stdout;
    assert!(versions.contains("team=cli"), "{versions}");

    let found = repo
        .orch(&["--json", "eval", r#"data.findByTag("team", "cli")"#])
        .ok()
        .json();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["model"], json!("fleet"));
    assert_eq!(found[0]["name"], json!("web"));
    assert_eq!(found[0]["attributes"]["ip"], json!("10.0.0.7"));
    let none = repo
        .orch(&["--json", "eval", r#"data.findByTag("team", "nobody")"#])
        .ok()
        .json();
    assert_eq!(none, json!([]));
    // A calling workflow's tags lie over the nested workflow's. (A write whose attributes
    // equal the latest version's stores no version, so the nested run writes another ip.)
    repo.write(
        "workflows/outer.yaml",
        "tags:\n  owner: outer\njobs:\n  - name: j\n    steps:\n      - name: n\n        \
         task: { type: workflow, workflowIdOrName: tagged, inputs: { ip: 10.0.0.9 } }\n",
    );
    repo.orch(&["run", "outer"]).ok();
    let nested = repo
        .orch(&["--json", "data", "get", "fleet", "web"])
        .ok()
        .json();
    assert_eq!(nested["version"], json!(2));
    assert_eq!(
        nested["tags"],
        json!({"env": "lab", "owner": "outer", "team": "infra"})
    );
    let bad = repo.orch(&["run", "tagged", "--tag", "novalue"]).code(2);
    assert!(bad.all().contains("KEY=VALUE"), "{}", bad.all());
}

#[test]
fn gc_keeps_n_versions_shrinks_the_file_and_leaves_a_working_store() {
    let repo = repo_with("resources:\n  item:\n    garbageCollection: { keepVersions: 2 }\n");
    let pad = "x".repeat(16 * 1024);
    for i in 0..12 {
        write(&repo, "item", "big", json!({"i": i, "pad": pad}), &[]);
    }
    // Another spec without a retention rule keeps everything.
    write(&repo, "response", "r", json!({"n": 1}), &[]);
    write(&repo, "response", "r", json!({"n": 2}), &[]);
    let file = data_file(&repo);
    let size_on_disk = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);

    let dry = repo
        .orch(&["--json", "data", "gc", "--dry-run"])
        .ok()
        .json();
    assert_eq!(dry["dryRun"], json!(true));
    let planned: Vec<u64> = dry["deleted"]
        .as_array()
        .unwrap_or_else(|| panic!("{dry}"))
        .iter()
        .map(|d| d["version"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(planned, (1..=10).collect::<Vec<u64>>());
    assert_eq!(dry["sizeBefore"], dry["sizeAfter"]);
    let versions = |spec: &str, name: &str| -> Vec<u64> {
        let all = repo
            .orch(&["--json", "data", "versions", "fleet", name, "--spec", spec])
            .ok()
            .json();
        all.as_array()
            .unwrap_or_else(|| panic!("{all}"))
            .iter()
            .map(|v| v["version"].as_u64().unwrap_or(0))
            .collect()
    };
    assert_eq!(
        versions("item", "big").len(),
        12,
        "a dry run deletes nothing"
    );

    let before = size_on_disk();
    let report = repo.orch(&["--json", "data", "gc"]).ok().json();
    let after = size_on_disk();
    assert_eq!(
        report["deleted"].as_array().map(Vec::len),
        Some(10),
        "{report}"
    );
    assert_eq!(report["sizeBefore"], json!(before), "{report}");
    assert_eq!(report["sizeAfter"], json!(after), "{report}");
    assert!(
        after < before,
        "the file did not shrink: {before} → {after}"
    );
    assert_eq!(versions("item", "big"), vec![11, 12]);
    assert_eq!(versions("response", "r"), vec![1, 2]);
    let text = repo.orch(&["data", "gc"]).ok().stdout;
    assert!(text.contains("deleted 0 versions"), "{text}");

    // Every data command still works on the collected store, and so does a later run.
    repo.orch(&["data", "list"]).ok();
    repo.orch(&["data", "get", "fleet", "big"]).ok();
    let diff = repo
        .orch(&["--json", "data", "diff", "fleet", "big"])
        .ok()
        .json();
    assert_eq!(
        (diff["from"].clone(), diff["to"].clone()),
        (json!(11), json!(12))
    );
    repo.orch(&["data", "changes", "--since", "1d"]).ok();
    let q = repo
        .orch(&["--json", "data", "query", "attributes.i == 11"])
        .ok()
        .json();
    assert_eq!(q[0]["version"], json!(12), "{q}");
    let later = write(&repo, "item", "big", json!({"i": 12}), &[]);
    assert_eq!(later["run"]["status"], json!("succeeded"), "{later}");
    assert_eq!(versions("item", "big"), vec![11, 12, 13]);
}

#[test]
fn runs_gc_deletes_finished_runs_before_the_cutoff_and_dry_run_changes_nothing() {
    let repo = repo_with("");
    for i in 0..3 {
        write(&repo, "item", "a", json!({"i": i}), &[]);
    }
    let count = || {
        let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
        runs.as_array().map(Vec::len).unwrap_or(0)
    };
    assert_eq!(count(), 3);
    let none = repo
        .orch(&["--json", "runs", "gc", "--older-than", "30d"])
        .ok()
        .json();
    assert_eq!(none["deleted"], json!([]));
    let dry = repo
        .orch(&["--json", "runs", "gc", "--older-than", "0s", "--dry-run"])
        .ok()
        .json();
    assert_eq!(dry["deleted"].as_array().map(Vec::len), Some(3), "{dry}");
    assert_eq!(count(), 3, "a dry run deletes nothing");
    let report = repo
        .orch(&["--json", "runs", "gc", "--older-than", "0s"])
        .ok()
        .json();
    assert_eq!(
        report["deleted"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    assert_eq!(
        report["sizeAfter"],
        json!(
            std::fs::metadata(data_file(&repo))
                .map(|m| m.len())
                .unwrap_or(0)
        )
    );
    assert_eq!(count(), 0);
    // The data the runs wrote stays.
    assert_eq!(
        repo.orch(&["--json", "data", "get", "fleet", "a"])
            .ok()
            .json()["version"],
        json!(3)
    );
    let bad = repo.orch(&["runs", "gc", "--older-than", "soon"]).code(2);
    assert!(bad.all().contains("not a duration"), "{}", bad.all());
}

#[test]
fn a_resource_past_its_lifetime_stops_resolving_but_data_get_shows_it() {
    let repo =
        repo_with("resources:\n  item:\n    lifetime: 0s\n  response:\n    lifetime: ephemeral\n");
    write(&repo, "item", "old", json!({"ip": "10.0.0.1"}), &[]);
    let err = repo
        .orch(&["eval", "model.fleet.resource.item.old.attributes.ip"])
        .code(1);
    assert!(err.all().contains("expired"), "{}", err.all());
    let latest = repo
        .orch(&["eval", r#"data.latest("fleet", "old")"#])
        .code(1);
    assert!(latest.all().contains("expired"), "{}", latest.all());
    let shown = repo
        .orch(&["--json", "data", "get", "fleet", "old"])
        .ok()
        .json();
    assert_eq!(shown["expired"], json!(true), "{shown}");
    assert_eq!(shown["attributes"]["ip"], json!("10.0.0.1"));

    // An ephemeral resource resolves in the run that wrote it, and not in the next one.
    repo.write(
        "models/reader.yaml",
        "type: test/echo\nmethods:\n  echo:\n    arguments:\n      \
         value: ${{ model.fleet.resource.response.s1.attributes.token }}\n",
    );
    repo.write(
        "workflows/session.yaml",
        "jobs:\n  - name: j\n    steps:\n      - name: open\n        task: { type: model_method, \
         modelIdOrName: fleet, methodName: write, inputs: { name: s1, spec: response, \
         attributes: { token: abc } } }\n      - name: use\n        dependsOn: [ { step: open } ]\n        \
         task: { type: model_method, modelIdOrName: reader, methodName: echo }\n",
    );
    repo.orch(&["run", "session"]).ok();
    let second = repo
        .orch(&["--json", "model", "run", "reader", "echo"])
        .code(1);
    assert!(second.all().contains("expired"), "{}", second.all());
    assert!(second.all().contains("ephemeral"), "{}", second.all());
}

#[test]
fn a_tag_holding_a_secret_the_call_used_is_refused_and_nothing_is_written() {
    let repo = TestRepo::new(&["testplug"]);
    let secret = "tag-s3cret-value";
    repo.orch_stdin(&["vault", "put", "v", "k"], secret).ok();
    repo.write(
        "models/fleet.yaml",
        "type: test/echo\nglobalArguments:\n  secret: ${{ vault.get(\"v\", \"k\") }}\n",
    );
    let tag = format!("leak={secret}");
    let input = json!({"name": "a", "attributes": {"ip": "10.0.0.1"}}).to_string();
    let out = repo
        .orch(&[
            "model", "run", "fleet", "write", "--input", &input, "--tag", &tag,
        ])
        .code(1);
    assert!(out.all().contains("tag `leak`"), "{}", out.all());
    assert!(!out.all().contains(secret), "{}", out.all());
    let listed = repo.orch(&["--json", "data", "list"]).ok().json();
    assert_eq!(listed, json!([]));
    // Nor does a --select that reads the vault print it.
    write(&repo, "item", "b", json!({"ip": "10.0.0.2"}), &[]);
    let selected = repo.orch(&[
        "data",
        "query",
        "true",
        "--select",
        r#"vault.get("v", "k") + "!""#,
    ]);
    assert!(!selected.all().contains(secret), "{}", selected.all());
    assert!(selected.ok().stdout.contains("item/b"));
}

#[test]
fn a_bad_retention_duration_names_the_file_line_and_field() {
    let repo = repo_with("resources:\n  item:\n    garbageCollection:\n      olderThan: a month\n");
    let out = repo.orch(&["data", "gc"]).code(2);
    assert!(
        out.all()
            .contains("models/fleet.yaml:7: resources.item.garbageCollection.olderThan: `a month` is not a duration"),
        "{}",
        out.all()
    );
}
