use std::fs;
use std::path::Path;

use super::*;

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn sample_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "orch.yaml",
        "env:\n  PROXMOX_NODE: keeb-dev-02\n  API: { default: https://x, description: api }\n  NO_DEFAULT: { description: set me }\n",
    );
    write(root, "models/fleet.yaml", "type: proxmox/vm\n");
    write(root, "models/keebDev02.yml", "type: proxmox/node\n");
    write(root, "models/README.md", "not a model");
    write(
        root,
        "workflows/sync-fleet.yaml",
        "jobs:\n  - name: sync\n    steps:\n      - name: auth\n        task: { type: model_method, modelIdOrName: keebDev02, methodName: auth }\n",
    );
    dir
}

#[test]
fn discover_walks_up_to_the_directory_holding_orch_yaml() {
    let dir = sample_repo();
    let nested = dir.path().join("models/deep/er");
    fs::create_dir_all(&nested).unwrap();
    assert_eq!(Repo::discover(&nested).unwrap(), dir.path());
    assert_eq!(Repo::discover(dir.path()).unwrap(), dir.path());
}

#[test]
fn discover_outside_a_repo_says_to_run_orch_init() {
    let dir = tempfile::tempdir().unwrap();
    let err = Repo::discover(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RepoError::NotFound { .. }));
    assert!(text.contains("run `orch init`"), "{text}");
    assert!(text.contains("--repo"), "{text}");
}

#[test]
fn load_reads_config_models_and_workflows() {
    let dir = sample_repo();
    let repo = Repo::load(dir.path()).unwrap();
    assert_eq!(repo.root, dir.path());
    assert_eq!(
        repo.models.keys().collect::<Vec<_>>(),
        ["fleet", "keebDev02"]
    );
    assert_eq!(repo.models["fleet"].file, Path::new("models/fleet.yaml"));
    assert_eq!(repo.workflows["sync-fleet"].jobs[0].steps[0].name, "auth");
    assert_eq!(repo.config.concurrency, DEFAULT_CONCURRENCY);
    assert_eq!(repo.orch_dir(), dir.path().join(".orch"));
    assert_eq!(repo.plugin_dirs(), [dir.path().join("plugins")]);
}

#[test]
fn load_keeps_every_broken_file_with_its_diagnostics() {
    let dir = sample_repo();
    let root = dir.path();
    write(
        root,
        "models/broken.yaml",
        "type: proxmox/vm\nglobalArgs: {}\n",
    );
    write(
        root,
        "workflows/bad.yaml",
        "jobs:\n  - name: a\n    stpes: []\n",
    );
    write(root, "workflows/syntax.yaml", "jobs:\n  - name: [\n");
    let repo = Repo::load(root).unwrap();
    let text: Vec<String> = repo.problems().iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert_eq!(
        text[0],
        "models/broken.yaml:2: globalArgs: unknown field `globalArgs`; did you mean `globalArguments`?"
    );
    assert_eq!(
        text[1],
        "workflows/bad.yaml:3: jobs[0].stpes: unknown field `stpes`; did you mean `steps`?"
    );
    assert!(
        text[2].starts_with("workflows/syntax.yaml:3:1: invalid YAML: "),
        "{}",
        text[2]
    );
    // The good files are all there; the broken ones are set aside by name.
    assert_eq!(
        repo.models.keys().collect::<Vec<_>>(),
        ["fleet", "keebDev02"]
    );
    assert_eq!(repo.workflows.keys().collect::<Vec<_>>(), ["sync-fleet"]);
    assert_eq!(repo.broken.models.keys().collect::<Vec<_>>(), ["broken"]);
    assert_eq!(
        repo.broken.workflows.keys().collect::<Vec<_>>(),
        ["bad", "syntax"]
    );
    // Asking for a broken one by name gives its problems, not "unknown".
    assert_eq!(repo.model("broken").unwrap_err().to_string(), text[0]);
    assert!(
        repo.workflow("syntax")
            .unwrap_err()
            .to_string()
            .starts_with("workflows/syntax.yaml:3:1")
    );
}

#[test]
fn a_broken_orch_yaml_fails_the_load() {
    let dir = sample_repo();
    write(dir.path(), "orch.yaml", "concurency: 3\n");
    let Err(RepoError::Invalid(diags)) = Repo::load(dir.path()) else {
        panic!("expected diagnostics");
    };
    assert_eq!(
        diags[0].to_string(),
        "orch.yaml:1: concurency: unknown field `concurency`; did you mean `concurrency`?"
    );
}

