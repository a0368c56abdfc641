//! `grafana/instance`: one Grafana instance as an orch model, over its HTTP API with a
//! service-account token.
//!
//! Dashboards are pushed from JSON the caller passes: a plugin cannot read repository files, so
//! a workflow hands a file's text over as an input (`--input dashboard="$(cat
//! dashboards/mc.json)"`, or an `--input-file` holding `{"dashboard": …}`) and names the file
//! in `file` so errors point at it. Every write is idempotent: a dashboard, rule, contact point
//! or policy that already matches what Grafana has is not sent again.

mod client;

use client::Client;
use orch_plugin_sdk::{Ctx, MethodKind, ModelType, NoArgs, Plugin, Result, Value, error, json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Every dashboard, in one page: Grafana's search returns at most `limit` hits (5000 at most).
const SEARCH_PATH: &str = "/api/search?query=&type=dash-db&limit=5000";

/// CalVer of the model type.
const VERSION: &str = "2026.11.30.1";

/// Global arguments of `grafana/instance`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Globals {
    /// Base URL of the instance, e.g. `https://grafana.lab:3000`.
    pub url: String,
    /// A service-account token (`glsa_…`); `${{ vault.get("grafana", "token") }}`. Never stored
    /// or printed.
    #[schemars(extend("writeOnly" = true))]
    pub token: String,
}

fn client(ctx: &Ctx<Globals>) -> Result<Client> {
    Client::new(&ctx.globals.url, &ctx.globals.token)
}

/// The `instance` resource: what `discover` saw of the instance.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceResource {
    /// The base URL.
    pub url: String,
    /// Grafana's version, from `/api/health`.
    pub version: String,
    /// `ok` when Grafana reaches its database.
    pub database: String,
    /// How many dashboards, alert rules and contact points there are.
    pub dashboards: usize,
    /// How many alert rules there are.
    pub alert_rules: usize,
    /// How many contact points there are.
    pub contact_points: usize,
}

/// The `dashboard` resource, named by the dashboard's uid.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardResource {
    /// The dashboard's uid.
    pub uid: String,
    /// Its title.
    pub title: String,
    /// Its path on the instance (`/d/uid/slug`).
    pub url: String,
    /// The folder's uid (empty: General).
    pub folder_uid: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Grafana's version number of the dashboard (absent when listed by `discover`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The whole dashboard JSON (written by `exportDashboard` and `pushDashboard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

/// The `alertRule` resource, named by the rule's uid.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRuleResource {
    /// The rule's uid.
    pub uid: String,
    /// Its title.
    pub title: String,
    /// The folder it lives in.
    #[serde(rename = "folderUID")]
    pub folder_uid: String,
    /// Its evaluation group.
    pub rule_group: String,
}

/// The `contactPoint` resource, named by uid. Settings are not kept: they often hold webhook
/// secrets.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactPointResource {
    /// The contact point's uid.
    pub uid: String,
    /// Its name, as policies name their receiver.
    pub name: String,
    /// The integration (`email`, `discord`, `webhook`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

/// The `annotation` resource, named by the annotation's id.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationResource {
    /// Grafana's id of the annotation.
    pub id: u64,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its text.
    pub text: String,
    /// The dashboard it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_uid: Option<String>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn tags(v: &Value) -> Vec<String> {
    v.get("tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn list(value: Value, what: &str) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => Err(error::failed(format!(
            "Grafana answered the {what} list with {} instead of a list",
            kind_of(&other)
        ))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Writes `items` under `spec` by name and retires the ones written before that are gone.
fn record_all<T: Serialize>(ctx: &Ctx<Globals>, spec: &str, items: &[(String, T)]) -> Result<()> {
    let seen: HashSet<&str> = items.iter().map(|(n, _)| n.as_str()).collect();
    for (name, item) in items {
        ctx.write_resource(spec, name, item)?;
    }
    for old in ctx.list_resources(spec)? {
        if !seen.contains(old.as_str()) {
            ctx.retire_resource(spec, &old)?;
        }
    }
    Ok(())
}

