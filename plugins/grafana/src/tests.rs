use super::*;
use orch_plugin_sdk::Error;
use orch_plugin_sdk::testing::FakeHost;

const URL: &str = "http://grafana.test:3000";
const TOKEN: &str = "glsa_unit_secret";

fn globals() -> Value {
    json!({"url": URL, "token": TOKEN})
}

fn call(host: &FakeHost, method: &str, args: Value) -> Result<Value> {
    host.call::<GrafanaPlugin>("grafana/instance", method, globals(), args)
}

fn url(path: &str) -> String {
    format!("{URL}{path}")
}

#[test]
fn every_request_carries_the_bearer_token() {
    let host = FakeHost::new()
        .with_http("GET", &url("/api/health"), 200, json!({"version": "11.3.0", "database": "ok"}))
        .with_http("GET", &url("/api/search?query=&type=dash-db&limit=5000"), 200, json!([
            {"uid": "mc", "title": "Minecraft", "url": "/d/mc/minecraft", "tags": ["games"], "folderUid": "f"}
        ]))
        .with_http("GET", &url("/api/v1/provisioning/alert-rules"), 200, json!([]))
        .with_http("GET", &url("/api/v1/provisioning/contact-points"), 200, json!([
            {"uid": "e", "name": "grafana-default-email", "type": "email", "settings": {}}
        ]));
    let out = call(&host, "discover", json!({})).unwrap();
    assert_eq!(out["dashboards"], 1);
    let requests = host.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(auth, Some("Bearer glsa_unit_secret"), "{}", r.url);
    }
    let dashboard = host.latest("dashboard", "mc").unwrap();
    assert_eq!(dashboard["folderUid"], "f");
    assert_eq!(dashboard["tags"], json!(["games"]));
    assert_eq!(
        host.latest("contactPoint", "e").unwrap()["name"],
        "grafana-default-email"
    );
    assert!(
        !host
            .latest("instance", "instance")
            .unwrap()
            .to_string()
            .contains(TOKEN)
    );
}

#[test]
fn a_401_names_the_vault_entry_and_never_the_token() {
    let host = FakeHost::new().with_http(
        "GET",
        &url("/api/health"),
        401,
        json!({"message": "Invalid API key"}),
    );
    let err = call(&host, "discover", json!({})).unwrap_err();
    let Error::Denied(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("Grafana denied the token (401)"),
        "{message}"
    );
    assert!(message.contains("check vault grafana/token"), "{message}");
    assert!(!message.contains(TOKEN));
}

#[test]
fn a_dashboard_that_is_not_json_names_the_argument_and_the_file() {
    let host = FakeHost::new();
    let err = call(
        &host,
        "pushDashboard",
        json!({"dashboard": "{\"uid\": \"mc\",", "file": "dashboards/mc.json"}),
    )
    .unwrap_err();
    let Error::InvalidArguments(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("dashboards/mc.json:1:"), "{message}");
    assert!(
        message.contains("argument `dashboard` is not valid JSON"),
        "{message}"
    );
    let err = call(
        &host,
        "pushDashboard",
        json!({"dashboard": {"title": "No uid"}}),
    )
    .unwrap_err();
    assert!(format!("{err:?}").contains("has no `uid`"), "{err:?}");
    assert!(host.requests().is_empty());
}

#[test]
fn pushing_what_grafana_already_has_sends_nothing() {
    let live = json!({"dashboard": {"id": 4, "uid": "mc", "title": "MC", "version": 3, "panels": []},
                      "meta": {"folderUid": ""}});
    let host = FakeHost::new().with_http("GET", &url("/api/dashboards/uid/mc"), 200, live);
    let out = call(
        &host,
        "pushDashboard",
        json!({"dashboard": "{\"uid\": \"mc\", \"title\": \"MC\", \"panels\": []}"}),
    )
    .unwrap();
    assert_eq!(out["changed"], false);
    assert_eq!(host.requests().len(), 1);
}

#[test]
fn a_changed_dashboard_is_saved_against_the_live_version() {
    let live = json!({"dashboard": {"id": 4, "uid": "mc", "title": "MC", "version": 3},
                      "meta": {"folderUid": "games"}});
    let host = FakeHost::new()
        .with_http("GET", &url("/api/dashboards/uid/mc"), 200, live)
        .with_http(
            "POST",
            &url("/api/dashboards/db"),
            200,
            json!({"uid": "mc", "version": 4, "url": "/d/mc/mc", "status": "success"}),
        );
    let out = call(
        &host,
        "pushDashboard",
        json!({"dashboard": {"uid": "mc", "title": "MC v2", "id": 99}, "message": "from git"}),
    )
    .unwrap();
    assert_eq!(out["changed"], true);
    let sent = host.requests()[1].json();
    assert_eq!(sent["dashboard"]["version"], 3);
    assert_eq!(sent["dashboard"].get("id"), None);
    assert_eq!(sent["overwrite"], false);
    assert_eq!(sent["folderUid"], "games");
    assert_eq!(sent["message"], "from git");
    let stored = host.latest("dashboard", "mc").unwrap();
    assert_eq!(stored["version"], 4);
    assert_eq!(stored["json"]["title"], "MC v2");
}