#[test]
fn a_broken_orch_yaml_is_all_a_load_reports_though_a_definition_parsed_beside_it_is_broken_too() {
    let dir = sample_repo();
    write(dir.path(), "orch.yaml", "concurency: 3\n");
    write(dir.path(), "models/fleet.yaml", "type: [\n");
    let Err(RepoError::Invalid(diags)) = Repo::load_for_workflow(dir.path(), "sync-fleet") else {
        panic!("expected diagnostics");
    };
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].to_string().starts_with("orch.yaml:1: concurency"),
        "{}",
        diags[0]
    );
}

#[test]
fn same_name_with_yaml_and_yml_is_reported() {
    let dir = sample_repo();
    write(dir.path(), "models/fleet.yml", "type: proxmox/vm\n");
    let repo = Repo::load(dir.path()).unwrap();
    let diags = &repo.broken.models["fleet"];
    assert_eq!(diags[0].file, Path::new("models/fleet.yml"));
    assert!(
        diags[0]
            .message
            .contains("also defined by models/fleet.yaml")
    );
    assert!(!repo.models.contains_key("fleet"));
}

#[test]
fn files_that_are_not_regular_or_not_utf8_are_broken_with_their_name() {
    let dir = sample_repo();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("models/zero.yaml")).unwrap();
    fs::write(
        dir.path().join("workflows/latin1.yaml"),
        b"jobs: []\n# caf\xe9\n",
    )
    .unwrap();
    let repo = Repo::load(dir.path()).unwrap();
    assert!(
        repo.broken.models["zero"][0]
            .to_string()
            .starts_with("models/zero.yaml: is not a regular file (a device)"),
        "{:?}",
        repo.broken.models["zero"]
    );
    assert_eq!(
        repo.broken.workflows["latin1"][0].to_string(),
        "workflows/latin1.yaml:2:6: invalid UTF-8 (byte 0xe9 at byte offset 14); save the file as UTF-8"
    );
}

#[test]
fn byte_order_marks_are_accepted_in_every_file_with_correct_lines() {
    let dir = sample_repo();
    let root = dir.path();
    write(root, "orch.yaml", "\u{feff}concurrency: 2\n");
    write(
        root,
        "models/bom.yaml",
        "\u{feff}type: proxmox/vm\nglobalArguments:\n  a: 1\n",
    );
    write(
        root,
        "workflows/bom.yaml",
        "\u{feff}jobs:\n  - name: a\n    stpes: []\n",
    );
    let repo = Repo::load(root).unwrap();
    assert_eq!(repo.config.concurrency, 2);
    assert_eq!(repo.models["bom"].line_of("globalArguments.a"), Some(3));
    assert_eq!(
        repo.broken.workflows["bom"][0].to_string(),
        "workflows/bom.yaml:3: jobs[0].stpes: unknown field `stpes`; did you mean `steps`?"
    );
}

#[test]
fn missing_directories_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "orch.yaml", "");
    let repo = Repo::load(dir.path()).unwrap();
    assert!(repo.models.is_empty() && repo.workflows.is_empty());
}

#[test]
fn load_without_orch_yaml_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Repo::load(dir.path()),
        Err(RepoError::NotFound { .. })
    ));
}

#[test]
fn unknown_model_suggests_the_closest_and_lists_models() {
    let dir = sample_repo();
    let repo = Repo::load(dir.path()).unwrap();
    assert_eq!(
        repo.model("flet").unwrap_err().to_string(),
        "unknown model `flet`; did you mean `fleet`? (models/ has: fleet, keebDev02)"
    );
    assert_eq!(
        repo.model("zzz").unwrap_err().to_string(),
        "unknown model `zzz`; add models/zzz.yaml or use an existing one (models/ has: fleet, keebDev02)"
    );
    assert_eq!(repo.model("fleet").unwrap().type_name, "proxmox/vm");
}

#[test]
fn unknown_workflow_suggests_the_closest() {
    let dir = sample_repo();
    let repo = Repo::load(dir.path()).unwrap();
    assert_eq!(
        repo.workflow("sync-flet").unwrap_err().to_string(),
        "unknown workflow `sync-flet`; did you mean `sync-fleet`? (workflows/ has: sync-fleet)"
    );
    assert!(repo.workflow("sync-fleet").is_ok());
}