fn discover(ctx: &Ctx<Globals>, _: NoArgs) -> Result<Value> {
    let grafana = client(ctx)?;
    let health = grafana.call("GET", "/api/health", None)?;
    let hits = list(grafana.call("GET", SEARCH_PATH, None)?, "dashboard")?;
    let rules = list(
        grafana.call("GET", "/api/v1/provisioning/alert-rules", None)?,
        "alert rule",
    )?;
    let points = list(
        grafana.call("GET", "/api/v1/provisioning/contact-points", None)?,
        "contact point",
    )?;
    let dashboards: Vec<(String, DashboardResource)> = hits
        .iter()
        .map(|hit| {
            let uid = text(hit, "uid");
            let resource = DashboardResource {
                uid: uid.clone(),
                title: text(hit, "title"),
                url: text(hit, "url"),
                folder_uid: text(hit, "folderUid"),
                tags: tags(hit),
                version: None,
                json: None,
            };
            (uid, resource)
        })
        .collect();
    let alert_rules: Vec<(String, AlertRuleResource)> = rules
        .iter()
        .map(|r| (text(r, "uid"), rule_resource(r)))
        .collect();
    let contact_points: Vec<(String, ContactPointResource)> = points
        .iter()
        .map(|p| (text(p, "uid"), point_resource(p)))
        .collect();
    let instance = InstanceResource {
        url: grafana.base().to_string(),
        version: text(&health, "version"),
        database: text(&health, "database"),
        dashboards: dashboards.len(),
        alert_rules: alert_rules.len(),
        contact_points: contact_points.len(),
    };
    ctx.write_resource("instance", "instance", &instance)?;
    record_all(ctx, "dashboard", &dashboards)?;
    record_all(ctx, "alertRule", &alert_rules)?;
    record_all(ctx, "contactPoint", &contact_points)?;
    ctx.info(format!(
        "Grafana {} at {}: dashboards {}, alert rules {}, contact points {}",
        instance.version,
        instance.url,
        instance.dashboards,
        instance.alert_rules,
        instance.contact_points
    ));
    Ok(json!(instance))
}

fn rule_resource(rule: &Value) -> AlertRuleResource {
    AlertRuleResource {
        uid: text(rule, "uid"),
        title: text(rule, "title"),
        folder_uid: text(rule, "folderUID"),
        rule_group: text(rule, "ruleGroup"),
    }
}

fn point_resource(point: &Value) -> ContactPointResource {
    ContactPointResource {
        uid: text(point, "uid"),
        name: text(point, "name"),
        kind: text(point, "type"),
    }
}

/// Arguments of `pushDashboard`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushDashboardArgs {
    /// The dashboard: its JSON object, or the JSON text (a file's contents). It needs a `uid`,
    /// so that pushing it again updates the same dashboard.
    #[serde(default)]
    pub dashboard: Option<Value>,
    /// Where the JSON came from (e.g. `dashboards/minecraft.json`), named in errors.
    #[serde(default)]
    pub file: Option<String>,
    /// The folder to put it in (default: General, or where it already is).
    #[serde(default)]
    pub folder_uid: Option<String>,
    /// The version message Grafana keeps with the change.
    #[serde(default)]
    pub message: Option<String>,
}

/// Where a dashboard argument came from, for errors: `argument `dashboard` (file x.json)`.
fn origin(args: &PushDashboardArgs) -> String {
    match &args.file {
        Some(file) => format!("argument `dashboard` (from file {file})"),
        None => "argument `dashboard`".to_string(),
    }
}

