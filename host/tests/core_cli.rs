//! The core, end to end through the real `orch` binary: definitions, CEL wiring, versioned data,
//! workflows, runs, and the errors a user sees.

mod support;

use serde_json::json;
use support::TestRepo;

fn echo_repo() -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/source.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: hello\n",
    )
    .write(
        "models/sink.yaml",
        r#"type: test/echo
globalArguments:
  greeting: 'ip is ${{ model.source.resource.item["gold-image"].attributes.ip }}'
  extra: ${{ model.source.resource.item['gold-image'].attributes }}
"#,
    );
    repo
}

#[test]
fn init_creates_the_repository_layout() {
    let repo = TestRepo::new(&[]);
    for p in ["orch.yaml", "models", "workflows", "plugins", ".orch"] {
        assert!(repo.path().join(p).exists(), "{p} missing");
    }
    let gitignore = std::fs::read_to_string(repo.path().join(".gitignore")).unwrap();
    assert!(gitignore.contains(".orch/"));
    repo.orch(&["init"]).code(2);
}

#[test]
fn method_run_writes_versioned_resources_with_provenance() {
    let repo = echo_repo();
    let out = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "source",
            "write",
            "--input",
            "name=gold-image",
            "--input",
            r#"attributes={"ip":"10.0.0.143","vmid":109}"#,
        ])
        .ok()
        .json();
    assert_eq!(out["output"]["version"], 1);
    repo.orch(&[
        "model",
        "run",
        "source",
        "write",
        "--input",
        "name=gold-image",
        "--input",
        r#"attributes={"ip":"10.0.0.144","vmid":109}"#,
    ])
    .ok();
    let v = repo
        .orch(&["--json", "data", "versions", "source", "gold-image"])
        .ok()
        .json();
    let versions = v.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[0]["attributes"]["ip"], "10.0.0.143",
        "version 1 stays intact"
    );
    assert_eq!(versions[1]["attributes"]["ip"], "10.0.0.144");
    assert_eq!(versions[1]["provenance"]["method"], "write");
    assert!(
        versions[1]["provenance"]["runId"].is_string()
            || versions[1]["provenance"]["run_id"].is_string()
    );
    let latest = repo
        .orch(&["--json", "data", "get", "source", "gold-image"])
        .ok()
        .json();
    assert_eq!(latest["version"], 2);
    let first = repo
        .orch(&[
            "--json",
            "data",
            "get",
            "source",
            "gold-image",
            "--version",
            "1",
        ])
        .ok()
        .json();
    assert_eq!(first["attributes"]["ip"], "10.0.0.143");
}

#[test]
fn cel_wiring_resolves_typed_values_and_interpolates_text() {
    let repo = echo_repo();
    repo.orch(&[
        "model",
        "run",
        "source",
        "write",
        "--input",
        "name=gold-image",
        "--input",
        r#"attributes={"ip":"10.0.0.143","vmid":109}"#,
    ])
    .ok();
    let out = repo
        .orch(&["--json", "model", "run", "sink", "echo"])
        .ok()
        .json();
    assert_eq!(out["output"]["greeting"], "ip is 10.0.0.143");
    assert_eq!(
        out["output"]["extra"],
        json!({"ip": "10.0.0.143", "vmid": 109}),
        "a whole-value expression keeps its type"
    );
    let ip = repo
        .orch(&[
            "--json",
            "eval",
            r#"model.source.resource.item["gold-image"].attributes.ip"#,
        ])
        .ok()
        .json();
    assert_eq!(ip, json!("10.0.0.143"));
    let vmid = repo
        .orch(&[
            "--json",
            "eval",
            "model.source.resource.item['gold-image'].attributes.vmid + 1",
        ])
        .ok()
        .json();
    assert_eq!(vmid, json!(110));
}

#[test]
fn null_stays_null() {
    let repo = echo_repo();
    repo.orch(&[
        "model",
        "run",
        "source",
        "write",
        "--input",
        "name=atm10",
        "--input",
        r#"attributes={"ip":null}"#,
    ])
    .ok();
    repo.write("models/nullsink.yaml", "type: test/echo\nglobalArguments:\n  extra: ${{ model.source.resource.item.atm10.attributes.ip }}\n");
    let out = repo
        .orch(&["--json", "model", "run", "nullsink", "echo"])
        .ok()
        .json();
    assert!(out["output"]["extra"].is_null(), "{out}");
}

