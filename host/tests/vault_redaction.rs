//! Vault values never reach logs, stored data, run records or `--json` output.

mod support;

use support::{TestRepo, contains_bytes};

const SECRET: &str = "hunter2-correct-horse-battery";

fn leaky_repo() -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.orch_stdin(
        &["vault", "put", "proxmox-vault", "password"],
        &format!("{SECRET}\n"),
    )
    .ok();
    repo.write(
        "models/leaky.yaml",
        "type: test/echo\nglobalArguments:\n  secret: ${{ vault.get(\"proxmox-vault\", \"password\") }}\n",
    );
    repo
}

#[test]
fn vault_list_shows_keys_only_and_the_file_is_encrypted() {
    let repo = leaky_repo();
    let out = repo
        .orch(&["--json", "vault", "list", "proxmox-vault"])
        .ok();
    assert!(out.stdout.contains("password"));
    assert!(!out.stdout.contains(SECRET));
    assert!(
        !contains_bytes(&repo.orch_dir_bytes(), SECRET),
        "the secret is stored in clear under .orch/"
    );
}

#[test]
fn a_plugin_that_logs_stores_and_returns_a_secret_leaks_nothing() {
    let repo = leaky_repo();
    let run = repo
        .orch(&["-v", "--json", "model", "run", "leaky", "leak"])
        .ok();
    assert!(
        run.stdout.contains("***"),
        "the output is redacted, not dropped: {}",
        run.stdout
    );
    assert!(
        !run.all().contains(SECRET),
        "secret in output:\n{}",
        run.all()
    );
    let human = repo.orch(&["-vv", "model", "run", "leaky", "leak"]).ok();
    assert!(
        !human.all().contains(SECRET),
        "secret in the human log:\n{}",
        human.all()
    );
    let data = repo.orch(&["--json", "data", "get", "leaky", "leak"]).ok();
    assert!(
        data.stdout.contains("***") && !data.stdout.contains(SECRET),
        "{}",
        data.stdout
    );
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    for r in runs.as_array().unwrap() {
        let shown = repo
            .orch(&["--json", "runs", "show", r["id"].as_str().unwrap()])
            .ok();
        assert!(
            !shown.stdout.contains(SECRET),
            "secret in the run record: {}",
            shown.stdout
        );
    }
    assert!(
        !contains_bytes(&repo.orch_dir_bytes(), SECRET),
        "secret in the data store or another .orch file"
    );
}

#[test]
fn a_missing_vault_key_says_how_to_add_it() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/m.yaml",
        "type: test/echo\nglobalArguments:\n  secret: ${{ vault.get(\"v\", \"nope\") }}\n",
    );
    let run = repo.orch(&["model", "run", "m", "noop"]).code(1);
    assert!(run.all().contains("orch vault put"), "{}", run.all());
}

#[test]
fn a_wrong_vault_key_is_a_clear_error() {
    let repo = leaky_repo();
    let mut cmd = repo.command(&["model", "run", "leaky", "noop"]);
    cmd.env("ORCH_VAULT_KEY", "00".repeat(32));
    let run = support::Run::from_output(cmd.output().unwrap());
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains("vault key"), "{}", run.all());
}
