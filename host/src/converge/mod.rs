//! Declarative converge across models: `orch plan` asks every converge-capable model for its
//! typed plan (the 0.2 `plan` export, through a dry run), in dependency order; `orch apply`
//! then runs the converge methods of the models whose plans change something, in that order,
//! and none at all when nothing is pending.

use crate::run::RunEnv;
use crate::store::RunStatus;
use serde::Serialize;
use serde_json::{Map, Value};

/// The plan of one model's converge method.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPlan {
    /// The model.
    pub model: String,
    /// Its converge method.
    pub method: String,
    /// The planned changes, as the plugin reported them (`action`, `spec`, `name`, `summary`,
    /// `changes`).
    pub changes: Vec<Value>,
    /// Why the plan could not be made, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The dry run that made it.
    pub run_id: String,
}

impl ModelPlan {
    /// The changes that do something (every action but `none`).
    pub fn pending(&self) -> impl Iterator<Item = &Value> {
        self.changes.iter().filter(|c| c["action"] != "none")
    }

    /// Whether any change would delete something.
    pub fn deletes(&self) -> bool {
        self.pending().any(|c| c["action"] == "delete")
    }
}

/// The converge method of `model`'s type: its one method of kind `converge`, when the model
/// declares what it needs. `None` when the type has none, or when the method requires
/// arguments the definition does not give under `methods.<name>.arguments` (an `nginx/stream`
/// model used only through workflows declares no proxies, so it has nothing to converge). An
/// error when the model or its type is unknown.
pub fn converge_method(env: &RunEnv, model: &str) -> Result<Option<String>, String> {
    let def = env.repo.model(model).map_err(|e| e.to_string())?;
    let provided = env
        .registry
        .get(&def.type_name)
        .map_err(|e| format!("model `{model}`: {e}"))?;
    let Some(method) = provided
        .description
        .methods
        .iter()
        .find(|m| m.kind == "converge")
    else {
        return Ok(None);
    };
    let given = def.methods.get(&method.name).map(|m| &m.arguments);
    let declared = method.arguments_schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .all(|r| given.is_some_and(|g| g.contains_key(r)));
    Ok(declared.then(|| method.name.clone()))
}

/// Plans each of `models` (already in converge order) that has a converge method, with
/// `arguments` for every call. Models without one are skipped.
pub async fn plan(
    env: &RunEnv,
    models: &[String],
    arguments: &Map<String, Value>,
) -> Vec<ModelPlan> {
    let mut plans = Vec::new();
    for model in models {
        let method = match converge_method(env, model) {
            Ok(Some(m)) => m,
            Ok(None) => {
                if let Some(failed) = refresh(env, model).await {
                    // What comes after reads this model: stop before using a stale ticket.
                    plans.push(failed);
                    break;
                }
                continue;
            }
            Err(error) => {
                plans.push(ModelPlan {
                    model: model.clone(),
                    method: String::new(),
                    changes: Vec::new(),
                    error: Some(error),
                    run_id: String::new(),
                });
                continue;
            }
        };
        let (record, output) = env
            .run_method(model, &method, arguments.clone(), true)
            .await;
        let changes = output
            .as_ref()
            .and_then(|o| o.get("plan"))
            .and_then(Value::as_array)
            .cloned();
        let error = match (&record.status, &changes) {
            (RunStatus::Succeeded, Some(_)) => None,
            (RunStatus::Succeeded, None) => Some(format!(
                "{model}.{method}: the dry run returned no plan (a converge method's dry run must return one)"
            )),
            _ => Some(
                record
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("{model}.{method}: the dry run failed")),
            ),
        };
        plans.push(ModelPlan {
            model: model.clone(),
            method,
            changes: changes.unwrap_or_default(),
            error,
            run_id: record.id,
        });
    }
    plans
}

/// Runs `model`'s `refresh` method, when its definition names one (a login renewing the
/// ticket the models after it read). `None` when it succeeded or there is none; a failed plan
/// entry otherwise, so the plan stops before calling anything with a stale ticket.
async fn refresh(env: &RunEnv, model: &str) -> Option<ModelPlan> {
    let method = env.repo.model(model).ok()?.refresh.clone()?;
    let (record, _) = env.run_method(model, &method, Map::new(), false).await;
    (record.status != RunStatus::Succeeded).then(|| ModelPlan {
        model: model.to_string(),
        method: method.clone(),
        changes: Vec::new(),
        error: Some(format!(
            "refreshing `{model}` (its `refresh: {method}`) failed: {}",
            record.error.as_deref().unwrap_or("no error was recorded")
        )),
        run_id: record.id,
    })
}

