//! A plugin written straight against `orch:plugin@0.2.0` with wit-bindgen: one type with a
//! converge method (typed confirm rule, typed plan), a volatile resource attribute, and an
//! action that fetches URLs through `http.send-batch`.

#[allow(missing_docs, clippy::too_many_arguments)] // generated code mirrors the WIT
mod bindings {
    wit_bindgen::generate!({ path: "../../../wit/v0.2", world: "model-plugin" });
}

use bindings::orch::plugin::types::{
    Call, ConfirmRule, Error, FieldChange, MethodInfo, MethodKind, PlannedAction, PlannedChange,
    ResourceSpec, TypeInfo,
};
use bindings::orch::plugin::{data, http, log};
use serde_json::{Value, json};

struct Plugin;

fn method(name: &str, kind: MethodKind, schema: Value) -> MethodInfo {
    MethodInfo {
        name: name.into(),
        description: format!("{name} (0.2 test)"),
        kind,
        destructive: false,
        confirm: None,
        arguments_schema: schema.to_string(),
    }
}

impl bindings::Guest for Plugin {
    fn describe() -> Vec<TypeInfo> {
        let mut retire = method(
            "retire",
            MethodKind::Delete,
            json!({"type": "object", "properties": {"name": {"type": "string"}, "expectId": {}}}),
        );
        retire.destructive = true;
        retire.confirm = Some(ConfirmRule {
            input: "expectId".into(),
            spec: "item".into(),
            name_argument: "name".into(),
            attribute: "id".into(),
        });
        vec![TypeInfo {
            name: "test/v2".into(),
            version: "2026.11.30.1".into(),
            description: "Exercises orch:plugin@0.2.0".into(),
            global_arguments_schema: json!({
                "type": "object",
                "properties": {"baseUrl": {"type": "string"}}
            })
            .to_string(),
            resources: vec![ResourceSpec {
                name: "item".into(),
                description: "a thing".into(),
                schema: json!({"type": "object"}).to_string(),
                volatile: vec!["seenAt".into()],
            }],
            methods: vec![
                method(
                    "batch",
                    MethodKind::Action,
                    json!({
                        "type": "object",
                        "properties": {"urls": {"type": "array", "items": {"type": "string"}}},
                        "required": ["urls"]
                    }),
                ),
                method("sync", MethodKind::Converge, json!({"type": "object"})),
                method(
                    "forget",
                    MethodKind::Action,
                    json!({"type": "object", "properties": {"name": {"type": "string"}}}),
                ),
                retire,
            ],
        }]
    }

    fn execute(call: Call) -> Result<String, Error> {
        let args: Value = serde_json::from_str(&call.arguments)
            .map_err(|e| Error::InvalidArguments(e.to_string()))?;
        match call.method.as_str() {
            "batch" => {
                let requests = args["urls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| http::Request {
                        method: "GET".into(),
                        url: u.as_str().unwrap_or_default().into(),
                        headers: Vec::new(),
                        body: None,
                        timeout_ms: Some(5000),
                        insecure_tls: false,
                        pinned_cert_sha256: None,
                    })
                    .collect::<Vec<_>>();
                let results = http::send_batch(&requests, 4)
                    .into_iter()
                    .map(|r| match r {
                        Ok(resp) => json!({"status": resp.status}),
                        Err(Error::Denied(m)) => json!({"denied": m}),
                        Err(e) => json!({"error": format!("{e:?}")}),
                    })
                    .collect::<Vec<_>>();
                Ok(json!({ "results": results }).to_string())
            }
            "sync" => {
                log::log(log::Level::Info, "converging");
                let v = data::write_resource("item", "a", &json!({"id": 1}).to_string())?;
                Ok(json!({ "version": v }).to_string())
            }
            "retire" => Ok(json!({"retired": args["name"]}).to_string()),
            "forget" => {
                let name = args["name"].as_str().unwrap_or_default();
                let v = data::retire_resource("item", name)?;
                let listed = data::list_resources("item")?;
                let read = data::read_resource("item", name)?;
                Ok(json!({ "version": v, "listed": listed, "read": read }).to_string())
            }
            other => Err(Error::NotFound(format!("no method {other}"))),
        }
    }

    fn plan(call: Call) -> Result<Vec<PlannedChange>, Error> {
        if call.method != "sync" {
            return Ok(Vec::new());
        }
        Ok(vec![PlannedChange {
            action: PlannedAction::Create,
            spec: "item".into(),
            name: "a".into(),
            summary: "create item a".into(),
            changes: vec![FieldChange {
                path: "/id".into(),
                before: None,
                after: Some("1".into()),
            }],
        }])
    }
}

bindings::export!(Plugin with_types_in bindings);
