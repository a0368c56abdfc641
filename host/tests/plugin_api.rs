//! Contract versions side by side: a bundle built against `orch:plugin@0.1.0` before 0.2 existed
//! keeps loading and running, through the real `orch` binary.

mod support;

use serde_json::json;
use std::path::Path;
use support::TestRepo;

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
fn a_prebuilt_0_1_bundle_passes_validate() {
    let repo = repo_with_v0_1_testplug();
    repo.orch(&["plugin", "validate", "plugins/testplug"]).ok();
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
        assert!(run.all().contains(part), "{part} missing from:\n{}", run.all());
    }
    let run = repo.orch(&["model", "run", "e", "echo"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.all().contains("orch:plugin@0.1.0"), "{}", run.all());
}
