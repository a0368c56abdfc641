//! Hostile plugins: every limit has a case under tests/cases/hostile/<case>/ holding the method
//! to call (`call.txt`: `method [name=value ...]` on the model `h` of type `hostile/plugin`, or
//! `model.method ...` on another model below) and the text the error must contain
//! (`expected.txt`). Each must fail cleanly, never panic the host, and leave the data unchanged.

mod support;

use support::{TestRepo, TinyHttp};

#[test]
fn every_hostile_case_fails_cleanly_with_its_expected_error() {
    let cases_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/hostile");
    let mut cases: Vec<_> = std::fs::read_dir(&cases_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 8,
        "expected the hostile cases under {}",
        cases_dir.display()
    );
    let allowed = TinyHttp::start(
        "a response far larger than the hostile plugin's 1024-byte response limit .................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................",
    );
    let forbidden = TinyHttp::start("never");
    let repo = TestRepo::new(&["hostile"]);
    repo.write(
        "models/h.yaml",
        &format!(
            "type: hostile/plugin\nglobalArguments:\n  allowedUrl: {}\n",
            allowed.url()
        ),
    );
    repo.write("models/bomb.yaml", "type: hostile/schema-bomb\n");
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let call = std::fs::read_to_string(case.join("call.txt")).unwrap();
        let call = call
            .trim()
            .replace("{allowed}", &allowed.url())
            .replace("{forbidden}", &forbidden.url());
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        let mut parts = call.split_whitespace();
        let target = parts.next().unwrap();
        let (model, method) = target.split_once('.').unwrap_or(("h", target));
        let mut args = vec![
            "model".to_string(),
            "run".into(),
            model.into(),
            method.into(),
        ];
        for p in parts {
            args.push("--input".into());
            args.push(p.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = repo.orch(&args);
        let all = run.all();
        // A host panic exits 101, so the exit code alone tells a clean failure from a crash.
        if run.code != 1 || !all.contains(expected.trim()) {
            failures.push(format!(
                "case {name}: exit {} (want 1), want `{}` in:\n{all}",
                run.code,
                expected.trim()
            ));
        }
    }
    let data = repo.orch(&["--json", "data", "list", "h"]).ok().json();
    assert!(
        data.as_array().unwrap().is_empty(),
        "a failed call changed stored data: {data}"
    );
    assert_eq!(forbidden.count(), 0, "a denied host was contacted");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A pooled instance slot comes back to each call exactly as the component's image left it:
/// `snoop` fails when it finds the static or heap marks an earlier call wrote (after proving
/// it sees its own). 40 steps, 8 at a time, use each slot several times over; one heap block
/// dirties more pages than the host keeps resident, so both ways a slot is reset are covered.
#[test]
fn no_call_sees_the_memory_an_earlier_call_wrote() {
    let repo = TestRepo::new(&["hostile"]);
    repo.write(
        "models/h.yaml",
        "type: hostile/plugin\nglobalArguments:\n  allowedUrl: http://127.0.0.1:1\n",
    );
    let mut workflow = String::from("name: snoop\njobs:\n  - name: main\n    steps:\n");
    for i in 0..40 {
        workflow.push_str(&format!(
            "      - name: s{i}\n        task: {{ type: model_method, modelIdOrName: h, methodName: snoop }}\n"
        ));
    }
    repo.write("workflows/snoop.yaml", &workflow);
    let run = repo.orch(&["--json", "run", "snoop"]).ok().json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"].as_array().unwrap().len(), 40, "{run}");
}
