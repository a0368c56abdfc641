use super::*;

const TOKEN: &str = "glsa_test";

fn call(api: &mut Api, method: &str, path: &str, body: Value) -> Reply {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let auth = format!("Bearer {TOKEN}");
    api.handle(&ApiRequest {
        method,
        path,
        query,
        authorization: Some(&auth),
        body: &bytes,
    })
}

#[test]
fn a_wrong_or_missing_token_is_denied_with_grafanas_message() {
    let mut api = Api::new(TOKEN);
    for auth in [None, Some("Bearer nope"), Some(TOKEN)] {
        let r = api.handle(&ApiRequest {
            method: "GET",
            path: "/api/health",
            query: None,
            authorization: auth,
            body: b"",
        });
        assert_eq!(r, message(401, "Invalid API key"));
    }
    assert_eq!(
        call(&mut api, "GET", "/api/health", Value::Null).status,
        200
    );
    assert_eq!(api.requests().len(), 4);
    assert_eq!(api.requests()[0].status, 401);
}

#[test]
fn dashboard_versions_increase_and_a_stale_version_without_overwrite_is_refused() {
    let mut api = Api::new(TOKEN);
    let first = call(
        &mut api,
        "POST",
        "/api/dashboards/db",
        json!({"dashboard": {"uid": "mc", "title": "Minecraft Server"}, "folderUid": "games"}),
    );
    assert_eq!(first.status, 200);
    assert_eq!(first.body["version"], 1);
    assert_eq!(first.body["url"], "/d/mc/minecraft-server");
    assert_eq!(first.body["status"], "success");
    let stale = call(
        &mut api,
        "POST",
        "/api/dashboards/db",
        json!({"dashboard": {"uid": "mc", "title": "Minecraft", "version": 0}}),
    );
    assert_eq!(stale.status, 412);
    assert_eq!(stale.body["status"], "version-mismatch");
    let current = call(
        &mut api,
        "POST",
        "/api/dashboards/db",
        json!({"dashboard": {"uid": "mc", "title": "Minecraft", "version": 1}}),
    );
    assert_eq!(current.body["version"], 2);
    let forced = call(
        &mut api,
        "POST",
        "/api/dashboards/db",
        json!({"dashboard": {"uid": "mc", "title": "Minecraft"}, "overwrite": true}),
    );
    assert_eq!(forced.body["version"], 3);
    assert_eq!(forced.body["id"], first.body["id"]);
    let got = call(&mut api, "GET", "/api/dashboards/uid/mc", Value::Null);
    assert_eq!(got.body["dashboard"]["title"], "Minecraft");
    assert_eq!(got.body["meta"]["version"], 3);
    let missing = call(&mut api, "GET", "/api/dashboards/uid/none", Value::Null);
    assert_eq!(missing, message(404, "Dashboard not found"));
}

#[test]
fn search_lists_dashboards_with_uid_title_url_tags_and_folder() {
    let mut api = Api::new(TOKEN);
    call(
        &mut api,
        "POST",
        "/api/dashboards/db",
        json!({"dashboard": {"uid": "a", "title": "Alpha", "tags": ["x"]}, "folderUid": "f1"}),
    );
    call(
        &mut api,
        "POST",
        "/api/dashboards/db",
        json!({"dashboard": {"uid": "b", "title": "Beta"}}),
    );
    let all = call(
        &mut api,
        "GET",
        "/api/search?query=&type=dash-db",
        Value::Null,
    );
    assert_eq!(all.body.as_array().unwrap().len(), 2);
    assert_eq!(all.body[0]["uid"], "a");
    assert_eq!(all.body[0]["folderUid"], "f1");
    assert_eq!(all.body[0]["tags"], json!(["x"]));
    assert_eq!(all.body[0]["type"], "dash-db");
    let first = call(&mut api, "GET", "/api/search?limit=1", Value::Null);
    assert_eq!(first.body.as_array().unwrap().len(), 1);
    let beta = call(&mut api, "GET", "/api/search?query=bet", Value::Null);
    assert_eq!(beta.body.as_array().unwrap().len(), 1);
    let folders = call(&mut api, "GET", "/api/search?type=dash-folder", Value::Null);
    assert_eq!(folders.body, json!([]));
}

fn rule(uid: &str, title: &str) -> Value {
    json!({"uid": uid, "title": title, "folderUID": "games", "ruleGroup": "mc",
           "condition": "A", "data": [{"refId": "A"}]})
}