/// The dashboard object from the argument: an object as is, a string parsed as JSON.
pub fn dashboard_json(args: &PushDashboardArgs) -> Result<serde_json::Map<String, Value>> {
    let Some(given) = &args.dashboard else {
        let hint = match &args.file {
            Some(file) => format!(
                "argument `file` ({file}) names the file, but a plugin cannot read repository files: pass its text as `dashboard`, e.g. --input dashboard=\"$(cat {file})\""
            ),
            None => "argument `dashboard` is missing: pass the dashboard's JSON (object or text)"
                .to_string(),
        };
        return Err(error::invalid(hint));
    };
    let parsed = match given {
        Value::String(text) => serde_json::from_str::<Value>(text).map_err(|e| {
            let position = format!(" at line {} column {}", e.line(), e.column());
            let said = e.to_string();
            let said = said.strip_suffix(&position).unwrap_or(&said);
            let at = match &args.file {
                Some(file) => format!("{file}:{}:{}: ", e.line(), e.column()),
                None => format!("line {}, column {}: ", e.line(), e.column()),
            };
            error::invalid(format!(
                "{at}argument `dashboard` is not valid JSON: {said}; fix the file or export it again from Grafana"
            ))
        })?,
        other => other.clone(),
    };
    let Value::Object(mut dashboard) = parsed else {
        return Err(error::invalid(format!(
            "{} is {}, not a dashboard object",
            origin(args),
            kind_of(given)
        )));
    };
    // An export wrapped as {dashboard, meta} (GET /api/dashboards/uid/…) is accepted too.
    if let Some(Value::Object(inner)) = dashboard.get("dashboard")
        && dashboard.contains_key("meta")
    {
        dashboard = inner.clone();
    }
    for field in ["uid", "title"] {
        if dashboard
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(error::invalid(format!(
                "{} has no `{field}`; give the dashboard a {field} so that pushing it again updates the same dashboard",
                origin(args)
            )));
        }
    }
    Ok(dashboard)
}

/// The parts of a dashboard that say what it shows: without Grafana's `id` and `version`.
fn content(dashboard: &Value) -> Value {
    let mut content = dashboard.clone();
    if let Value::Object(map) = &mut content {
        map.remove("id");
        map.remove("version");
    }
    content
}

fn push_dashboard(ctx: &Ctx<Globals>, args: PushDashboardArgs) -> Result<Value> {
    let mut dashboard = dashboard_json(&args)?;
    let uid = dashboard["uid"].as_str().unwrap_or_default().to_string();
    let grafana = client(ctx)?;
    let live = grafana.find(&format!("/api/dashboards/uid/{uid}"))?;
    let wanted = content(&Value::Object(dashboard.clone()));
    let live_folder = live.as_ref().map(|l| text(&l["meta"], "folderUid"));
    if let Some(live) = &live {
        let same_folder = args.folder_uid.is_none() || args.folder_uid == live_folder;
        if same_folder && content(&live["dashboard"]) == wanted {
            let version = live["dashboard"]["version"].as_u64();
            ctx.info(format!(
                "dashboard {uid} is already up to date (version {version:?})"
            ));
            return Ok(json!({"uid": uid, "changed": false, "version": version}));
        }
    }
    if ctx.dry_run {
        let action = if live.is_some() { "update" } else { "create" };
        return Ok(json!({"dryRun": true, "uid": uid, "wouldDo": action}));
    }
    // Grafana refuses (412) a save whose version is not the one it holds, so a change made in
    // the UI between this read and this write is not silently lost.
    dashboard.remove("id");
    match live
        .as_ref()
        .and_then(|l| l["dashboard"]["version"].as_u64())
    {
        Some(version) => dashboard.insert("version".into(), json!(version)),
        None => dashboard.remove("version"),
    };
    let mut body = json!({"dashboard": dashboard, "overwrite": false});
    if let Some(folder) = args.folder_uid.clone().or(live_folder) {
        body["folderUid"] = json!(folder);
    }
    if let Some(message) = &args.message {
        body["message"] = json!(message);
    }
    let saved = grafana.call("POST", "/api/dashboards/db", Some(&body))?;
    let version = saved["version"].as_u64();
    let mut stored = Value::Object(dashboard);
    stored["version"] = json!(version);
    let resource = DashboardResource {
        uid: uid.clone(),
        title: text(&stored, "title"),
        url: text(&saved, "url"),
        folder_uid: body["folderUid"].as_str().unwrap_or_default().to_string(),
        tags: tags(&stored),
        version,
        json: Some(stored),
    };
    ctx.write_resource("dashboard", &uid, &resource)?;
    ctx.info(format!(
        "pushed dashboard {uid} (version {})",
        version.unwrap_or(0)
    ));
    Ok(json!({"uid": uid, "changed": true, "version": version, "url": resource.url}))
}

