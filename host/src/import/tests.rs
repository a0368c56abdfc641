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
        "models/@user/unifi/controller/ts.yaml",
        "name: ts\ntype: '@user/unifi/controller'\nglobalArguments:\n  apiKey: abc\n",
    );
    write(
        "extensions/models/unifi_controller.ts",
        "export const model = { type: \"@user/unifi/controller\" };\n",
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
    assert_eq!(unmapped.swamp, "@user/unifi/controller");
    assert_eq!(
        unmapped.extension_source.as_deref(),
        Some(Path::new("extensions/models/unifi_controller.ts"))
    );
    assert_eq!(
        unmapped.definitions,
        vec!["models/@user/unifi/controller/ts.yaml:2"]
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
    // orch definitions carry tags now (issue 12): written, not dropped with a note.
    assert!(gateway.contains("tags:\n  team: infra\n"), "{gateway}");
    assert!(
        !report
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

/// A swamp repo with one workflow (`workflows/w.yaml`) and a grafana definition.
fn swamp_with_workflow(workflow: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    write(".swamp.yaml", "swampVersion: 0.1.0\n");
    write(
        "models/@user/grafana/instance/g.yaml",
        "name: g\ntype: '@user/grafana/instance'\ntags:\n  env: lab\n  tier: 2\n\
         globalArguments:\n  url: http://grafana:3000\n  token: ${{ vault.get(\"gv\", \"token\") }}\n",
    );
    write("workflows/w.yaml", workflow);
    dir
}

fn imported_workflow(src: &Path) -> (ImportReport, Value) {
    let (report, out) = run(src, false);
    let text = fs::read_to_string(out.path().join("orch/workflows/w.yaml")).unwrap();
    let value: Value = serde_yaml_ng::from_str(&text).unwrap();
    (report, value)
}

fn step_named<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {job:#}"))
}

const CALL: &str = "task: { type: model_method, modelIdOrName: g, methodName: discover }";

#[test]
fn an_approval_on_a_step_becomes_a_manual_approval_step_it_depends_on() {
    let src = swamp_with_workflow(&format!(
        "name: w\njobs:\n  - name: j\n    steps:\n      - name: a\n        {CALL}\n      \
         - name: b\n        approval: true\n        condition: ${{{{ inputs.go }}}}\n        {CALL}\n        \
         dependsOn:\n          - step: a\n            condition: {{ type: succeeded }}\n"
    ));
    let (report, wf) = imported_workflow(src.path());
    assert!(report.complete(), "{}", report.render());
    let job = &wf["jobs"][0];
    let names: Vec<_> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["name"])
        .collect();
    assert_eq!(names, ["a", "b-approval", "b"], "{job:#}");
    let gate = step_named(job, "b-approval");
    assert_eq!(gate["task"]["type"], "manual_approval");
    assert_eq!(
        gate["dependsOn"][0]["step"], "a",
        "the gate takes b's dependencies"
    );
    assert_eq!(
        gate["guard"], "inputs.go",
        "the gate asks only when b would run"
    );
    let b = step_named(job, "b");
    assert_eq!(b["dependsOn"].as_array().unwrap().len(), 1, "{b:#}");
    assert_eq!(b["dependsOn"][0]["step"], "b-approval");
    assert_eq!(b["dependsOn"][0]["condition"]["type"], "succeeded");
    assert!(b.get("approval").is_none(), "{b:#}");
}

#[test]
fn an_approval_on_a_job_gates_the_steps_that_depended_on_nothing() {
    let src = swamp_with_workflow(&format!(
        "name: w\njobs:\n  - name: deploy\n    approval: true\n    concurrency: 2\n    steps:\n      \
         - name: a\n        {CALL}\n      - name: b\n        {CALL}\n        dependsOn:\n          \
         - step: a\n"
    ));
    let (report, wf) = imported_workflow(src.path());
    assert!(report.complete(), "{}", report.render());
    let job = &wf["jobs"][0];
    assert_eq!(job["concurrency"], 2);
    assert!(job.get("approval").is_none(), "{job:#}");
    assert_eq!(job["steps"][0]["name"], "deploy-approval");
    assert_eq!(job["steps"][0]["task"]["type"], "manual_approval");
    assert_eq!(
        step_named(job, "a")["dependsOn"][0]["step"],
        "deploy-approval"
    );
    let b = step_named(job, "b");
    assert_eq!(b["dependsOn"].as_array().unwrap().len(), 1);
    assert_eq!(b["dependsOn"][0]["step"], "a", "b already waits through a");
}

#[test]
fn manual_approval_and_assert_tasks_take_orch_field_names() {
    let src = swamp_with_workflow(
        "name: w\njobs:\n  - name: j\n    steps:\n      - name: ok\n        task:\n          \
         type: manual_approval\n          prompt: Ship it?\n          timeout: 3600\n      \
         - name: hard\n        task:\n          type: assert\n          expr: ${{ 1 < 2 }}\n          \
         message: math\n          severity: high\n      - name: soft\n        task:\n          \
         type: assert\n          expr: 2 > 1\n          severity: low\n",
    );
    let (report, wf) = imported_workflow(src.path());
    assert!(report.complete(), "{}", report.render());
    let job = &wf["jobs"][0];
    assert_eq!(
        step_named(job, "ok")["task"],
        serde_json::json!({"type": "manual_approval", "message": "Ship it?"})
    );
    assert_eq!(
        step_named(job, "hard")["task"],
        serde_json::json!({"type": "assert", "expression": "1 < 2", "message": "math", "severity": "error"})
    );
    assert_eq!(step_named(job, "soft")["task"]["severity"], "error");
    let notes = report.render();
    assert!(notes.contains("`timeout` was not written"), "{notes}");
    assert!(notes.contains("severity `low` became `error`"), "{notes}");
}

#[test]
fn tags_and_concurrency_come_across() {
    let src = swamp_with_workflow(&format!(
        "name: w\ntags:\n  env: lab\nconcurrency: 3\njobs:\n  - name: j\n    steps:\n      \
         - name: a\n        concurrency: 1\n        {CALL}\n"
    ));
    let (report, wf) = imported_workflow(src.path());
    assert!(report.complete(), "{}", report.render());
    assert_eq!(wf["tags"], serde_json::json!({"env": "lab"}));
    assert_eq!(wf["concurrency"], 3);
    assert_eq!(wf["jobs"][0]["steps"][0]["concurrency"], 1);
    let (_, out) = run(src.path(), false);
    let def = fs::read_to_string(out.path().join("orch/models/g.yaml")).unwrap();
    let def: Value = serde_yaml_ng::from_str(&def).unwrap();
    assert_eq!(def["type"], "grafana/instance");
    assert_eq!(def["tags"], serde_json::json!({"env": "lab", "tier": "2"}));
    assert_eq!(def["globalArguments"]["url"], "http://grafana:3000");
}

#[test]
fn tags_that_are_not_text_pairs_are_left_out_with_a_note() {
    let src = swamp_with_workflow(&format!(
        "name: w\ntags: [a, b]\njobs:\n  - name: j\n    steps:\n      - name: a\n        {CALL}\n"
    ));
    let (report, wf) = imported_workflow(src.path());
    assert!(wf.get("tags").is_none(), "{wf:#}");
    let notes = report.render();
    assert!(notes.contains("workflows/w.yaml:2"), "{notes}");
    assert!(
        notes.contains("orch tags are `key: value` text pairs"),
        "{notes}"
    );
}

#[test]
fn the_gate_of_a_for_each_step_has_a_plain_name_and_a_bad_approval_is_noted() {
    let src = swamp_with_workflow(&format!(
        "name: w\njobs:\n  - name: j\n    steps:\n      - name: push-${{{{ self.d }}}}\n        \
         approval: true\n        forEach:\n          item: d\n          in: [a, b]\n        {CALL}\n      \
         - name: other\n        approval: sometimes\n        {CALL}\n"
    ));
    let (report, wf) = imported_workflow(src.path());
    assert!(report.complete(), "{}", report.render());
    let job = &wf["jobs"][0];
    let gate = &job["steps"][0];
    assert_eq!(gate["name"], "push-approval", "{job:#}");
    assert!(
        gate.get("forEach").is_none(),
        "the gate asks once: {gate:#}"
    );
    assert_eq!(job["steps"][1]["dependsOn"][0]["step"], "push-approval");
    assert_eq!(
        job["steps"].as_array().unwrap().len(),
        3,
        "no gate for `other`"
    );
    let notes = report.render();
    assert!(notes.contains("`approval` is not true or false"), "{notes}");
    assert!(notes.contains("workflows/w.yaml:"), "{notes}");
}
