//! Contract versions side by side: a bundle built against `orch:plugin@0.1.0` before 0.2 existed
//! keeps loading and running, through the real `orch` binary.

mod support;

use serde_json::json;
use std::path::Path;
use std::sync::atomic::Ordering;
use support::{TestRepo, TinyHttp};

/// The prebuilt 0.1 testplug bundle kept as a fixture; never rebuilt.
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A repo with the frozen 0.1 testplug installed as `plugins/testplug` and one echo model.
fn repo_with_v0_1_testplug() -> TestRepo {
    let repo = TestRepo::new(&[]);
    let dst = repo.path().join("plugins/testplug");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(fixture("testplug-0.1").join(f), dst.join(f)).unwrap();
    }
    repo.write(
        "models/e.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: hello\n",
    );
    repo
}

#[test]
fn a_prebuilt_0_1_bundle_loads_and_runs_its_methods() {
    let repo = repo_with_v0_1_testplug();
    let echo = repo
        .orch(&["--json", "model", "run", "e", "echo"])
        .ok()
        .json();
    assert_eq!(echo["output"]["greeting"], "hello");

    // data.write-resource and data.read-resource through the 0.1 imports.
    repo.orch(&[
        "model",
        "run",
        "e",
        "write",
        "--input",
        "name=a",
        "--input",
        r#"attributes={"n":1}"#,
    ])
    .ok();
    let read = repo
        .orch(&["--json", "model", "run", "e", "read", "--input", "name=a"])
        .ok()
        .json();
    assert_eq!(read["output"]["attributes"], json!({"n": 1}));
}

#[test]
fn a_prebuilt_0_1_bundle_passes_validate_reporting_the_version_read_from_its_wasm() {
    let repo = repo_with_v0_1_testplug();
    let report = repo
        .orch(&["--json", "plugin", "validate", "plugins/testplug"])
        .ok()
        .json();
    assert_eq!(report["apiVersion"], "0.1.0", "{report}");
    // The bare wasm has no manifest to say so: the version still comes from the component.
    let bare = repo
        .orch(&[
            "--json",
            "plugin",
            "validate",
            "plugins/testplug/plugin.wasm",
        ])
        .ok()
        .json();
    assert_eq!(bare["apiVersion"], "0.1.0", "{bare}");
}

#[test]
fn a_manifest_api_that_disagrees_with_the_wasm_is_refused_naming_both() {
    let repo = repo_with_v0_1_testplug();
    let toml = repo.path().join("plugins/testplug/plugin.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("api = \"0.1.0\"", "api = \"0.2.0\"")).unwrap();
    let run = repo.orch(&["plugin", "validate", "plugins/testplug"]);
    assert_ne!(run.code, 0, "{}", run.all());
    for part in [
        "plugins/testplug/plugin.wasm",
        "plugins/testplug/plugin.toml",
        "orch:plugin@0.1.0",
        "api = \"0.2.0\"",
    ] {
        assert!(
            run.all().contains(part),
            "{part} missing from:\n{}",
            run.all()
        );
    }
    let run = repo.orch(&["model", "run", "e", "echo"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.all().contains("orch:plugin@0.1.0"), "{}", run.all());
}

/// A repo with the 0.2 test plugin (built by `cargo xtask build`) and one model granted
/// `baseUrl`.
fn repo_with_v0_2_plugin(base_url: &str) -> TestRepo {
    let repo = TestRepo::new(&["plug02"]);
    repo.write(
        "models/v.yaml",
        &format!("type: test/v2\nglobalArguments:\n  baseUrl: {base_url}\n"),
    );
    repo
}

#[test]
fn a_0_2_plugin_is_described_with_its_typed_confirm_rule_converge_kind_and_volatile() {
    let repo = repo_with_v0_2_plugin("http://127.0.0.1:9");
    let validate = repo.orch(&["--json", "plugin", "validate", "plugins/plug02"]);
    assert_eq!(validate.code, 0, "{}", validate.all());
    assert_eq!(validate.json()["apiVersion"], "0.2.0", "{}", validate.all());
    // The schema lint is advice: plug02 leaves its fields undocumented, which is reported
    // per field without making the bundle invalid.
    let lints = validate.json()["lints"].clone();
    let places: Vec<&str> = lints
        .as_array()
        .unwrap_or_else(|| panic!("no lints in {}", validate.all()))
        .iter()
        .filter_map(|l| l["place"].as_str())
        .collect();
    assert!(
        places.contains(&"global argument `baseUrl`")
            && places.contains(&"method `retire`, argument `expectId`"),
        "{lints}"
    );
    let text = repo.orch(&["plugin", "validate", "plugins/plug02"]).ok();
    assert!(
        text.all()
            .contains("! lint       test/v2 global argument `baseUrl`: has no description"),
        "{}",
        text.all()
    );
    let bare = repo
        .orch(&["--json", "plugin", "validate", "plugins/plug02/plugin.wasm"])
        .ok()
        .json();
    assert_eq!(
        bare["apiVersion"], "0.2.0",
        "a bare 0.2 wasm validates as 0.2: {bare}"
    );
    let described = repo
        .orch(&["--json", "type", "describe", "test/v2"])
        .ok()
        .json();
    let text = described.to_string();
    assert!(text.contains("\"converge\""), "{text}");
    assert!(text.contains("\"x-orch-confirm\""), "{text}");
    assert!(text.contains("seenAt"), "{text}");
}