/// Arguments naming one dashboard.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UidArgs {
    /// The dashboard's uid.
    pub uid: String,
}

fn export_dashboard(ctx: &Ctx<Globals>, args: UidArgs) -> Result<Value> {
    let grafana = client(ctx)?;
    let Some(found) = grafana.find(&format!("/api/dashboards/uid/{}", args.uid))? else {
        return Err(error::not_found(format!(
            "Grafana has no dashboard with uid `{}` (argument `uid`); `discover` lists the dashboards",
            args.uid
        )));
    };
    let dashboard = found["dashboard"].clone();
    let resource = DashboardResource {
        uid: args.uid.clone(),
        title: text(&dashboard, "title"),
        url: text(&found["meta"], "url"),
        folder_uid: text(&found["meta"], "folderUid"),
        tags: tags(&dashboard),
        version: dashboard["version"].as_u64(),
        json: Some(dashboard),
    };
    ctx.write_resource("dashboard", &args.uid, &resource)?;
    Ok(json!({"uid": resource.uid, "title": resource.title, "version": resource.version}))
}

/// Arguments of `configureContactPoint`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactPointArgs {
    /// The name policies route to.
    pub name: String,
    /// The integration: `email`, `discord`, `slack`, `webhook`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The integration's settings (`{"url": …}` for a webhook).
    pub settings: serde_json::Map<String, Value>,
    /// Its uid (default: the uid of the contact point of that name, or one Grafana picks).
    #[serde(default)]
    pub uid: Option<String>,
    /// Do not notify when the alert resolves.
    #[serde(default)]
    pub disable_resolve_message: bool,
}

fn configure_contact_point(ctx: &Ctx<Globals>, args: ContactPointArgs) -> Result<Value> {
    let grafana = client(ctx)?;
    let path = "/api/v1/provisioning/contact-points";
    let points = list(grafana.call("GET", path, None)?, "contact point")?;
    let live = points.iter().find(|p| match &args.uid {
        Some(uid) => text(p, "uid") == *uid,
        None => text(p, "name") == args.name,
    });
    let wanted = json!({
        "name": args.name,
        "type": args.kind,
        "settings": args.settings,
        "disableResolveMessage": args.disable_resolve_message,
    });
    let unchanged = live.is_some_and(|p| {
        ["name", "type", "settings"]
            .iter()
            .all(|k| p.get(*k) == wanted.get(*k))
            && p["disableResolveMessage"].as_bool().unwrap_or(false) == args.disable_resolve_message
    });
    let mut changed = false;
    let uid = match live {
        Some(p) if unchanged => text(p, "uid"),
        _ if ctx.dry_run => {
            return Ok(
                json!({"dryRun": true, "name": args.name, "wouldDo": if live.is_some() { "update" } else { "create" }}),
            );
        }
        Some(p) => {
            let uid = text(p, "uid");
            let mut body = wanted.clone();
            body["uid"] = json!(uid);
            grafana.call("PUT", &format!("{path}/{uid}"), Some(&body))?;
            changed = true;
            uid
        }
        None => {
            let mut body = wanted.clone();
            if let Some(uid) = &args.uid {
                body["uid"] = json!(uid);
            }
            let created = grafana.call("POST", path, Some(&body))?;
            changed = true;
            text(&created, "uid")
        }
    };
    let resource = ContactPointResource {
        uid: uid.clone(),
        name: args.name.clone(),
        kind: args.kind.clone(),
    };
    ctx.write_resource("contactPoint", &uid, &resource)?;
    Ok(json!({"uid": uid, "name": args.name, "changed": changed}))
}

