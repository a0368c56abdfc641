//! HTTP (and SSH) go only where the manifest and orch.yaml allow; a denial is a typed error
//! that names the URL and the rule, and no connection is attempted. A value from a definition
//! is one literal origin, never a pattern, and a granted name is checked again once resolved.

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

fn fetch_with_base_url(base_url: &str, url: &str) -> (TestRepo, support::Run) {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/web.yaml",
        &format!("type: test/echo\nglobalArguments:\n  baseUrl: \"{base_url}\"\n"),
    );
    let run = repo.orch(&[
        "model",
        "run",
        "web",
        "fetch",
        "--input",
        &format!("url={url}"),
    ]);
    (repo, run)
}

#[test]
fn a_definition_value_with_a_wildcard_path_or_user_info_never_widens_the_grant() {
    let server = TinyHttp::start("should never be reached");
    let port = server.port;
    for (base_url, why) in [
        ("http://127.0.0.1:*".to_string(), "`*`"),
        ("http://*:*".to_string(), "`*`"),
        (format!("{}/api", server.url()), "path"),
        (format!("http://user@127.0.0.1:{port}"), "user info"),
        (format!("{}?token=x", server.url()), "query"),
    ] {
        let (_repo, run) = fetch_with_base_url(&base_url, &format!("{}/x", server.url()));
        let all = run.code(1).all();
        assert!(
            all.contains("globalArguments.baseUrl")
                && all.contains(why)
                && all.contains("one literal origin"),
            "{base_url}: {all}"
        );
    }
    assert_eq!(server.count(), 0, "no connection may be attempted");
}

#[test]
fn a_granted_name_that_resolves_to_loopback_is_refused_without_connecting() {
    let server = TinyHttp::start("should never be reached");
    let base = format!("http://localhost:{}", server.port);
    let (_repo, run) = fetch_with_base_url(&base, &format!("{base}/x"));
    let all = run.code(1).all();
    assert!(
        all.contains("denied")
            && all.contains("`localhost` resolves to")
            && all.contains("loopback"),
        "{all}"
    );
    assert_eq!(server.count(), 0, "no connection may be attempted");
    // The same server by its address, granted literally, is reachable.
    let (_repo, run) = fetch_with_base_url(&server.url(), &format!("{}/x", server.url()));
    run.ok();
}

#[test]
fn an_ssh_target_name_that_resolves_to_loopback_is_refused_without_connecting() {
    let listener = TinyHttp::start("not an SSH server");
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/box.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  sshHost: localhost\n  sshPort: {}\n  sshUser: root\n  sshPassword: not-a-secret-1\n  sshTrustOnFirstUse: true\n",
            listener.port
        ),
    );
    let run = repo
        .orch(&[
            "model",
            "run",
            "box",
            "sshExec",
            "--input",
            "command=echo hi",
        ])
        .code(1);
    let all = run.all();
    assert!(
        all.contains("denied")
            && all.contains("`localhost` resolves to")
            && all.contains("loopback"),
        "{all}"
    );
    assert_eq!(listener.count(), 0, "no connection may be attempted");
}
