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

/// Every place a secret could show: the run's output, `runs show`, and every file under .orch/.
fn assert_nothing_shows(repo: &TestRepo, seen: &str) {
    assert!(!seen.contains(SECRET), "secret in output:\n{seen}");
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    for r in runs.as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        for args in [
            &["--json", "runs", "show", id][..],
            &["runs", "show", id][..],
        ] {
            let shown = repo.orch(args).ok();
            assert!(
                !shown.all().contains(SECRET),
                "secret in the run record: {}",
                shown.all()
            );
        }
    }
    assert!(
        !contains_bytes(&repo.orch_dir_bytes(), SECRET),
        "secret in the data store or another .orch file"
    );
}

#[test]
fn a_plugin_that_logs_and_returns_a_secret_shows_stars() {
    let repo = leaky_repo();
    repo.write(
        "models/greeter.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: ${{ vault.get(\"proxmox-vault\", \"password\") }}\n",
    );
    let run = repo
        .orch(&["-v", "--json", "model", "run", "greeter", "echo"])
        .ok();
    assert_eq!(
        run.json()["output"]["greeting"],
        "***",
        "the output is redacted, not dropped: {}",
        run.stdout
    );
    let human = repo.orch(&["-vv", "model", "run", "greeter", "echo"]).ok();
    assert_nothing_shows(&repo, &format!("{}{}", run.all(), human.all()));
}

#[test]
fn a_write_holding_a_vault_secret_is_refused_and_nothing_is_stored() {
    let repo = leaky_repo();
    let run = repo
        .orch(&["-v", "--json", "model", "run", "leaky", "leak"])
        .code(1);
    let all = run.all();
    assert!(
        all.contains("the secret is ***"),
        "the log line is redacted, not dropped: {all}"
    );
    for part in [
        "leaky.leak",
        "plugin `testplug`",
        "a value from the vault",
        "resource item/leak",
        "at attributes.secret",
        "nothing from this call was stored",
        "do not take it from the vault",
    ] {
        assert!(all.contains(part), "the refusal says `{part}`: {all}");
    }
    let human = repo.orch(&["-vv", "model", "run", "leaky", "leak"]).code(1);
    let data = repo.orch(&["--json", "data", "list", "leaky"]).ok().json();
    assert_eq!(data, serde_json::json!([]), "nothing may be stored");
    assert_nothing_shows(&repo, &format!("{all}{}", human.all()));
}

#[test]
fn a_secret_used_as_a_resource_name_is_refused_too() {
    let repo = leaky_repo();
    repo.write(
        "models/named.yaml",
        "type: test/echo\nmethods:\n  write:\n    arguments:\n      name: ${{ vault.get(\"proxmox-vault\", \"password\") }}\n      attributes: { fine: true }\n",
    );
    let run = repo
        .orch(&["--json", "model", "run", "named", "write"])
        .code(1);
    let all = run.all();
    assert!(
        all.contains("resource item/***, at name")
            && all.contains("nothing from this call was stored"),
        "{all}"
    );
    let list = repo.orch(&["--json", "data", "list", "named"]).ok();
    assert_eq!(list.json(), serde_json::json!([]));
    let human = repo.orch(&["data", "list", "named"]).ok();
    assert_nothing_shows(&repo, &format!("{all}{}{}", list.all(), human.all()));
}

#[test]
fn a_string_passed_off_as_ssh_credentials_never_rewrites_another_model_s_data() {
    let repo = TestRepo::new(&["testplug", "hostile"]);
    repo.write(
        "models/h.yaml",
        "type: hostile/plugin\nglobalArguments:\n  allowedUrl: http://127.0.0.1:9\n",
    );
    repo.write("models/inventory.yaml", "type: test/echo\n");
    repo.write(
        "workflows/poison.yaml",
        "name: poison\njobs:\n  - name: main\n    steps:\n      - name: poison\n        task: { type: model_method, modelIdOrName: h, methodName: sshPoison, inputs: { password: \"10.0.0\" } }\n      - name: record\n        dependsOn: [{ step: poison, condition: { type: succeeded } }]\n        task: { type: model_method, modelIdOrName: inventory, methodName: write, inputs: { name: vm-143, attributes: { ip: \"10.0.0.143\" } } }\n",
    );
    let run = repo.orch(&["-v", "--json", "run", "poison"]).ok();
    assert!(
        run.stdout.contains("not covered by the plugin's manifest"),
        "the SSH target was denied: {}",
        run.stdout
    );
    let stored = repo
        .orch(&["--json", "data", "get", "inventory", "vm-143"])
        .ok()
        .json();
    assert_eq!(
        stored["attributes"]["ip"], "10.0.0.143",
        "another model's data was rewritten: {stored}"
    );
    assert!(
        !run.all().contains("***"),
        "a denied credential joined the redaction set: {}",
        run.all()
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
