//! Deploying an orch repository to another machine: its vaults travel re-encrypted for the
//! remote's key (`orch vault export --for` here, `orch vault import` there), never as plaintext.

mod support;

use support::{TestRepo, contains_bytes};

const SECRET: &str = "pve-password-correct-horse-42";

/// A repository with the vault `proxmox` holding `SECRET`, and a second (the remote) with its own key.
fn local_and_remote() -> (TestRepo, TestRepo) {
    let local = TestRepo::new(&[]);
    local
        .orch_stdin(
            &["vault", "put", "proxmox", "password"],
            &format!("{SECRET}\n"),
        )
        .ok();
    local
        .orch_stdin(&["vault", "put", "proxmox", "user"], "root@pam\n")
        .ok();
    let remote = TestRepo::new(&[]);
    // The remote's key is created on its first vault use, as on a fresh machine.
    remote
        .orch_stdin(&["vault", "put", "local-only", "x"], "y\n")
        .ok();
    (local, remote)
}

#[test]
fn an_exported_vault_imports_on_the_remote_and_no_plaintext_is_written() {
    let (local, remote) = local_and_remote();
    let remote_key = remote.path().join(".orch/vault.key");
    let bundle = local.path().join("proxmox.sealed.json");
    let out = local
        .orch(&[
            "--json",
            "vault",
            "export",
            "proxmox",
            "--for",
            remote_key.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ])
        .ok();
    assert!(!out.all().contains(SECRET), "{}", out.all());
    let sealed = std::fs::read(&bundle).unwrap();
    assert!(!contains_bytes(&sealed, SECRET));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bundle).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Over stdin, as `ssh remote orch vault import proxmox -` receives it.
    let sealed_text = String::from_utf8(sealed).unwrap();
    let imported = remote
        .orch_stdin(&["--json", "vault", "import", "proxmox", "-"], &sealed_text)
        .ok();
    assert_eq!(
        imported.json()["keys"],
        serde_json::json!(["password", "user"])
    );
    assert!(!imported.all().contains(SECRET));
    let listed = remote.orch(&["--json", "vault", "list", "proxmox"]).ok();
    assert_eq!(
        listed.json()["keys"],
        serde_json::json!(["password", "user"])
    );
    assert!(!contains_bytes(&remote.orch_dir_bytes(), SECRET));
}

#[test]
fn a_bundle_sealed_for_another_key_is_refused_and_changes_nothing() {
    let (local, remote) = local_and_remote();
    // Sealed for the local machine's own key, so the remote cannot open it.
    let own_key = local.path().join(".orch/vault.key");
    let bundle = local.path().join("wrong.json");
    local
        .orch(&[
            "vault",
            "export",
            "proxmox",
            "--for",
            own_key.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ])
        .ok();
    let refused = remote
        .orch(&["vault", "import", "proxmox", bundle.to_str().unwrap()])
        .code(1);
    assert!(refused.stderr.contains("wrong.json"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot decrypt"),
        "{}",
        refused.stderr
    );
    let listed = remote.orch(&["--json", "vault", "list", "proxmox"]).ok();
    assert_eq!(listed.json()["keys"], serde_json::json!([]));
}
