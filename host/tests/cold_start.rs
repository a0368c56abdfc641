//! A cold repo (every built bundle installed, no `.orch/cache`, no `.orch/describe`): the types
//! come from each bundle's `types.json`, a run compiles only the plugin it uses, and a bundle
//! whose `types.json` lies about its plugin is refused before the plugin runs.

mod support;

use std::path::{Path, PathBuf};
use support::{TestRepo, dist};

/// Writes one resource with testplug: a step that ran leaves data behind.
const WRITE_ONE: &str = "jobs:\n  - name: main\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: source, methodName: write, inputs: { name: gold, attributes: { ip: 10.0.0.1 } } }\n";

/// Every bundle `cargo xtask build` made from the crates under plugins/ (the hostile test
/// plugins are left out: they exist to fail).
fn shipped_bundles() -> Vec<PathBuf> {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let mut ids: Vec<String> = std::fs::read_dir(&plugins)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("bundle.toml").is_file() && e.path().join("Cargo.toml").is_file())
        .map(|e| {
            let text = std::fs::read_to_string(e.path().join("bundle.toml")).unwrap();
            let table: toml::Table = text.parse().unwrap();
            table["id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids.into_iter().map(|id| dist().join(id)).collect()
}

/// Copies a built bundle, `types.json` included, into the repo's plugins/.
fn install(repo: &TestRepo, bundle: &Path) {
    let dst = repo
        .path()
        .join("plugins")
        .join(bundle.file_name().unwrap());
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["plugin.toml", "plugin.wasm", "types.json"] {
        std::fs::copy(bundle.join(f), dst.join(f)).unwrap_or_else(|e| {
            panic!(
                "{}/{f}: {e} (rebuild with `cargo xtask build`)",
                bundle.display()
            )
        });
    }
}

/// A fresh repo holding every shipped bundle and a workflow whose one step uses testplug.
fn cold_repo() -> TestRepo {
    let repo = TestRepo::new(&[]);
    let bundles = shipped_bundles();
    assert!(bundles.len() >= 6, "{bundles:?}");
    for b in &bundles {
        install(&repo, b);
    }
    repo.write("models/source.yaml", "type: test/echo\n")
        .write("workflows/one.yaml", WRITE_ONE);
    for d in ["cache", "describe"] {
        let _ = std::fs::remove_dir_all(repo.path().join(".orch").join(d));
    }
    repo
}

/// The compiled code in `.orch/cache`: one `<wasm sha256>-<engine>.cwasm` per compiled plugin.
fn compiled(repo: &TestRepo) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(repo.path().join(".orch/cache")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    names.sort();
    names
}

fn sha256_of(repo: &TestRepo, id: &str) -> String {
    let text =
        std::fs::read_to_string(repo.path().join("plugins").join(id).join("plugin.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table["sha256"].as_str().unwrap().to_ascii_lowercase()
}

fn types_json(repo: &TestRepo, id: &str) -> PathBuf {
    repo.path().join("plugins").join(id).join("types.json")
}

#[test]
fn a_cold_run_compiles_only_the_plugin_its_step_uses_and_says_so() {
    let repo = cold_repo();
    let run = repo.orch(&["run", "one"]).ok();
    assert_eq!(
        run.stderr.matches("compiling plugin").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("compiling plugin testplug (first run)"),
        "{}",
        run.stderr
    );
    let cached = compiled(&repo);
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(
        cached[0].starts_with(&sha256_of(&repo, "testplug")),
        "{cached:?}"
    );
    // The step ran, and the second run compiles nothing.
    repo.orch(&["--json", "data", "get", "source", "gold"]).ok();
    let again = repo.orch(&["run", "one"]).ok();
    assert!(
        !again.stderr.contains("compiling plugin"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_cold_repo_lists_and_checks_types_without_compiling_anything() {
    let repo = cold_repo();
    let list = repo.orch(&["--json", "type", "list"]).ok();
    for name in ["test/echo", "proxmox/vm"] {
        assert!(list.stdout.contains(name), "{name}: {}", list.stdout);
    }
    repo.orch(&["check"]).ok();
    assert_eq!(compiled(&repo), Vec::<String>::new());
    assert!(
        !repo.path().join(".orch/describe").exists()
            || std::fs::read_dir(repo.path().join(".orch/describe"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Only checked claims (`<sha>-<version>-c2-<digest>.json`) are kept.
                .all(|n| !n.ends_with(".json") || n.contains("-c2-")),
        "nothing was described"
    );
}

#[test]
fn a_bundle_whose_types_json_lies_is_refused_before_its_plugin_runs() {
    let repo = cold_repo();
    let path = types_json(&repo, "testplug");
    let text = std::fs::read_to_string(&path).unwrap();
    // Same wasm digest, a different claim: the description of test/echo.
    let lie = text.replacen(
        "\"description\": \"Exercises every host import\"",
        "\"description\": \"Harmless, trust me\"",
        1,
    );
    assert_ne!(lie, text, "the test edits the claim");
    std::fs::write(&path, lie).unwrap();
    // The claim is used as is for listing (and its check kept for the next process, which
    // still verifies it before the plugin runs).
    let list = repo.orch(&["--json", "type", "list"]).ok();
    assert!(
        list.stdout.contains("Harmless, trust me"),
        "{}",
        list.stdout
    );
    let run = repo.orch(&["run", "one"]);
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let all = run.all();
    for needle in [
        "plugins/testplug/types.json",
        "type `test/echo`",
        "bundle types.json claims /description = \"Harmless, trust me\"",
        "the plugin describes \"Exercises every host import\"",
        "rebuild the bundle with `orch plugin build`",
    ] {
        assert!(all.contains(needle), "{needle}:\n{all}");
    }
    // Refused before any step: no run was recorded, nothing the step would have written
    // exists, and nothing was cached as described.
    assert_eq!(run.code, 1, "{all}");
    assert!(!all.contains("main.a"), "no step ran: {all}");
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(runs.as_array().map(Vec::len), Some(0), "{runs}");
    let data = repo.orch(&["--json", "data", "get", "source", "gold"]);
    assert_ne!(data.code, 0, "{}", data.stdout);
    let describe = repo.path().join(".orch/describe");
    let cached: Vec<String> = std::fs::read_dir(&describe)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    let sha = sha256_of(&repo, "testplug");
    let (claims, described): (Vec<&String>, Vec<&String>) =
        cached.iter().partition(|n| n.contains("-c2-"));
    assert!(described.is_empty(), "{cached:?}");
    assert!(
        claims.iter().any(|n| n.starts_with(&sha)),
        "the checked claim is kept: {cached:?}"
    );
    // Again, with the claim read from that cache: refused just the same.
    let again = repo.orch(&["run", "one"]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(
        again.all().contains("bundle types.json claims"),
        "{}",
        again.all()
    );
}

#[test]
fn a_claim_of_a_type_the_plugin_does_not_describe_is_refused() {
    let repo = cold_repo();
    let path = types_json(&repo, "testplug");
    let text = std::fs::read_to_string(&path).unwrap();
    let lie = text.replacen("\"name\": \"test/echo\"", "\"name\": \"test/ghost\"", 1);
    std::fs::write(&path, lie).unwrap();
    repo.write("models/source.yaml", "type: test/ghost\n");
    let run = repo.orch(&["run", "one"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.all().contains(
            "bundle types.json claims type `test/ghost`, the plugin describes no such type"
        ),
        "{}",
        run.all()
    );
    assert_ne!(repo.orch(&["data", "get", "source", "gold"]).code, 0);
}

#[test]
fn a_malformed_or_stale_types_json_falls_back_to_describing_and_the_run_succeeds() {
    for (what, edit) in [
        (
            "malformed",
            Box::new(|_: String| "{ not json".to_string()) as Box<dyn Fn(String) -> String>,
        ),
        (
            "stale",
            Box::new(|t: String| {
                let at = t.find("\"sha256\": \"").unwrap() + "\"sha256\": \"".len();
                format!("{}{}{}", &t[..at], "0".repeat(64), &t[at + 64..])
            }),
        ),
    ] {
        let repo = cold_repo();
        let path = types_json(&repo, "testplug");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        let run = repo.orch(&["run", "one"]).ok();
        assert!(
            run.stderr.contains("not using") && run.stderr.contains("testplug/types.json"),
            "{what}: {}",
            run.stderr
        );
        if what == "stale" {
            assert!(run.stderr.contains("stale"), "{}", run.stderr);
        }
        repo.orch(&["data", "get", "source", "gold"]).ok();
    }
}

#[test]
fn plugin_install_copies_types_json_from_a_directory_and_from_a_tar() {
    let bundle = dist().join("testplug");
    let repo = TestRepo::new(&[]);
    repo.orch(&["plugin", "install", bundle.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read(types_json(&repo, "testplug")).unwrap(),
        std::fs::read(bundle.join("types.json")).unwrap()
    );
    let tar = repo.path().join("testplug.tar");
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(dist())
        .arg("testplug")
        .status()
        .expect("run tar");
    assert!(status.success());
    let other = TestRepo::new(&[]);
    other
        .orch(&["plugin", "install", tar.to_str().unwrap()])
        .ok();
    assert!(types_json(&other, "testplug").is_file());
}

#[test]
fn orch_plugin_build_writes_types_json_that_a_cold_repo_lists_without_compiling() {
    let repo = TestRepo::new(&[]);
    let (_work, dir) = repo.built_hello_plugin();
    let bundle = dir.join("dist/hello");
    let types: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("types.json")).unwrap()).unwrap();
    assert_eq!(types["types"][0]["name"], "acme/hello", "{types}");
    repo.orch(&["plugin", "install", bundle.to_str().unwrap()])
        .ok();
    assert_eq!(
        types["sha256"].as_str().unwrap(),
        sha256_of(&repo, "hello"),
        "bound to the wasm"
    );
    for d in ["cache", "describe"] {
        let _ = std::fs::remove_dir_all(repo.path().join(".orch").join(d));
    }
    let list = repo.orch(&["type", "list"]).ok();
    assert!(list.stdout.contains("acme/hello"), "{}", list.stdout);
    assert_eq!(compiled(&repo), Vec::<String>::new());
}

#[test]
fn a_cold_run_compiles_the_plugins_of_all_its_steps_before_the_first_step_and_no_others() {
    let repo = cold_repo();
    repo.write("models/web.yaml", "type: nginx/stream\nglobalArguments:\n  sshPort: 22\n")
        .write(
            "workflows/two.yaml",
            &format!(
                "{WRITE_ONE}      - name: b\n        task: {{ type: model_method, modelIdOrName: web, methodName: init }}\n"
            ),
        );
    // Step b fails (the model has no host); what matters is what was compiled, and when.
    let run = repo.orch(&["run", "two"]);
    let started = run.stderr.find("▶ workflow two").expect(&run.stderr);
    for id in ["testplug", "nginx"] {
        let notice = format!("compiling plugin {id} (first run)");
        assert_eq!(run.stderr.matches(&notice).count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.find(&notice).unwrap() < started,
            "{}",
            run.stderr
        );
    }
    assert_eq!(
        run.stderr.matches("compiling plugin").count(),
        2,
        "{}",
        run.stderr
    );
    let mut expected: Vec<String> = ["testplug", "nginx"]
        .iter()
        .map(|id| sha256_of(&repo, id))
        .collect();
    expected.sort();
    let cached: Vec<String> = compiled(&repo)
        .iter()
        .map(|n| n.split('-').next().unwrap().to_string())
        .collect();
    assert_eq!(cached, expected);
}

#[test]
fn plugin_validate_and_install_refuse_a_bundle_whose_types_json_lies() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("testplug");
    std::fs::create_dir_all(&bundle).unwrap();
    for f in ["plugin.toml", "plugin.wasm", "types.json"] {
        std::fs::copy(dist().join("testplug").join(f), bundle.join(f)).unwrap();
    }
    let repo = TestRepo::new(&[]);
    let bundle_s = bundle.to_str().unwrap();
    let good = repo.orch(&["plugin", "validate", bundle_s]).ok();
    assert!(good.all().contains("matches describe()"), "{}", good.all());
    let text = std::fs::read_to_string(bundle.join("types.json")).unwrap();
    std::fs::write(
        bundle.join("types.json"),
        text.replacen("\"destructive\": true", "\"destructive\": false", 1),
    )
    .unwrap();
    let bad = repo.orch(&["plugin", "validate", bundle_s]);
    assert_ne!(bad.code, 0, "{}", bad.all());
    assert!(
        bad.all().contains("types.json") && bad.all().contains("/destructive"),
        "{}",
        bad.all()
    );
    let install = repo.orch(&["plugin", "install", bundle_s]);
    assert_ne!(install.code, 0, "{}", install.all());
    assert!(!repo.path().join("plugins/testplug").exists());
}