#[test]
fn reference_to_missing_resource_fails_with_file_line_and_expression() {
    let repo = echo_repo();
    repo.orch(&[
        "model",
        "run",
        "source",
        "write",
        "--input",
        "name=gold-image",
        "--input",
        r#"attributes={"ip":"x"}"#,
    ])
    .ok();
    repo.write("models/broken.yaml", "type: test/echo\nglobalArguments:\n  greeting: hi\n  extra: ${{ model.source.resource.item.gold-imag.attributes.ip }}\n");
    let run = repo.orch(&["model", "run", "broken", "echo"]).code(1);
    let all = run.all();
    assert!(all.contains("models/broken.yaml:4"), "{all}");
    assert!(all.contains("gold-imag"), "{all}");
    assert!(
        !all.contains("\"${{"),
        "the literal template must never pass through: {all}"
    );
}

#[test]
fn reference_to_model_without_data_says_what_to_do() {
    let repo = echo_repo();
    let run = repo.orch(&["model", "run", "sink", "echo"]).code(1);
    assert!(run.all().contains("models/sink.yaml:3"), "{}", run.all());
    assert!(run.all().contains("source"), "{}", run.all());
}

#[test]
fn failed_method_does_not_move_latest() {
    let repo = echo_repo();
    repo.orch(&[
        "model",
        "run",
        "source",
        "write",
        "--input",
        "name=a",
        "--input",
        r#"attributes={"n":1}"#,
    ])
    .ok();
    repo.orch(&[
        "model",
        "run",
        "source",
        "write",
        "--input",
        "name=a",
        "--input",
        r#"attributes={"n":2}"#,
        "--input",
        "fail_after=true",
    ])
    .code(1);
    let v = repo
        .orch(&["--json", "data", "versions", "source", "a"])
        .ok()
        .json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let latest = repo
        .orch(&["--json", "data", "get", "source", "a"])
        .ok()
        .json();
    assert_eq!(latest["attributes"]["n"], 1);
}

#[test]
fn plugin_errors_come_back_typed() {
    let repo = echo_repo();
    let run = repo
        .orch(&[
            "model",
            "run",
            "source",
            "fail",
            "--input",
            "kind=conflict",
            "--input",
            "message=VM is locked",
        ])
        .code(1);
    assert!(
        run.all().contains("conflict") && run.all().contains("VM is locked"),
        "{}",
        run.all()
    );
}

#[test]
fn arguments_are_validated_against_the_schema_before_the_call() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/bad.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: 42\n",
    );
    let run = repo.orch(&["model", "run", "bad", "noop"]).code(1);
    let all = run.all();
    assert!(
        all.contains("models/bad.yaml:3") && all.contains("globalArguments.greeting"),
        "{all}"
    );
}

#[test]
fn unknown_definition_field_suggests_the_closest_name() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/typo.yaml",
        "type: test/echo\nglobalArgument:\n  greeting: hi\n",
    );
    let run = repo.orch(&["check"]).code(2);
    assert!(
        run.stderr.contains("models/typo.yaml:2") && run.stderr.contains("globalArguments"),
        "{}",
        run.stderr
    );
    // Listing still works; the broken file is a warning.
    let run = repo.orch(&["model", "list"]).ok();
    assert!(
        run.stderr.contains("warning: models/typo.yaml:2"),
        "{}",
        run.stderr
    );
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/bad.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: [unclosed\n",
    );
    let run = repo.orch(&["check"]).code(2);
    assert!(run.stderr.contains("models/bad.yaml:4:1"), "{}", run.stderr);
}