#[test]
fn a_0_2_plugin_runs_and_its_send_batch_is_checked_per_request() {
    let granted = TinyHttp::start("ok");
    let denied = TinyHttp::start("no");
    let base = format!("http://127.0.0.1:{}", granted.port);
    let repo = repo_with_v0_2_plugin(&base);
    let urls = json!([
        format!("{base}/a"),
        format!("http://127.0.0.1:{}/b", denied.port),
        format!("{base}/c"),
    ]);
    let out = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "v",
            "batch",
            "--input",
            &format!("urls={urls}"),
        ])
        .ok()
        .json();
    let results = &out["output"]["results"];
    assert_eq!(results[0]["status"], 200, "{out}");
    assert_eq!(results[2]["status"], 200, "{out}");
    assert!(results[1]["denied"].is_string(), "{out}");
    assert_eq!(granted.connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        denied.connections.load(Ordering::SeqCst),
        0,
        "no connection to the denied host"
    );

    // data and log through the 0.2 imports.
    let sync = repo
        .orch(&["--json", "model", "run", "v", "sync"])
        .ok()
        .json();
    assert_eq!(sync["output"]["version"], 1, "{sync}");
}

#[test]
fn a_typed_0_2_confirm_rule_is_enforced_by_the_host() {
    let repo = repo_with_v0_2_plugin("http://127.0.0.1:9");
    let run = repo.orch(&["model", "run", "v", "retire", "--input", "name=a"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.all().contains("expectId"), "{}", run.all());
}

#[test]
fn the_dry_run_of_a_0_2_converge_method_is_its_typed_plan() {
    let repo = repo_with_v0_2_plugin("http://127.0.0.1:9");
    let out = repo
        .orch(&["--json", "model", "run", "v", "sync", "--dry-run"])
        .ok()
        .json();
    assert_eq!(
        out["output"]["plan"],
        json!([{
            "action": "create",
            "spec": "item",
            "name": "a",
            "summary": "create item a",
            "changes": [{"path": "/id", "before": null, "after": 1}],
        }]),
        "{out}"
    );
    // Without --dry-run the same method executes (and writes its first version).
    let run = repo
        .orch(&["--json", "model", "run", "v", "sync"])
        .ok()
        .json();
    assert_eq!(run["output"]["version"], 1, "{run}");
}

/// A bundle whose wasm is a component importing `orch:plugin/log@{version}` and nothing else.
fn install_component_speaking(repo: &TestRepo, version: &str, api: &str) {
    let wasm = wat::parse_str(format!(
        r#"(component (import "orch:plugin/log@{version}" (instance)))"#
    ))
    .unwrap();
    let dir = repo.path().join("plugins/future");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugin.wasm"), &wasm).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wasm))
    };
    std::fs::write(
        dir.join("plugin.toml"),
        format!("id = \"future\"\nversion = \"1.0.0\"\napi = \"{api}\"\nsha256 = \"{sha}\"\n"),
    )
    .unwrap();
}

#[test]
fn a_component_of_an_unknown_api_version_is_refused_naming_the_wasm_and_the_versions() {
    let repo = TestRepo::new(&[]);
    install_component_speaking(&repo, "9.0.0", "0.2.0");
    let run = repo.orch(&["plugin", "validate", "plugins/future"]);
    assert_ne!(run.code, 0, "{}", run.all());
    for part in [
        "plugins/future/plugin.wasm",
        "orch:plugin@9.0.0",
        "0.1.0, 0.2.0",
    ] {
        assert!(
            run.all().contains(part),
            "{part} missing from:\n{}",
            run.all()
        );
    }
}

