use super::*;

const NODE_ID: &str = "0b7c6e1a-2f3d-4e5a-9b8c-7d6e5f4a3b2c";

fn swamp_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    write(".swamp.yaml", "swampVersion: 0.1.0\n");
    write(
        &format!(".swamp/definitions/@user/proxmox/node/{NODE_ID}.yaml"),
        &format!(
            "id: {NODE_ID}\nname: keebDev02\ntype: '@user/proxmox/node'\ntypeVersion: 2026.02.11.1\n\
             globalArguments:\n  apiUrl: https://10.0.0.4:8006\n  username: root\n  password: hunter2-plain\n"
        ),
    );
    write(
        "models/@user/minecraft/server/mc.yaml",
        "name: mc\nglobalArguments:\n  host: ${{ model.fleet.resource.vm[\"mc\"].attributes.ip }}\n  \
         privateKey: ${{ vault.get(\"ssh-vault\", \"private-key\") }}\n",
    );
    write(
        "models/@user/tailscale/node/ts.yaml",
        "name: ts\ntype: '@user/tailscale/node'\nglobalArguments:\n  authKey: tskey-abc\n",
    );
    write(
        "extensions/models/tailscale_node.ts",
        "export const model = { type: \"@user/tailscale/node\" };\n",
    );
    write(
        "workflows/auth/workflow.yaml",
        &format!(
            "id: 11111111-2222-3333-4444-555555555555\nname: auth\nversion: 1\njobs:\n  - name: a\n    steps:\n      - name: auth\n        \
             condition: ${{{{ inputs.go == true }}}}\n        task:\n          type: model_method\n          \
             modelIdOrName: {NODE_ID}\n          methodName: auth\n"
        ),
    );
    dir
}

fn run(src: &Path, dry_run: bool) -> (ImportReport, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("orch");
    let report = import_swamp(&ImportOptions {
        source: src.to_path_buf(),
        into: Some(into.clone()),
        dry_run,
        force: false,
    })
    .unwrap();
    (report, out)
}

#[test]
fn uuid_model_reference_becomes_the_model_name() {
    let src = swamp_repo();
    let (report, out) = run(src.path(), false);
    let into = out.path().join("orch");
    assert!(report.complete(), "{}", report.render());
    let wf = fs::read_to_string(into.join("workflows/auth.yaml")).unwrap();
    assert!(wf.contains("modelIdOrName: keebDev02"), "{wf}");
    assert!(wf.contains("guard: inputs.go == true"), "{wf}");
    assert!(!wf.contains("version"), "{wf}");
}

#[test]
fn plaintext_password_moves_to_the_vault() {
    let src = swamp_repo();
    let (report, out) = run(src.path(), false);
    let into = out.path().join("orch");
    let node = fs::read_to_string(into.join("models/keebDev02.yaml")).unwrap();
    assert!(!node.contains("hunter2-plain"), "{node}");
    assert!(
        node.contains("vault.get(\"keebDev02\", \"password\")"),
        "{node}"
    );
    assert!(node.contains("type: proxmox/node"), "{node}");
    let replaced: Vec<_> = report
        .secrets_replaced
        .iter()
        .map(|s| s.at.clone())
        .collect();
    assert!(
        replaced.contains(&format!(
            ".swamp/definitions/@user/proxmox/node/{NODE_ID}.yaml:8: globalArguments.password"
        )),
        "{replaced:?}"
    );
    assert!(
        report
            .vault_keys
            .iter()
            .any(|v| v.vault == "ssh-vault" && v.key == "private-key")
    );
}

#[test]
fn ssh_arguments_are_renamed_and_unmapped_types_listed() {
    let src = swamp_repo();
    let (report, out) = run(src.path(), true);
    let into = out.path().join("orch");
    assert!(!into.exists(), "a dry run writes nothing");
    let unmapped = &report.unmapped_types[0];
    assert_eq!(unmapped.swamp, "@user/tailscale/node");
    assert_eq!(
        unmapped.extension_source.as_deref(),
        Some(Path::new("extensions/models/tailscale_node.ts"))
    );
    assert_eq!(
        unmapped.definitions,
        vec!["models/@user/tailscale/node/ts.yaml:2"]
    );
    let mc = report.models.iter().find(|m| m.name == "mc").unwrap();
    assert_eq!(mc.type_name.as_deref(), Some("minecraft/server"));
}