/// Arguments of `configureNotificationPolicy`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyArgs {
    /// The whole notification policy tree: `{receiver, group_by, routes: [{receiver,
    /// object_matchers, …}]}`; every receiver must name a contact point.
    pub policy: serde_json::Map<String, Value>,
}

fn configure_policy(ctx: &Ctx<Globals>, args: PolicyArgs) -> Result<Value> {
    if args
        .policy
        .get("receiver")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(error::invalid(
            "argument `policy` has no `receiver`: the root of the tree must name the default contact point",
        ));
    }
    let grafana = client(ctx)?;
    let path = "/api/v1/provisioning/policies";
    let wanted = Value::Object(args.policy);
    let live = grafana.call("GET", path, None)?;
    let changed = live != wanted;
    if changed && ctx.dry_run {
        return Ok(json!({"dryRun": true, "wouldDo": "update"}));
    }
    if changed {
        grafana.call("PUT", path, Some(&wanted))?;
    }
    ctx.write_resource("policy", "policy", &wanted)?;
    Ok(json!({"changed": changed, "receiver": wanted["receiver"]}))
}

/// Arguments of `pushAlertRule`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleArgs {
    /// The rule as the provisioning API takes it: `uid`, `title`, `folderUID`, `ruleGroup`,
    /// `condition`, `data`, `for`, `labels`, `annotations`, … It needs a `uid`, so that pushing
    /// it again updates the same rule.
    pub rule: serde_json::Map<String, Value>,
}

fn push_alert_rule(ctx: &Ctx<Globals>, args: AlertRuleArgs) -> Result<Value> {
    let uid = match args.rule.get("uid").and_then(Value::as_str) {
        Some(uid) if !uid.trim().is_empty() => uid.to_string(),
        _ => {
            return Err(error::invalid(
                "argument `rule` has no `uid`; give the rule a uid so that pushing it again updates the same rule",
            ));
        }
    };
    let grafana = client(ctx)?;
    let path = format!("/api/v1/provisioning/alert-rules/{uid}");
    let live = grafana.find(&path)?;
    let wanted = Value::Object(args.rule);
    let changed = !live
        .as_ref()
        .is_some_and(|live| rule_matches(&wanted, live));
    if changed && ctx.dry_run {
        let action = if live.is_some() { "update" } else { "create" };
        return Ok(json!({"dryRun": true, "uid": uid, "wouldDo": action}));
    }
    let stored = match (&live, changed) {
        (Some(live), false) => live.clone(),
        (Some(_), true) => grafana.call("PUT", &path, Some(&wanted))?,
        (None, _) => grafana.call("POST", "/api/v1/provisioning/alert-rules", Some(&wanted))?,
    };
    let resource = rule_resource(if stored.is_object() { &stored } else { &wanted });
    ctx.write_resource("alertRule", &uid, &resource)?;
    Ok(json!({"uid": uid, "title": resource.title, "changed": changed}))
}

/// Fields Grafana fills in on its own; a rule that leaves them out still matches.
const SERVER_FILLED: &[&str] = &[
    "id",
    "uid",
    "orgID",
    "updated",
    "provenance",
    "for",
    "noDataState",
    "execErrState",
    "isPaused",
    "keep_firing_for",
    "missing_series_evals_to_resolve",
];

/// True when the live rule has every field the wanted one sets, with the same value, and no
/// field of its own beyond what Grafana fills in (so removing `labels` from the rule updates it).
pub fn rule_matches(wanted: &Value, live: &Value) -> bool {
    let (Some(wanted), Some(live)) = (wanted.as_object(), live.as_object()) else {
        return false;
    };
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    wanted.iter().all(|(k, v)| live.get(k) == Some(v))
        && live
            .iter()
            .all(|(k, v)| wanted.contains_key(k) || SERVER_FILLED.contains(&k.as_str()) || empty(v))
}

