use super::*;

const KEY: &str = "tskey-api-test";

fn get(api: &mut Api, path: &str, auth: Option<&str>) -> Reply {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    api.handle(&ApiRequest {
        method: "GET",
        path,
        query,
        authorization: auth,
        body: b"",
    })
}

fn bearer() -> String {
    format!("Bearer {KEY}")
}

fn two() -> Api {
    let mut api = Api::new(KEY, "example.com");
    api.add_device(Device::new("alpha", "100.64.0.1"));
    api.add_device(Device::new("beta", "100.64.0.2"));
    api
}

#[test]
fn a_wrong_or_missing_key_is_401_and_the_log_never_holds_the_key() {
    let mut api = two();
    let basic_wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("tskey-api-wrong:")
    );
    for auth in [
        None,
        Some("Bearer nope"),
        Some(KEY),
        Some(basic_wrong.as_str()),
    ] {
        let r = get(&mut api, "/api/v2/tailnet/-/devices", auth);
        assert_eq!(r, message(401, "API token invalid"));
    }
    let log = format!("{:?}", api.requests());
    assert!(
        !log.contains(KEY) && !log.contains("nope") && !log.contains("wrong"),
        "{log}"
    );
    assert_eq!(api.requests()[3].auth, "basic");
}

#[test]
fn bearer_and_basic_auth_list_devices_in_the_real_shape() {
    let mut api = two();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"))
    );
    for auth in [bearer(), basic] {
        let r = get(&mut api, "/api/v2/tailnet/example.com/devices", Some(&auth));
        assert_eq!(r.status, 200, "{:?}", r.body);
        let devices = r.body["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 2);
        let alpha = devices.iter().find(|d| d["hostname"] == "alpha").unwrap();
        assert_eq!(alpha["addresses"][0], "100.64.0.1");
        assert_eq!(alpha["name"], "alpha.tail-sim.ts.net");
        assert_eq!(alpha["os"], "linux");
        assert_eq!(alpha["authorized"], true);
        assert!(alpha["id"].is_string() && alpha["nodeId"].is_string());
        assert!(alpha.get("advertisedRoutes").is_none());
    }
}

#[test]
fn fields_all_adds_routes_and_connectivity_and_a_bad_value_is_400() {
    let mut api = two();
    let r = get(
        &mut api,
        "/api/v2/tailnet/-/devices?fields=all",
        Some(&bearer()),
    );
    let d = &r.body["devices"][0];
    assert!(d["advertisedRoutes"].is_array() && d["clientConnectivity"].is_object());
    let r = get(
        &mut api,
        "/api/v2/tailnet/-/devices?fields=some",
        Some(&bearer()),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn another_tailnet_is_403_and_a_device_is_found_by_either_id() {
    let mut api = two();
    let r = get(
        &mut api,
        "/api/v2/tailnet/other.org/devices",
        Some(&bearer()),
    );
    assert_eq!(r.status, 403);
    let beta = api
        .devices()
        .into_iter()
        .find(|d| d.hostname == "beta")
        .unwrap();
    for id in [&beta.id, &beta.node_id] {
        let r = get(&mut api, &format!("/api/v2/device/{id}"), Some(&bearer()));
        assert_eq!(r.status, 200);
        assert_eq!(r.body["hostname"], "beta");
    }
    assert_eq!(
        get(&mut api, "/api/v2/device/123", Some(&bearer())).status,
        404
    );
}

#[test]
fn removed_devices_are_gone_and_fail_next_fails_once() {
    let mut api = two();
    assert!(api.remove_device("alpha"));
    assert!(!api.remove_device("alpha"));
    api.fail_next(500);
    assert_eq!(
        get(&mut api, "/api/v2/tailnet/-/devices", Some(&bearer())).status,
        500
    );
    let r = get(&mut api, "/api/v2/tailnet/-/devices", Some(&bearer()));
    assert_eq!(r.body["devices"].as_array().unwrap().len(), 1);
}
