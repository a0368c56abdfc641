//! Grafana's HTTP API as a pure state machine: a request in, a status and JSON body out.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub(crate) use sim_http::{ApiRequest, Reply};

fn reply(status: u16, body: Value) -> Reply {
    Reply { status, body }
}

fn message(status: u16, text: &str) -> Reply {
    reply(status, json!({ "message": text }))
}

/// One request as the log keeps it: never the token or the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The status the simulator answered with.
    pub status: u16,
}

/// The simulated Grafana: dashboards, alert rules, contact points, the policy tree, annotations.
pub(crate) struct Api {
    token: String,
    next_id: u64,
    /// By uid: the stored dashboard JSON (with `id`, `uid`, `version`) and its folder uid.
    dashboards: BTreeMap<String, (Value, Option<String>)>,
    alert_rules: BTreeMap<String, Value>,
    contact_points: BTreeMap<String, Value>,
    policies: Value,
    annotations: Vec<Value>,
    log: Vec<LoggedRequest>,
    fail_next: Option<u16>,
    clock_ms: i64,
}

/// The contact point a fresh Grafana has, which the default policy tree routes to.
const DEFAULT_RECEIVER: &str = "grafana-default-email";

impl Api {
    pub(crate) fn new(token: &str) -> Api {
        let mut contact_points = BTreeMap::new();
        contact_points.insert(
            "default-email".to_string(),
            json!({
                "uid": "default-email",
                "name": DEFAULT_RECEIVER,
                "type": "email",
                "settings": { "addresses": "<example@email.com>" },
                "disableResolveMessage": false,
            }),
        );
        Api {
            token: token.to_string(),
            next_id: 1,
            dashboards: BTreeMap::new(),
            alert_rules: BTreeMap::new(),
            contact_points,
            policies: json!({
                "receiver": DEFAULT_RECEIVER,
                "group_by": ["grafana_folder", "alertname"],
            }),
            annotations: Vec::new(),
            log: Vec::new(),
            fail_next: None,
            // A fixed start (2026-01-01T00:00:00Z) that advances one second per annotation, so
            // tests never depend on the wall clock.
            clock_ms: 1_767_225_600_000,
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn fail_next(&mut self, status: u16) {
        self.fail_next = Some(status);
    }

    pub(crate) fn requests(&self) -> Vec<LoggedRequest> {
        self.log.clone()
    }

    pub(crate) fn dashboard(&self, uid: &str) -> Option<Value> {
        self.dashboards.get(uid).map(|(d, _)| d.clone())
    }

    pub(crate) fn dashboard_uids(&self) -> Vec<String> {
        self.dashboards.keys().cloned().collect()
    }

    pub(crate) fn alert_rules(&self) -> Vec<Value> {
        self.alert_rules.values().cloned().collect()
    }

    pub(crate) fn contact_points(&self) -> Vec<Value> {
        self.contact_points.values().cloned().collect()
    }

    pub(crate) fn policies(&self) -> Value {
        self.policies.clone()
    }

    pub(crate) fn annotations(&self) -> Vec<Value> {
        self.annotations.clone()
    }

    /// Answers one request and logs it.
    pub(crate) fn handle(&mut self, request: &ApiRequest) -> Reply {
        let answer = self.answer(request);
        self.log.push(LoggedRequest {
            method: request.method.to_string(),
            path: request.path.to_string(),
            query: request.query.map(str::to_string),
            status: answer.status,
        });
        answer
    }

    fn answer(&mut self, request: &ApiRequest) -> Reply {
        let expected = format!("Bearer {}", self.token);
        if request.authorization != Some(expected.as_str()) {
            return message(401, "Invalid API key");
        }
        if let Some(status) = self.fail_next.take() {
            return message(status, "simulated failure");
        }
        let body = if request.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice::<Value>(request.body) {
                Ok(body) => body,
                Err(e) => return message(400, &format!("bad request data: {e}")),
            }
        };
        let query: Vec<(String, String)> =
            form_urlencoded::parse(request.query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        match (request.method, segments.as_slice()) {
            ("GET", ["api", "health"]) => reply(
                200,
                json!({"commit": "grafana-sim", "database": "ok", "version": "11.3.0"}),
            ),
            ("GET", ["api", "search"]) => self.search(&query),
            ("POST", ["api", "dashboards", "db"]) => self.save_dashboard(body),
            ("GET", ["api", "dashboards", "uid", uid]) => self.get_dashboard(uid),
            ("GET", ["api", "v1", "provisioning", "alert-rules"]) => {
                reply(200, Value::Array(self.alert_rules()))
            }
            ("POST", ["api", "v1", "provisioning", "alert-rules"]) => self.put_rule(None, body),
            ("GET", ["api", "v1", "provisioning", "alert-rules", uid]) => {
                match self.alert_rules.get(*uid) {
                    Some(rule) => reply(200, rule.clone()),
                    None => reply(404, Value::Null),
                }
            }
            ("PUT", ["api", "v1", "provisioning", "alert-rules", uid]) => {
                self.put_rule(Some(uid), body)
            }
            ("GET", ["api", "v1", "provisioning", "contact-points"]) => {
                reply(200, Value::Array(self.contact_points()))
            }
            ("POST", ["api", "v1", "provisioning", "contact-points"]) => {
                self.put_contact_point(None, body)
            }
            ("PUT", ["api", "v1", "provisioning", "contact-points", uid]) => {
                self.put_contact_point(Some(uid), body)
            }
            ("GET", ["api", "v1", "provisioning", "policies"]) => reply(200, self.policies()),
            ("PUT", ["api", "v1", "provisioning", "policies"]) => self.put_policies(body),
            ("POST", ["api", "annotations"]) => self.add_annotation(body),
            ("GET", ["api", "annotations"]) => self.find_annotations(&query),
            _ => message(404, "Not found"),
        }
    }

    fn search(&self, query: &[(String, String)]) -> Reply {
        let text = query
            .iter()
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.to_lowercase())
            .unwrap_or_default();
        let kind = query.iter().find(|(k, _)| k == "type").map(|(_, v)| v);
        if kind.is_some_and(|k| k != "dash-db") {
            return reply(200, json!([]));
        }
        // Grafana's default page is 1000 hits; 5000 is its maximum.
        let limit = query
            .iter()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(1000)
            .min(5000);
        let hits: Vec<Value> = self
            .dashboards
            .iter()
            .filter(|(_, (d, _))| {
                d["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase()
                    .contains(&text)
            })
            .map(|(uid, (d, folder))| {
                let slug = slug(d["title"].as_str().unwrap_or_default());
                let mut hit = json!({
                    "id": d["id"],
                    "uid": uid,
                    "title": d["title"],
                    "uri": format!("db/{slug}"),
                    "url": format!("/d/{uid}/{slug}"),
                    "slug": "",
                    "type": "dash-db",
                    "tags": d.get("tags").cloned().unwrap_or(json!([])),
                    "isStarred": false,
                    "sortMeta": 0,
                });
                if let Some(folder) = folder {
                    hit["folderUid"] = json!(folder);
                }
                hit
            })
            .take(limit)
            .collect();
        reply(200, Value::Array(hits))
    }

    fn save_dashboard(&mut self, body: Value) -> Reply {
        let Some(mut dashboard) = body.get("dashboard").cloned().filter(Value::is_object) else {
            return message(400, "bad request data: dashboard is required");
        };
        let title = dashboard["title"].as_str().unwrap_or_default().to_string();
        if title.trim().is_empty() {
            return message(400, "Dashboard title cannot be empty");
        }
        let overwrite = body["overwrite"].as_bool().unwrap_or(false);
        let folder = body["folderUid"].as_str().map(str::to_string);
        let uid = match dashboard["uid"].as_str() {
            Some(uid) if !uid.is_empty() => uid.to_string(),
            _ => format!("sim{:06}", self.next_id),
        };
        let (id, version) = match self.dashboards.get(&uid) {
            Some((stored, _)) => {
                let current = stored["version"].as_u64().unwrap_or(1);
                if !overwrite && dashboard["version"].as_u64() != Some(current) {
                    return reply(
                        412,
                        json!({
                            "message": "The dashboard has been changed by someone else",
                            "status": "version-mismatch",
                        }),
                    );
                }
                (stored["id"].as_u64().unwrap_or(0), current + 1)
            }
            None => (self.id(), 1),
        };
        dashboard["id"] = json!(id);
        dashboard["uid"] = json!(uid);
        dashboard["version"] = json!(version);
        self.dashboards.insert(uid.clone(), (dashboard, folder));
        let slug = slug(&title);
        reply(
            200,
            json!({
                "id": id,
                "uid": uid,
                "url": format!("/d/{uid}/{slug}"),
                "status": "success",
                "version": version,
                "slug": slug,
            }),
        )
    }

    fn get_dashboard(&self, uid: &str) -> Reply {
        let Some((dashboard, folder)) = self.dashboards.get(uid) else {
            return message(404, "Dashboard not found");
        };
        let slug = slug(dashboard["title"].as_str().unwrap_or_default());
        reply(
            200,
            json!({
                "dashboard": dashboard,
                "meta": {
                    "type": "db",
                    "slug": slug,
                    "url": format!("/d/{uid}/{slug}"),
                    "version": dashboard["version"],
                    "folderUid": folder.clone().unwrap_or_default(),
                    "canSave": true,
                    "provisioned": false,
                },
            }),
        )
    }

    /// POST (no uid in the path: create, 409 if the body's uid exists) or PUT (update, 404 if
    /// missing).
    fn put_rule(&mut self, path_uid: Option<&str>, body: Value) -> Reply {
        let Value::Object(mut rule) = body else {
            return message(
                400,
                "bad request data: the body must be an alert rule object",
            );
        };
        for field in ["title", "folderUID", "ruleGroup", "condition"] {
            if rule
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return message(400, &format!("invalid alert rule: {field} is required"));
            }
        }
        if !rule.get("data").is_some_and(Value::is_array) {
            return message(400, "invalid alert rule: data must be a list of queries");
        }
        let uid = match path_uid {
            Some(uid) => {
                if !self.alert_rules.contains_key(uid) {
                    return message(404, "rule not found");
                }
                uid.to_string()
            }
            None => {
                let uid = rule
                    .get("uid")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("rule{:06}", self.next_id));
                if self.alert_rules.contains_key(&uid) {
                    return message(409, "a rule with this uid already exists");
                }
                uid
            }
        };
        let id = match self.alert_rules.get(&uid) {
            Some(old) => old["id"].clone(),
            None => json!(self.id()),
        };
        rule.insert("uid".into(), json!(uid));
        rule.insert("id".into(), id);
        rule.entry("for").or_insert(json!("0s"));
        rule.entry("noDataState").or_insert(json!("NoData"));
        rule.entry("execErrState").or_insert(json!("Alerting"));
        rule.insert("provenance".into(), json!("api"));
        let rule = Value::Object(rule);
        self.alert_rules.insert(uid, rule.clone());
        reply(if path_uid.is_some() { 200 } else { 201 }, rule)
    }