/// Arguments of `createAnnotation`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnnotationArgs {
    /// Tags to find it by (`deploy`, `minecraft`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// What happened.
    pub text: String,
    /// When, in epoch milliseconds (default: now, as Grafana sees it).
    #[serde(default)]
    pub time: Option<i64>,
    /// When it ended, in epoch milliseconds, for a region.
    #[serde(default)]
    pub time_end: Option<i64>,
    /// The dashboard to put it on (default: an organisation-wide annotation).
    #[serde(default, rename = "dashboardUID")]
    pub dashboard_uid: Option<String>,
    /// The panel to put it on.
    #[serde(default)]
    pub panel_id: Option<u64>,
}

fn create_annotation(ctx: &Ctx<Globals>, args: AnnotationArgs) -> Result<Value> {
    if args.text.trim().is_empty() {
        return Err(error::invalid(
            "argument `text` is empty; say what happened",
        ));
    }
    if ctx.dry_run {
        return Ok(json!({"dryRun": true, "wouldDo": "create", "tags": args.tags}));
    }
    let grafana = client(ctx)?;
    let mut body = json!({"tags": args.tags, "text": args.text});
    for (key, value) in [
        ("time", args.time.map(|t| json!(t))),
        ("timeEnd", args.time_end.map(|t| json!(t))),
        ("dashboardUID", args.dashboard_uid.clone().map(Value::from)),
        ("panelId", args.panel_id.map(|p| json!(p))),
    ] {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    let added = grafana.call("POST", "/api/annotations", Some(&body))?;
    let Some(id) = added["id"].as_u64() else {
        return Err(error::failed(
            "Grafana added the annotation but did not say its id",
        ));
    };
    let resource = AnnotationResource {
        id,
        tags: args.tags,
        text: args.text,
        dashboard_uid: args.dashboard_uid,
    };
    ctx.write_resource("annotation", &id.to_string(), &resource)?;
    Ok(json!({"id": id, "tags": resource.tags}))
}

/// The `grafana/instance` model type.
fn instance_type() -> ModelType {
    ModelType::new::<Globals>(
        "grafana/instance",
        VERSION,
        "One Grafana instance: dashboards, alert rules, contact points, the notification policy tree and annotations, with a service-account token",
    )
    .resource::<InstanceResource>("instance", "The instance: url, version, database, counts")
    .resource::<DashboardResource>(
        "dashboard",
        "One dashboard, named by uid: title, url, folderUid, tags, version, and its JSON when pushed or exported",
    )
    .resource::<AlertRuleResource>("alertRule", "One alert rule, named by uid")
    .resource::<ContactPointResource>(
        "contactPoint",
        "One contact point, named by uid (its settings are not kept)",
    )
    .resource::<Value>("policy", "The notification policy tree")
    .resource::<AnnotationResource>("annotation", "One annotation this model created, named by id")
    .method(
        "discover",
        MethodKind::List,
        "Check health and record every dashboard, alert rule and contact point; retire those that are gone",
        discover,
    )
    .method(
        "pushDashboard",
        MethodKind::Update,
        "Create or update a dashboard from its JSON (by uid); a push of what Grafana already has changes nothing",
        push_dashboard,
    )
    .method(
        "exportDashboard",
        MethodKind::Read,
        "Record a dashboard's whole JSON as the `dashboard` resource",
        export_dashboard,
    )
    .method(
        "configureContactPoint",
        MethodKind::Update,
        "Create or update a contact point (by uid, or else by name)",
        configure_contact_point,
    )
    .method(
        "configureNotificationPolicy",
        MethodKind::Update,
        "Replace the notification policy tree (unchanged: no write)",
        configure_policy,
    )
    .method(
        "pushAlertRule",
        MethodKind::Update,
        "Create or update an alert rule by uid (unchanged: no write)",
        push_alert_rule,
    )
    .method(
        "createAnnotation",
        MethodKind::Create,
        "Add an annotation (tags, text, time?, dashboardUID?)",
        create_annotation,
    )
}

/// The plugin: one model type.
pub struct GrafanaPlugin;

impl Plugin for GrafanaPlugin {
    fn types() -> Vec<ModelType> {
        vec![instance_type()]
    }
}

orch_plugin_sdk::export_plugin!(GrafanaPlugin);

#[cfg(test)]
mod tests;