#[test]
fn cel_syntax_error_is_caught_before_anything_runs() {
    let repo = echo_repo();
    repo.write(
        "workflows/w.yaml",
        "name: w\njobs:\n  - name: main\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: source, methodName: echo, inputs: { value: '${{ 1 + }}' } }\n",
    );
    let run = repo.orch(&["run", "w"]).code(2);
    assert!(run.stderr.contains("workflows/w.yaml:6"), "{}", run.stderr);
    // Nothing was written, so no data store was begun (half of one would refuse every open).
    assert!(!repo.path().join(".orch/data.redb").exists());
    assert!(
        repo.orch(&["--json", "runs", "list"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing ran"
    );
}

#[test]
fn workflow_runs_steps_in_dependency_order_and_records_the_run() {
    let repo = echo_repo();
    repo.write(
        "workflows/pipeline.yaml",
        r#"name: pipeline
description: write then read through CEL
inputs:
  type: object
  properties:
    vmName: { type: string }
  required: [vmName]
jobs:
  - name: main
    steps:
      - name: produce
        task:
          type: model_method
          modelIdOrName: source
          methodName: write
          inputs:
            name: ${{ inputs.vmName }}
            attributes: { ip: "10.0.0.96" }
      - name: consume
        dependsOn: [ { step: produce } ]
        task:
          type: model_method
          modelIdOrName: source
          methodName: echo
          inputs:
            value: ${{ model.source.resource.item[inputs.vmName].attributes.ip }}
      - name: only-if-failed
        dependsOn: [ { step: consume, condition: { type: failed } } ]
        task: { type: model_method, modelIdOrName: source, methodName: noop }
"#,
    );
    let record = repo
        .orch(&["--json", "run", "pipeline", "--input", "vmName=allthemons"])
        .ok()
        .json();
    assert_eq!(record["status"], "succeeded");
    let steps = record["steps"].as_array().unwrap();
    let status = |n: &str| {
        steps
            .iter()
            .find(|s| s["name"] == n)
            .map(|s| s["status"].clone())
            .unwrap()
    };
    assert_eq!(status("produce"), "succeeded");
    assert_eq!(status("consume"), "succeeded");
    assert_eq!(status("only-if-failed"), "skipped");
    let id = record["id"].as_str().unwrap();
    let shown = repo.orch(&["--json", "runs", "show", id]).ok().json();
    assert_eq!(shown["target"], "pipeline");
    let listed = repo.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(listed[0]["id"], id);
}

#[test]
fn missing_workflow_input_is_refused_before_anything_runs() {
    let repo = echo_repo();
    repo.write(
        "workflows/needs.yaml",
        "name: needs\ninputs:\n  type: object\n  properties: { vmName: { type: string } }\n  required: [vmName]\njobs:\n  - name: main\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: source, methodName: noop }\n",
    );
    let run = repo.orch(&["run", "needs"]).code(2);
    assert!(run.stderr.contains("vmName"), "{}", run.stderr);
}

#[test]
fn a_cycle_is_reported_with_the_loop() {
    let repo = echo_repo();
    repo.write(
        "workflows/loop.yaml",
        r#"name: loop
jobs:
  - name: main
    steps:
      - name: a
        dependsOn: [ { step: b } ]
        task: { type: model_method, modelIdOrName: source, methodName: noop }
      - name: b
        dependsOn: [ { step: a } ]
        task: { type: model_method, modelIdOrName: source, methodName: noop }
"#,
    );
    let run = repo.orch(&["workflow", "validate", "loop"]).code(2);
    assert!(
        run.stderr.contains("a → b → a") || run.stderr.contains("b → a → b"),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_model_and_method_are_reported_with_suggestions() {
    let repo = echo_repo();
    repo.write(
        "workflows/typos.yaml",
        "name: typos\njobs:\n  - name: main\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: sourc, methodName: noop }\n      - name: b\n        task: { type: model_method, modelIdOrName: source, methodName: ecko }\n",
    );
    let run = repo.orch(&["workflow", "validate", "typos"]).code(2);
    assert!(
        run.stderr.contains("`source`") && run.stderr.contains("`echo`"),
        "{}",
        run.stderr
    );
}

#[test]
fn type_describe_shows_generated_schemas() {
    let repo = TestRepo::new(&["testplug"]);
    let list = repo.orch(&["--json", "type", "list"]).ok().json();
    assert_eq!(list[0]["name"], "test/echo");
    let d = repo
        .orch(&["--json", "type", "describe", "test/echo"])
        .ok()
        .json();
    let methods = d["type"]["methods"].as_array().unwrap();
    let remove = methods.iter().find(|m| m["name"] == "remove").unwrap();
    assert_eq!(remove["destructive"], true);
    assert_eq!(remove["kind"], "delete");
    assert!(d["type"]["globalArgumentsSchema"]["properties"]["greeting"].is_object());
}

#[test]
fn plugin_validate_passes_a_good_bundle_and_fails_a_filesystem_plugin() {
    let repo = TestRepo::new(&[]);
    let dist = support::dist();
    let good = repo
        .orch(&[
            "--json",
            "plugin",
            "validate",
            dist.join("testplug").to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(good["ok"], true);
    let bad = repo
        .orch(&[
            "--json",
            "plugin",
            "validate",
            dist.join("hostile-fs").to_str().unwrap(),
        ])
        .code(2)
        .json();
    assert_eq!(bad["ok"], false);
    assert!(bad.to_string().contains("wasi:filesystem"), "{bad}");
}

#[test]
fn a_plugin_that_imports_the_filesystem_is_refused_at_load() {
    let repo = TestRepo::new(&["hostile-fs"]);
    repo.write("models/fs.yaml", "type: hostile/fs\n");
    let run = repo.orch(&["model", "run", "fs", "read"]);
    assert_ne!(run.code, 0);
    assert!(run.all().contains("wasi:filesystem"), "{}", run.all());
}

#[test]
fn second_load_uses_the_compile_cache() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/m.yaml", "type: test/echo\n");
    // Types come from the bundle's types.json; running a method compiles the plugin.
    repo.orch(&["model", "run", "m", "noop"]).ok();
    let cache: Vec<_> = std::fs::read_dir(repo.path().join(".orch/cache"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .collect();
    assert_eq!(cache.len(), 1, "one precompiled file");
    let before = std::fs::metadata(cache[0].path())
        .unwrap()
        .modified()
        .unwrap();
    repo.orch(&["model", "run", "m", "noop"]).ok();
    let after = std::fs::metadata(cache[0].path())
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a second run must not recompile");
}

#[test]
fn env_values_come_from_orch_yaml_defaults_and_the_process_environment() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "orch.yaml",
        "env:\n  API_URL: { default: \"https://10.0.0.4:8006\" }\n  NODE: keeb-dev-02\n",
    );
    repo.write("models/e.yaml", "type: test/echo\nglobalArguments:\n  greeting: ${{ env.API_URL }}\n  extra: ${{ env.NODE }}\n");
    let out = repo
        .orch(&["--json", "model", "run", "e", "echo"])
        .ok()
        .json();
    assert_eq!(out["output"]["greeting"], "https://10.0.0.4:8006");
    let out = support::Run::from_output(
        repo.command(&["--json", "model", "run", "e", "echo"])
            .env("API_URL", "https://127.0.0.1:8006")
            .output()
            .unwrap(),
    );
    assert_eq!(
        out.ok().json()["output"]["greeting"],
        "https://127.0.0.1:8006"
    );
}

#[test]
fn destructive_method_without_or_with_a_wrong_expected_id_is_refused_before_the_plugin_runs() {
    let repo = echo_repo();
    repo.orch(&[
        "model",
        "run",
        "source",
        "write",
        "--input",
        "name=target",
        "--input",
        r#"attributes={"id":7}"#,
    ])
    .ok();
    let run = repo
        .orch(&["model", "run", "source", "remove", "--input", "name=target"])
        .code(1);
    assert!(run.all().contains("expectId"), "{}", run.all());
    let run = repo
        .orch(&[
            "model",
            "run",
            "source",
            "remove",
            "--input",
            "name=target",
            "--input",
            "expectId=8",
        ])
        .code(1);
    assert!(
        run.all().contains("refusing") && run.all().contains("7"),
        "{}",
        run.all()
    );
    let versions = repo
        .orch(&["--json", "data", "versions", "source", "target"])
        .ok()
        .json();
    assert_eq!(
        versions.as_array().unwrap().len(),
        1,
        "the plugin never ran"
    );
    repo.orch(&[
        "model",
        "run",
        "source",
        "remove",
        "--input",
        "name=target",
        "--input",
        "expectId=7",
    ])
    .ok();
    let latest = repo
        .orch(&["--json", "data", "get", "source", "target"])
        .ok()
        .json();
    assert_eq!(latest["attributes"]["removed"], true);
}

#[test]
fn for_each_guard_nested_workflows_and_allow_failure_compose() {
    let repo = echo_repo();
    repo.write(
        "workflows/write-one.yaml",
        r#"name: write-one
inputs:
  type: object
  properties: { vmName: { type: string } }
  required: [vmName]
jobs:
  - name: main
    steps:
      - name: write
        task:
          type: model_method
          modelIdOrName: source
          methodName: write
          inputs: { name: '${{ inputs.vmName }}', attributes: { by: nested } }
"#,
    );
    repo.write(
        "workflows/fleet.yaml",
        r#"name: fleet
inputs:
  type: object
  properties:
    names: { type: array, items: { type: string } }
    extra: { type: boolean }
jobs:
  - name: each
    steps:
      - name: write-${{ self.vm }}
        forEach: { item: vm, in: '${{ inputs.names }}' }
        task: { type: workflow, workflowIdOrName: write-one, inputs: { vmName: '${{ self.vm }}' } }
      - name: optional
        guard: 'inputs.extra == true'
        task: { type: model_method, modelIdOrName: source, methodName: noop }
      - name: flaky
        allowFailure: true
        task: { type: model_method, modelIdOrName: source, methodName: fail, inputs: { kind: transient, message: flaky } }
  - name: after
    dependsOn: [ { job: each, condition: { type: succeeded } } ]
    steps:
      - name: done
        task: { type: model_method, modelIdOrName: source, methodName: noop }
"#,
    );
    let record = repo
        .orch(&[
            "--json",
            "run",
            "fleet",
            "--input",
            r#"{"names":["a","b","VM 102"],"extra":false}"#,
        ])
        .ok()
        .json();
    assert_eq!(
        record["status"], "succeeded",
        "allowFailure keeps the run green: {record}"
    );
    for name in ["a", "b", "VM 102"] {
        let v = repo
            .orch(&["--json", "data", "get", "source", name])
            .ok()
            .json();
        assert_eq!(v["attributes"]["by"], "nested");
    }
    let steps = record["steps"].as_array().unwrap();
    let find = |n: &str| {
        steps
            .iter()
            .find(|s| s["name"].as_str().unwrap_or("").ends_with(n))
            .cloned()
    };
    assert_eq!(
        find("optional").unwrap()["status"],
        "skipped",
        "guard false skips"
    );
    assert_eq!(find("flaky").unwrap()["status"], "failed");
    assert_eq!(
        find("done").unwrap()["status"],
        "succeeded",
        "the dependent job ran"
    );
}

#[test]
fn a_definition_with_a_missing_plugin_does_not_block_unrelated_workflows() {
    let repo = echo_repo();
    repo.write("models/orphan.yaml", "type: nowhere/missing\n");
    repo.write(
        "workflows/ok.yaml",
        "name: ok\njobs:\n  - name: main\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: source, methodName: noop }\n",
    );
    repo.orch(&["run", "ok"]).ok();
    let run = repo.orch(&["workflow", "validate"]).code(2);
    assert!(
        run.stderr.contains("models/orphan.yaml:1") && run.stderr.contains("nowhere/missing"),
        "{}",
        run.stderr
    );
}

/// AWS-LC's CPU-jitter entropy collector cost ~30 ms of every networked process; the build turns
/// it off (`.cargo/config.toml`), so the generator is seeded from the OS alone. Its code is then
/// not compiled at all, which is what this checks in the binary users run.
#[test]
fn the_binary_seeds_tls_randomness_from_the_os_without_the_cpu_jitter_collector() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_orch")).unwrap();
    let linked = memchr::memmem::find(&binary, b"jent_entropy_init").is_some();
    assert!(
        !linked,
        "the orch binary links AWS-LC's jitter entropy collector; is AWS_LC_SYS_NO_JITTER_ENTROPY=1 \
         still set in .cargo/config.toml?"
    );
}