#[test]
fn a_retired_resource_is_a_tombstone_that_expressions_refuse_naming_who_and_when() {
    let repo = repo_with_v0_2_plugin("http://127.0.0.1:9");
    repo.orch(&["model", "run", "v", "sync"]).ok();
    let forget = repo
        .orch(&["--json", "model", "run", "v", "forget", "--input", "name=a"])
        .ok()
        .json();
    assert_eq!(forget["output"]["version"], 2, "{forget}");
    assert_eq!(forget["output"]["listed"], json!([]), "{forget}");
    assert_eq!(forget["output"]["read"], json!(null), "{forget}");
    // The latest version is the tombstone, and `orch data get` shows it.
    let latest = repo.orch(&["--json", "data", "get", "v", "a"]).ok().json();
    assert_eq!(
        (latest["version"].clone(), latest["retired"].clone()),
        (json!(2), json!(true)),
        "{latest}"
    );
    // `orch data list` hides it; `--all` shows it marked retired, in JSON and in the table.
    let live = repo.orch(&["--json", "data", "list", "v"]).ok().json();
    assert!(
        live.as_array()
            .is_some_and(|rows| rows.iter().all(|r| r["name"] != "a")),
        "{live}"
    );
    let listed = repo
        .orch(&["--json", "data", "list", "v", "--all"])
        .ok()
        .json();
    let a = listed
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "a"))
        .unwrap_or_else(|| panic!("no resource a in {listed}"));
    assert_eq!(a["retired"], json!(true), "{listed}");
    let table = repo.orch(&["data", "list", "v", "--all"]).ok();
    let row = table
        .all()
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("a"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no row for a in:\n{}", table.all()));
    assert!(row.ends_with("retired"), "{row}");
    // `orch data versions` shows the retirement as the newest version, in JSON and in text.
    let versions = repo
        .orch(&["--json", "data", "versions", "v", "a"])
        .ok()
        .json();
    let flags: Vec<_> = versions
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {versions}"))
        .iter()
        .map(|v| (v["version"].clone(), v["retired"] == json!(true)))
        .collect();
    assert_eq!(
        flags,
        vec![(json!(1), false), (json!(2), true)],
        "{versions}"
    );
    let text = repo.orch(&["data", "versions", "v", "a"]).ok();
    let all = text.all();
    // The newest version line is the tombstone; after it only the last sighting, which a
    // retirement does not move (the sync that wrote v1 saw it last).
    let last = all
        .lines()
        .rfind(|l| l.starts_with('v'))
        .unwrap_or_default();
    assert!(
        last.starts_with("v2") && last.contains("retired"),
        "{}",
        text.all()
    );
    let seen = all
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        seen.starts_with("last seen ") && seen.ends_with("(step v.sync)"),
        "{}",
        text.all()
    );
    // Retiring what is already gone is not-found.
    let again = repo.orch(&["model", "run", "v", "forget", "--input", "name=a"]);
    assert_ne!(again.code, 0, "{}", again.all());
    assert!(
        again.all().contains("not-found") || again.all().contains("no live resource"),
        "{}",
        again.all()
    );
    repo.write(
        "models/w.yaml",
        "type: test/v2\nglobalArguments:\n  baseUrl: ${{ model.v.resource.item.a.attributes.id }}\n",
    );
    let run = repo.orch(&["model", "run", "w", "sync"]);
    assert_ne!(run.code, 0, "{}", run.all());
    for part in [
        "item/a of model v was removed by run",
        "step `v.forget`",
        "method `forget`",
    ] {
        assert!(
            run.all().contains(part),
            "{part} missing from:\n{}",
            run.all()
        );
    }
    // A resource that comes back gets a new live version, listed again without --all.
    repo.orch(&["model", "run", "v", "sync"]).ok();
    let back = repo.orch(&["--json", "data", "get", "v", "a"]).ok().json();
    assert_eq!(back["version"], 3, "{back}");
    assert_ne!(back["retired"], json!(true), "{back}");
    let live = repo.orch(&["--json", "data", "list", "v"]).ok().json();
    assert!(
        live.as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["name"] == "a")),
        "{live}"
    );
}

#[test]
fn every_rust_plugin_of_this_repository_is_built_against_0_2() {
    let plugins = ["docker", "minecraft", "nginx", "proxmox", "ssh", "testplug"];
    let repo = TestRepo::new(&plugins);
    for id in plugins {
        let report = repo
            .orch(&["--json", "plugin", "validate", &format!("plugins/{id}")])
            .ok()
            .json();
        assert_eq!(report["apiVersion"], "0.2.0", "{id}: {report}");
    }
}