#[test]
fn malformed_yaml_names_file_and_line_and_the_rest_is_imported() {
    let src = swamp_repo();
    fs::write(
        src.path().join("workflows/broken.yaml"),
        "name: broken\njobs:\n  - name: a\n    steps: [\n",
    )
    .unwrap();
    let (report, _) = run(src.path(), true);
    assert!(!report.complete());
    assert!(
        report.errors[0].text.starts_with("workflows/broken.yaml:"),
        "{}",
        report.errors[0].text
    );
    assert!(report.errors[0].line.is_some());
    assert_eq!(report.workflows.len(), 1);
    assert_eq!(report.models.len(), 3);
}

#[test]
fn target_inside_the_swamp_repository_is_refused() {
    let src = swamp_repo();
    let err = import_swamp(&ImportOptions {
        source: src.path().to_path_buf(),
        into: Some(src.path().join("out")),
        dry_run: false,
        force: false,
    })
    .unwrap_err();
    assert!(
        matches!(err, ImportError::TargetInsideSource { .. }),
        "{err}"
    );
}

#[test]
fn flat_layout_env_step_secrets_and_unknown_roots() {
    let src = swamp_repo();
    fs::write(
        src.path().join("models/gateway.yaml"),
        "name: gateway\ntype: ssh/host\ntags: { team: infra }\nglobalArguments:\n  host: ${{ env.GATEWAY_HOST }}\n",
    )
    .unwrap();
    fs::write(
        src.path().join("workflows/notify.yaml"),
        "name: notify\njobs:\n  - name: a\n    steps:\n      - name: ping\n        task:\n          \
         type: model_method\n          modelIdOrName: gateway\n          methodName: exec\n          \
         inputs:\n            command: ${{ workflow.run.id }}\n            apiToken: abc-123-plain\n",
    )
    .unwrap();
    let (report, out) = run(src.path(), false);
    let into = out.path().join("orch");
    assert!(report.complete(), "{}", report.render());
    let gateway = fs::read_to_string(into.join("models/gateway.yaml")).unwrap();
    assert!(
        gateway.contains("sshHost: ${{ env.GATEWAY_HOST }}"),
        "{gateway}"
    );
    assert!(!gateway.contains("tags"), "{gateway}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.text.starts_with("models/gateway.yaml:3: tags:")),
        "{:?}",
        report.notes
    );
    // orch.yaml declares the variable and loads as orch's own settings.
    let config_text = fs::read_to_string(into.join("orch.yaml")).unwrap();
    let config = crate::repo::RepoConfig::parse(&config_text, Path::new("orch.yaml")).unwrap();
    assert!(config.env.contains_key("GATEWAY_HOST"), "{config_text}");

    let notify = fs::read_to_string(into.join("workflows/notify.yaml")).unwrap();
    assert!(!notify.contains("abc-123-plain"), "{notify}");
    assert!(
        notify.contains("vault.get(\"notify\", \"ping-apiToken\")"),
        "{notify}"
    );
    let unknown = &report.not_converted[0];
    assert_eq!(unknown.file, Path::new("workflows/notify.yaml"));
    assert_eq!(unknown.line, Some(11));
    assert!(
        unknown.message.contains("`workflow`"),
        "{}",
        unknown.message
    );
}

#[test]
fn a_result_orch_refuses_is_written_and_reported() {
    let src = swamp_repo();
    // A step without a task converts, but orch's workflow parser refuses it.
    fs::write(
        src.path().join("workflows/half.yaml"),
        "name: half\njobs:\n  - name: a\n    steps:\n      - name: nothing\n",
    )
    .unwrap();
    let (report, out) = run(src.path(), false);
    assert!(!report.complete());
    let error = &report.errors[0];
    assert_eq!(error.file, Path::new("workflows/half.yaml"));
    assert!(
        error.message.contains("orch refuses the result") && error.message.contains("task"),
        "{}",
        error.message
    );
    assert!(out.path().join("orch/workflows/half.yaml").is_file());
}

#[test]
fn a_target_that_climbs_back_into_the_swamp_repository_is_refused() {
    let src = swamp_repo();
    let name = src
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let sneaky = src
        .path()
        .join("..")
        .join("not-there-yet")
        .join("..")
        .join(&name)
        .join("out");
    let err = import_swamp(&ImportOptions {
        source: src.path().to_path_buf(),
        into: Some(sneaky),
        dry_run: false,
        force: false,
    })
    .unwrap_err();
    assert!(
        matches!(err, ImportError::TargetInsideSource { .. }),
        "{err}"
    );
    assert!(!src.path().join("out").exists());
}