#[test]
fn alert_rules_are_created_read_and_updated_by_uid() {
    let mut api = Api::new(TOKEN);
    let base = "/api/v1/provisioning/alert-rules";
    assert_eq!(call(&mut api, "POST", base, rule("r1", "Down")).status, 201);
    assert_eq!(call(&mut api, "POST", base, rule("r1", "Down")).status, 409);
    assert_eq!(
        call(&mut api, "PUT", &format!("{base}/r2"), rule("r2", "X")).status,
        404
    );
    let updated = call(
        &mut api,
        "PUT",
        &format!("{base}/r1"),
        rule("r1", "Server down"),
    );
    assert_eq!(updated.status, 200);
    let got = call(&mut api, "GET", &format!("{base}/r1"), Value::Null);
    assert_eq!(got.body["title"], "Server down");
    assert_eq!(
        call(&mut api, "GET", base, Value::Null)
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let mut bad = rule("r3", "No group");
    bad["ruleGroup"] = json!("");
    let refused = call(&mut api, "POST", base, bad);
    assert_eq!(refused.status, 400);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("ruleGroup")
    );
}

#[test]
fn policies_must_name_existing_contact_points() {
    let mut api = Api::new(TOKEN);
    let cps = "/api/v1/provisioning/contact-points";
    let tree = json!({"receiver": "discord", "group_by": ["alertname"]});
    let refused = call(
        &mut api,
        "PUT",
        "/api/v1/provisioning/policies",
        tree.clone(),
    );
    assert_eq!(refused.status, 400);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("'discord'")
    );
    let created = call(
        &mut api,
        "POST",
        cps,
        json!({"uid": "d1", "name": "discord", "type": "discord", "settings": {"url": "http://x"}}),
    );
    assert_eq!(created.status, 202);
    assert_eq!(created.body["uid"], "d1");
    let set = call(
        &mut api,
        "PUT",
        "/api/v1/provisioning/policies",
        tree.clone(),
    );
    assert_eq!(set, message(202, "policies updated"));
    assert_eq!(
        call(
            &mut api,
            "GET",
            "/api/v1/provisioning/policies",
            Value::Null
        )
        .body,
        tree
    );
    let changed = call(
        &mut api,
        "PUT",
        &format!("{cps}/d1"),
        json!({"name": "discord", "type": "discord", "settings": {"url": "http://y"}}),
    );
    assert_eq!(changed.status, 202);
    assert_eq!(api.contact_points().len(), 2);
    assert_eq!(
        call(
            &mut api,
            "PUT",
            &format!("{cps}/zz"),
            json!({"name": "a", "type": "b", "settings": {}})
        )
        .status,
        404
    );
}

#[test]
fn annotations_are_found_by_all_their_tags_newest_first() {
    let mut api = Api::new(TOKEN);
    let add = |api: &mut Api, tags: Value, text: &str| {
        call(
            api,
            "POST",
            "/api/annotations",
            json!({"tags": tags, "text": text}),
        )
    };
    let first = add(&mut api, json!(["deploy", "mc"]), "v1");
    assert_eq!(first.body["message"], "Annotation added");
    add(&mut api, json!(["deploy"]), "other");
    add(&mut api, json!(["mc", "deploy", "x"]), "v2");
    let found = call(
        &mut api,
        "GET",
        "/api/annotations?tags=deploy&tags=mc",
        Value::Null,
    );
    let texts: Vec<&str> = found
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["v2", "v1"]);
    let one = call(
        &mut api,
        "GET",
        "/api/annotations?tags=deploy&limit=1",
        Value::Null,
    );
    assert_eq!(one.body.as_array().unwrap().len(), 1);
    assert_eq!(add(&mut api, json!("deploy"), "bad").status, 400);
}

#[test]
fn fail_next_fails_one_call_and_changes_nothing() {
    let mut api = Api::new(TOKEN);
    api.fail_next(500);
    let body = json!({"dashboard": {"uid": "a", "title": "A"}});
    assert_eq!(
        call(&mut api, "POST", "/api/dashboards/db", body.clone()).status,
        500
    );
    assert!(api.dashboard("a").is_none());
    assert_eq!(
        call(&mut api, "POST", "/api/dashboards/db", body).status,
        200
    );
}
