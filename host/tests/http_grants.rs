//! HTTP goes only where the manifest and orch.yaml allow; a denial is a typed error that names
//! the URL and the rule, and no connection is attempted.

mod support;

use support::{TestRepo, TinyHttp};

#[test]
fn a_granted_origin_is_reachable() {
    let server = TinyHttp::start("pong");
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/web.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  baseUrl: {}\n",
            server.url()
        ),
    );
    let out = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "web",
            "fetch",
            "--input",
            &format!("url={}/ping", server.url()),
        ])
        .ok()
        .json();
    assert_eq!(out["output"]["status"], 200);
    assert_eq!(out["output"]["body"], "pong");
}

#[test]
fn an_origin_outside_the_manifest_is_denied_without_connecting() {
    let allowed = TinyHttp::start("ok");
    let other = TinyHttp::start("should never be reached");
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/web.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  baseUrl: {}\n",
            allowed.url()
        ),
    );
    let run = repo
        .orch(&[
            "model",
            "run",
            "web",
            "fetch",
            "--input",
            &format!("url={}/x", other.url()),
        ])
        .code(1);
    let all = run.all();
    assert!(all.contains("denied"), "{all}");
    assert!(all.contains(&other.url()), "names the URL: {all}");
    assert!(
        all.contains("globalArguments.baseUrl"),
        "names the rule: {all}"
    );
    assert_eq!(other.count(), 0, "no connection may be attempted");
}

#[test]
fn orch_yaml_narrows_what_the_manifest_allows() {
    let server = TinyHttp::start("ok");
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "orch.yaml",
        "grants:\n  testplug:\n    http: [\"https://10.0.0.4:8006\"]\n",
    );
    repo.write(
        "models/web.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  baseUrl: {}\n",
            server.url()
        ),
    );
    let run = repo
        .orch(&[
            "model",
            "run",
            "web",
            "fetch",
            "--input",
            &format!("url={}/x", server.url()),
        ])
        .code(1);
    assert!(run.all().contains("orch.yaml"), "{}", run.all());
    assert_eq!(server.count(), 0);
}