#[test]
fn env_values_prefer_the_process_environment() {
    let dir = sample_repo();
    let repo = Repo::load(dir.path()).unwrap();
    let values = repo.env_values_from(|name| (name == "API").then(|| "https://override".into()));
    assert_eq!(values["API"], "https://override");
    assert_eq!(values["PROXMOX_NODE"], "keeb-dev-02");
    assert!(!values.contains_key("NO_DEFAULT"));
    assert_eq!(repo.config.env["API"].description.as_deref(), Some("api"));
}

#[test]
fn init_creates_a_repository_that_loads_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new");
    Repo::init(&root).unwrap();
    for sub in ["models", "workflows", "plugins", ".orch"] {
        assert!(root.join(sub).is_dir(), "{sub}");
    }
    assert_eq!(
        fs::read_to_string(root.join(".gitignore")).unwrap(),
        ".orch/\n"
    );
    let repo = Repo::load(&root).unwrap();
    assert_eq!(repo.config, RepoConfig::default());
    assert_eq!(Repo::discover(&root.join("models")).unwrap(), root);
}

#[test]
fn init_refuses_an_existing_repository() {
    let dir = sample_repo();
    let before = fs::read_to_string(dir.path().join("orch.yaml")).unwrap();
    let err = Repo::init(dir.path()).unwrap_err();
    assert!(matches!(err, RepoError::AlreadyInitialized { .. }));
    assert!(err.to_string().contains("already"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("orch.yaml")).unwrap(),
        before
    );
}

#[test]
fn init_appends_to_an_existing_gitignore_once() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".gitignore", "target");
    Repo::init(dir.path()).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join(".gitignore")).unwrap(),
        "target\n.orch/\n"
    );

    let other = tempfile::tempdir().unwrap();
    write(other.path(), ".gitignore", "/.orch\n");
    Repo::init(other.path()).unwrap();
    assert_eq!(
        fs::read_to_string(other.path().join(".gitignore")).unwrap(),
        "/.orch\n"
    );
}

#[test]
fn invalid_error_lists_one_diagnostic_per_line() {
    let err = RepoError::Invalid(vec![
        Diagnostic::file("a.yaml", "one"),
        Diagnostic::file("b.yaml", "two"),
    ]);
    assert_eq!(err.to_string(), "a.yaml: one\nb.yaml: two");
}

#[test]
fn hostile_yaml_never_panics() {
    let deep_flow = format!("jobs: {}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_block: String = (0..300)
        .map(|i| format!("{}- \n", "  ".repeat(i)))
        .collect();
    let inputs = [
        "",
        "~",
        "null",
        ":",
        "{",
        "- - -",
        "? [a, b]\n: c\n",
        "a: &x [*x]\n",
        "a: *undefined\n",
        "---\njobs: []\n---\njobs: []\n",
        "!custom jobs: []\n",
        "jobs: !!binary aGVsbG8=\n",
        "\u{feff}jobs: []\n",
        "jobs: ~\n",
        "jobs:\n  - ~\n",
        "jobs: [{name: a, steps: [{name: s, task: {type: workflow, workflowIdOrName: w, inputs: ~}}]}]\n",
        "jobs: [{name: a, steps: [{name: s, task: {type: ~}}]}]\n",
        "jobs: [{name: a, dependsOn: [{job: b, condition: {type: and}}]}]\n",
        "jobs: [{name: a, dependsOn: [{job: b, condition: 7}]}]\n",
        "type: x\nglobalArguments: {1: 2, [a]: b}\n",
        "type: x\nmethods: {a: {arguments: {x: .inf, y: -.nan, z: 0x1F, w: 99999999999999999999999}}}\n",
        "env: {A: [1]}\n",
        "env: {A: {default: [1]}}\n",
        "a: 'unterminated\n",
        "\t\t\t",
        deep_flow.as_str(),
        deep_block.as_str(),
    ];
    for text in inputs {
        let _ = LineIndex::parse(text);
        let _ = crate::workflow::Workflow::parse(text, Path::new("workflows/x.yaml"));
        let _ = Definition::parse(text, Path::new("models/x.yaml"));
        let _ = RepoConfig::parse(text, Path::new("orch.yaml"));
    }
}

#[test]
fn schema_with_unreachable_reference_is_a_diagnostic_not_a_panic() {
    let text = "inputs:\n  $ref: 'https://example.invalid/schema.json'\njobs: []\n";
    let wf = crate::workflow::Workflow::parse(text, Path::new("workflows/x.yaml")).unwrap();
    let errs = crate::workflow::validate_inputs(&wf, &serde_json::json!({})).unwrap_err();
    assert!(
        errs[0].contains("inputs schema of workflow `x` is invalid"),
        "{}",
        errs[0]
    );
}