#[test]
fn an_alert_rule_is_created_when_missing_and_left_alone_when_equal() {
    let rule = json!({"uid": "r1", "title": "Down", "folderUID": "f", "ruleGroup": "g",
                      "condition": "A", "data": []});
    let mut live = rule.clone();
    live["id"] = json!(7);
    live["provenance"] = json!("api");
    let host = FakeHost::new()
        .with_http(
            "GET",
            &url("/api/v1/provisioning/alert-rules/r1"),
            404,
            json!({}),
        )
        .with_http(
            "POST",
            &url("/api/v1/provisioning/alert-rules"),
            201,
            live.clone(),
        )
        .with_http(
            "GET",
            &url("/api/v1/provisioning/alert-rules/r1"),
            200,
            live,
        );
    assert_eq!(
        call(&host, "pushAlertRule", json!({"rule": rule})).unwrap()["changed"],
        true
    );
    assert_eq!(
        call(&host, "pushAlertRule", json!({"rule": rule})).unwrap()["changed"],
        false
    );
    assert_eq!(host.requests().len(), 3);
    assert_eq!(host.latest("alertRule", "r1").unwrap()["ruleGroup"], "g");
}

#[test]
fn a_rule_matches_despite_grafanas_defaults_but_not_when_a_field_was_removed() {
    let wanted = json!({"uid": "r", "title": "T", "labels": {"a": "b"}});
    let live = json!({"uid": "r", "title": "T", "labels": {"a": "b"}, "id": 3,
                      "provenance": "api", "for": "0s", "annotations": {}});
    assert!(rule_matches(&wanted, &live));
    let fewer = json!({"uid": "r", "title": "T"});
    assert!(
        !rule_matches(&fewer, &live),
        "labels were removed from the rule"
    );
    let other = json!({"uid": "r", "title": "U", "labels": {"a": "b"}});
    assert!(!rule_matches(&other, &live));
}

#[test]
fn discover_retires_dashboards_grafana_no_longer_lists() {
    let host = FakeHost::new()
        .with_resource("dashboard", "gone", json!({"uid": "gone", "title": "Old"}))
        .with_http("GET", &url("/api/health"), 200, json!({"version": "11"}))
        .with_http(
            "GET",
            &url("/api/search?query=&type=dash-db&limit=5000"),
            200,
            json!([{"uid": "kept", "title": "K"}]),
        )
        .with_http(
            "GET",
            &url("/api/v1/provisioning/alert-rules"),
            200,
            json!([]),
        )
        .with_http(
            "GET",
            &url("/api/v1/provisioning/contact-points"),
            200,
            json!([]),
        );
    call(&host, "discover", json!({})).unwrap();
    assert_eq!(host.latest("dashboard", "gone"), None);
    assert_eq!(host.latest("dashboard", "kept").unwrap()["title"], "K");
}

#[test]
fn a_dashboard_changed_in_grafana_meanwhile_is_a_conflict_that_says_to_push_again() {
    let live = json!({"dashboard": {"uid": "mc", "title": "MC", "version": 3}, "meta": {}});
    let host = FakeHost::new()
        .with_http("GET", &url("/api/dashboards/uid/mc"), 200, live)
        .with_http("POST", &url("/api/dashboards/db"), 412,
                   json!({"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}));
    let err = call(
        &host,
        "pushDashboard",
        json!({"dashboard": {"uid": "mc", "title": "MC 2"}}),
    )
    .unwrap_err();
    let Error::Conflict(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("changed by someone else"), "{message}");
    assert!(message.contains("run the push again"), "{message}");
    assert_eq!(host.latest("dashboard", "mc"), None);
}

#[test]
fn a_file_without_its_text_says_how_to_pass_the_text() {
    let host = FakeHost::new();
    let err = call(
        &host,
        "pushDashboard",
        json!({"file": "dashboards/mc.json"}),
    )
    .unwrap_err();
    let Error::InvalidArguments(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("argument `file` (dashboards/mc.json)"),
        "{message}"
    );
    assert!(message.contains("$(cat dashboards/mc.json)"), "{message}");
    let err = call(&host, "pushDashboard", json!({"dashboard": 42})).unwrap_err();
    assert!(
        format!("{err:?}").contains("is a number, not a dashboard object"),
        "{err:?}"
    );
}