/// The outcome of applying one model's plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The model.
    pub model: String,
    /// The run of its converge method.
    pub run_id: String,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// The method's output.
    pub output: Option<Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs the converge method of every plan with pending changes, in order, stopping at the
/// first failure (later models may depend on it).
pub async fn apply(
    env: &RunEnv,
    plans: &[ModelPlan],
    arguments: &Map<String, Value>,
) -> Vec<Applied> {
    let mut applied = Vec::new();
    for p in plans.iter().filter(|p| p.pending().next().is_some()) {
        let (record, output) = env
            .run_method(&p.model, &p.method, arguments.clone(), false)
            .await;
        let succeeded = record.status == RunStatus::Succeeded;
        applied.push(Applied {
            model: p.model.clone(),
            run_id: record.id,
            succeeded,
            output,
            error: record.error,
        });
        if !succeeded {
            break;
        }
    }
    applied
}

/// One line per change, grouped by model, in plan order: `+ create`, `~ update` (with each
/// field's before → after), `> start`, `- delete`, `. stop`; `= unchanged` only when `all`.
pub fn render(plans: &[ModelPlan], all: bool) -> String {
    let mut out = Vec::new();
    for p in plans {
        out.push(if p.method.is_empty() {
            p.model.clone()
        } else {
            format!("{} ({})", p.model, p.method)
        });
        if let Some(e) = &p.error {
            out.push(format!("  ! {e}"));
            continue;
        }
        let mut unchanged = 0;
        for c in &p.changes {
            let action = c["action"].as_str().unwrap_or("?");
            let mark = match action {
                "create" => "+",
                "update" => "~",
                "start" => ">",
                "stop" => ".",
                "delete" => "-",
                "none" => "=",
                _ => "?",
            };
            if action == "none" && !all {
                unchanged += 1;
                continue;
            }
            let what = format!(
                "{}/{}",
                c["spec"].as_str().unwrap_or(""),
                c["name"].as_str().unwrap_or("")
            );
            let summary = c["summary"].as_str().unwrap_or("");
            out.push(format!("  {mark} {action:<7} {what}  {summary}"));
            for f in c["changes"].as_array().into_iter().flatten() {
                out.push(format!(
                    "      {}: {} → {}",
                    f["path"].as_str().unwrap_or(""),
                    f["before"],
                    f["after"]
                ));
            }
        }
        if unchanged > 0 {
            out.push(format!("  = {unchanged} unchanged (-v lists them)"));
        }
    }
    let count = |a: &str| {
        plans
            .iter()
            .flat_map(|p| p.changes.iter())
            .filter(|c| c["action"] == a)
            .count()
    };
    out.push(format!(
        "Plan: {} to create, {} to update, {} to start, {} to stop, {} to delete.",
        count("create"),
        count("update"),
        count("start"),
        count("stop"),
        count("delete")
    ));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan_of(changes: Vec<Value>) -> ModelPlan {
        ModelPlan {
            model: "guests".into(),
            method: "converge".into(),
            changes,
            error: None,
            run_id: "r".into(),
        }
    }

    #[test]
    fn unchanged_entries_are_not_pending_and_are_counted_not_listed() {
        let p = plan_of(vec![
            json!({"action": "none", "spec": "guest", "name": "a", "summary": "unchanged", "changes": []}),
            json!({"action": "update", "spec": "guest", "name": "b", "summary": "resize",
                   "changes": [{"path": "/memory", "before": 2048, "after": 4096}]}),
        ]);
        assert_eq!(p.pending().count(), 1);
        assert!(!p.deletes());
        assert_eq!(
            render(std::slice::from_ref(&p), false),
            "guests (converge)\n  ~ update  guest/b  resize\n      /memory: 2048 → 4096\n  = 1 unchanged (-v lists them)\nPlan: 0 to create, 1 to update, 0 to start, 0 to stop, 0 to delete."
        );
        assert!(render(&[p], true).contains("  = none    guest/a  unchanged"));
    }

    #[test]
    fn a_failed_plan_is_shown_with_its_error() {
        let mut p = plan_of(Vec::new());
        p.error = Some("guests.converge: denied".into());
        p.changes
            .push(json!({"action": "delete", "spec": "guest", "name": "x"}));
        assert!(p.deletes());
        assert!(
            render(&[p], false).starts_with("guests (converge)\n  ! guests.converge: denied\n")
        );
    }
}
