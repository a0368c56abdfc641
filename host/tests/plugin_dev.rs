//! The plugin author's loop through the real binary: `orch plugin new`, `build`, `install`,
//! `list`, and the bad inputs each refuses.

mod support;

use std::path::Path;
use std::process::Command;
use support::{Run, TestRepo};

fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// Every entry of the repo's plugins/ directory.
fn plugin_entries(repo: &TestRepo) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.path().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn install_refuses_a_tampered_bundle_and_leaves_nothing_behind() {
    let repo = TestRepo::new(&[]);
    let src = tempfile::tempdir().unwrap();
    let bundle = src.path().join("testplug");
    copy_bundle(&support::dist().join("testplug"), &bundle);
    let wasm = bundle.join("plugin.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wasm, bytes).unwrap();
    let run = repo
        .orch(&["plugin", "install", bundle.to_str().unwrap()])
        .code(2);
    assert!(run.stderr.contains("sha256"), "{}", run.all());
    assert!(run.stderr.contains("testplug"), "{}", run.all());
    assert!(
        plugin_entries(&repo).is_empty(),
        "{:?}",
        plugin_entries(&repo)
    );
}

#[test]
fn install_refuses_a_second_bundle_with_the_same_id_unless_replace() {
    let repo = TestRepo::new(&[]);
    let bundle = support::dist().join("testplug");
    let first = repo
        .orch(&["--json", "plugin", "install", bundle.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(first["replaced"], false);
    let again = repo
        .orch(&["plugin", "install", bundle.to_str().unwrap()])
        .code(2);
    assert!(
        again.stderr.contains("already installed") && again.stderr.contains("--replace"),
        "{}",
        again.all()
    );
    let replaced = repo
        .orch(&[
            "--json",
            "plugin",
            "install",
            "--replace",
            bundle.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(replaced["replaced"], true);
    assert_eq!(plugin_entries(&repo), vec!["testplug".to_string()]);
}

#[test]
fn install_takes_a_tar_and_list_shows_version_api_and_types() {
    let repo = TestRepo::new(&[]);
    let src = tempfile::tempdir().unwrap();
    let archive = src.path().join("testplug.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    builder
        .append_dir_all("testplug", support::dist().join("testplug"))
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    repo.orch(&["plugin", "install", archive.to_str().unwrap()])
        .ok();
    let list = repo.orch(&["--json", "plugin", "list"]).ok().json();
    let plugin = &list[0];
    assert_eq!(plugin["id"], "testplug");
    assert_eq!(plugin["api"], "0.2.0");
    assert!(plugin["version"].is_string());
    assert!(
        plugin["types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "test/echo"),
        "{list}"
    );
    let human = repo.orch(&["plugin", "list"]).ok();
    assert!(human.stdout.contains("test/echo"), "{}", human.all());
}

#[test]
fn install_refuses_an_archive_with_a_link_and_leaves_nothing_behind() {
    let repo = TestRepo::new(&[]);
    let src = tempfile::tempdir().unwrap();
    let archive = src.path().join("evil.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    builder
        .append_dir_all("testplug", support::dist().join("testplug"))
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    builder
        .append_link(&mut header, "testplug/extra", "/etc/passwd")
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    let run = repo
        .orch(&["plugin", "install", archive.to_str().unwrap()])
        .code(2);
    assert!(run.stderr.contains("not a regular file"), "{}", run.all());
    assert!(
        plugin_entries(&repo).is_empty(),
        "{:?}",
        plugin_entries(&repo)
    );
}

#[test]
fn install_refuses_a_directory_that_is_not_a_bundle() {
    let repo = TestRepo::new(&[]);
    let empty = tempfile::tempdir().unwrap();
    let run = repo
        .orch(&["plugin", "install", empty.path().to_str().unwrap()])
        .code(2);
    assert!(run.stderr.contains("not a bundle"), "{}", run.all());
    assert!(plugin_entries(&repo).is_empty());
}

#[test]
fn new_refuses_a_non_empty_directory() {
    let repo = TestRepo::new(&[]);
    let run = repo
        .orch(&["plugin", "new", repo.path().to_str().unwrap()])
        .code(2);
    assert!(run.stderr.contains("not empty"), "{}", run.all());
}

#[test]
fn new_refuses_sdk_with_a_typescript_plugin_and_writes_nothing() {
    let repo = TestRepo::new(&[]);
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("hello");
    let run = repo
        .orch(&[
            "plugin",
            "new",
            dir.to_str().unwrap(),
            "--lang",
            "ts",
            "--sdk",
            "/nowhere",
        ])
        .code(2);
    assert!(run.stderr.contains("--sdk"), "{}", run.all());
    assert!(run.stderr.contains("--lang ts"), "{}", run.all());
    assert!(!dir.exists(), "nothing written");
}

#[test]
fn a_typescript_package_without_a_bundle_template_is_refused_naming_it() {
    let repo = TestRepo::new(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.json"), "{}").unwrap();
    let run = repo.orch(&["plugin", "build", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("bundle.toml"), "{}", run.all());
    assert!(!dir.path().join("dist").exists(), "nothing half-built");
}

/// The whole loop: a generated plugin builds, installs, runs, and its own unit tests pass.
#[test]
fn a_generated_plugin_builds_installs_and_runs_its_methods() {
    let repo = TestRepo::new(&[]);
    let (_work, dir) = repo.built_hello_plugin();
    let bundle = dir.join("dist/hello");
    assert!(bundle.join("plugin.toml").is_file());
    repo.orch(&["plugin", "install", bundle.to_str().unwrap()])
        .ok();
    repo.write(
        "models/hi.yaml",
        "type: acme/hello\nname: hi\nglobalArguments:\n  name: world\n",
    );
    let greet = repo.orch(&["model", "run", "hi", "greet"]).ok();
    assert!(greet.all().contains("Hello, world!"), "{}", greet.all());
    repo.orch(&["model", "run", "hi", "greet"]).ok();
    let show = repo.orch(&["model", "run", "hi", "show"]).ok();
    assert!(show.stdout.contains("\"count\": 2"), "{}", show.all());

    // The generated unit tests pass natively.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .output()
        .unwrap();
    let test = Run::from_output(out);
    assert_eq!(
        test.code,
        0,
        "cargo test of the generated plugin failed:\n{}",
        test.all()
    );
    assert!(
        test.all().contains("test result: ok. 2 passed"),
        "{}",
        test.all()
    );
}