    fn put_contact_point(&mut self, path_uid: Option<&str>, body: Value) -> Reply {
        let Value::Object(mut point) = body else {
            return message(
                400,
                "bad request data: the body must be a contact point object",
            );
        };
        for field in ["name", "type"] {
            if point
                .get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return message(400, &format!("invalid contact point: {field} is required"));
            }
        }
        if !point.get("settings").is_some_and(Value::is_object) {
            return message(400, "invalid contact point: settings must be an object");
        }
        let uid = match path_uid {
            Some(uid) if self.contact_points.contains_key(uid) => uid.to_string(),
            Some(_) => return message(404, "contact point not found"),
            None => {
                let uid = point
                    .get("uid")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("cp{:06}", self.id()));
                if self.contact_points.contains_key(&uid) {
                    return message(409, "a contact point with this uid already exists");
                }
                uid
            }
        };
        point.insert("uid".into(), json!(uid));
        point.insert("provenance".into(), json!("api"));
        let point = Value::Object(point);
        self.contact_points.insert(uid, point.clone());
        match path_uid {
            Some(_) => message(202, "contactpoint updated"),
            None => reply(202, point),
        }
    }

    fn put_policies(&mut self, body: Value) -> Reply {
        if !body.is_object() {
            return message(400, "bad request data: the body must be a policy tree");
        }
        let names: Vec<&str> = self
            .contact_points
            .values()
            .filter_map(|p| p["name"].as_str())
            .collect();
        let mut receivers = Vec::new();
        collect_receivers(&body, &mut receivers);
        if body.get("receiver").and_then(Value::as_str).is_none() {
            return message(
                400,
                "invalid object specification: root route has no receiver",
            );
        }
        if let Some(missing) = receivers.iter().find(|r| !names.contains(&r.as_str())) {
            return message(
                400,
                &format!("invalid object specification: receiver '{missing}' does not exist"),
            );
        }
        self.policies = body;
        message(202, "policies updated")
    }

    fn add_annotation(&mut self, body: Value) -> Reply {
        let Some(text) = body.get("text").and_then(Value::as_str) else {
            return message(400, "bad request data: text is required");
        };
        let tags = match body.get("tags") {
            None | Some(Value::Null) => json!([]),
            Some(Value::Array(tags)) if tags.iter().all(Value::is_string) => json!(tags),
            Some(_) => return message(400, "bad request data: tags must be a list of strings"),
        };
        self.clock_ms += 1000;
        let time = body
            .get("time")
            .and_then(Value::as_i64)
            .unwrap_or(self.clock_ms);
        let id = self.id();
        let mut annotation = Map::new();
        annotation.insert("id".into(), json!(id));
        annotation.insert(
            "dashboardUID".into(),
            body.get("dashboardUID").cloned().unwrap_or(json!("")),
        );
        annotation.insert(
            "panelId".into(),
            body.get("panelId").cloned().unwrap_or(json!(0)),
        );
        annotation.insert("time".into(), json!(time));
        annotation.insert(
            "timeEnd".into(),
            body.get("timeEnd").cloned().unwrap_or(json!(time)),
        );
        annotation.insert("tags".into(), tags);
        annotation.insert("text".into(), json!(text));
        self.annotations.push(Value::Object(annotation));
        reply(200, json!({"message": "Annotation added", "id": id}))
    }

    /// Newest first; an annotation matches when it carries every tag asked for.
    fn find_annotations(&self, query: &[(String, String)]) -> Reply {
        let wanted: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == "tags")
            .map(|(_, v)| v.as_str())
            .collect();
        let limit = query
            .iter()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(100);
        let found: Vec<Value> = self
            .annotations
            .iter()
            .rev()
            .filter(|a| {
                let tags: Vec<&str> = a["tags"]
                    .as_array()
                    .map(|t| t.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                wanted.iter().all(|w| tags.contains(w))
            })
            .take(limit)
            .cloned()
            .collect();
        reply(200, Value::Array(found))
    }
}

fn collect_receivers(route: &Value, out: &mut Vec<String>) {
    if let Some(receiver) = route.get("receiver").and_then(Value::as_str) {
        out.push(receiver.to_string());
    }
    for child in route
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect_receivers(child, out);
    }
}

/// Grafana's slug: lower case, runs of anything but letters and digits become one `-`.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;

impl sim_http::Handler for Api {
    fn handle(&mut self, request: &ApiRequest) -> Reply {
        Api::handle(self, request)
    }
}
