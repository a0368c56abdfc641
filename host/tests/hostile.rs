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
