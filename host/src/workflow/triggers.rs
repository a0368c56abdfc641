//! A workflow's `triggers:`: cron schedules and webhooks, read with the workflow and checked
//! with it (`orch check`). Running them is `crate::triggers`'s concern.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::inputs::{apply_input_defaults, declared_names, validate_inputs};
use super::schema::Workflow;
use super::validate::Catalog;
use crate::repo::{Diagnostic, Repo, deserialize_via, join_index, join_key};

/// One entry of `triggers:`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Trigger {
    /// `{schedule: "*/5 * * * *", inputs: {…}}`: runs the workflow at each cron time.
    Schedule {
        /// Standard 5-field cron expression, in the local time zone.
        schedule: String,
        /// The workflow's inputs for each scheduled run; always a JSON object.
        inputs: Map<String, Value>,
    },
    /// `{webhook: {path, secret}}`: runs the workflow on `POST /hooks/<path>`.
    Webhook {
        /// Where the hook listens and the secret its signature is checked with.
        webhook: WebhookTrigger,
    },
}

/// `webhook: {path: deploy, secret: "${{ vault.get('hooks', 'github') }}"}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTrigger {
    /// The hook listens on `POST /hooks/<path>`; unique across the repository.
    pub path: String,
    /// A `${{ vault.get(…) }}` expression giving the HMAC-SHA256 secret.
    pub secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    inputs: Option<Map<String, Value>>,
    #[serde(default)]
    webhook: Option<WebhookTrigger>,
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_via::<D, RawTrigger, Trigger>(
            deserializer,
            "a mapping with `schedule` or `webhook`",
        )
    }
}

impl TryFrom<RawTrigger> for Trigger {
    type Error = String;
    fn try_from(raw: RawTrigger) -> Result<Trigger, String> {
        match (raw.schedule, raw.webhook) {
            (Some(schedule), None) => Ok(Trigger::Schedule {
                schedule,
                inputs: raw.inputs.unwrap_or_default(),
            }),
            (None, Some(webhook)) => {
                if raw.inputs.is_some() {
                    return Err(
                        "a webhook trigger takes no `inputs`: the workflow gets the \
                                request body as `inputs.body`; remove `inputs`"
                            .to_string(),
                    );
                }
                Ok(Trigger::Webhook { webhook })
            }
            (Some(_), Some(_)) => Err("a trigger is either `schedule` or `webhook`, not both; \
                                       split it into two entries"
                .to_string()),
            (None, None) => Err(
                "missing `schedule: \"<cron>\"` or `webhook: {path, secret}` \
                                 in this trigger"
                    .to_string(),
            ),
        }
    }
}

/// Parses a standard 5-field cron expression (`@hourly`-style aliases too); the error says
/// what is wrong and how to write one.
pub fn parse_cron(expression: &str) -> Result<croner::Cron, String> {
    let fields = expression.split_whitespace().count();
    let alias = expression.trim_start().starts_with('@');
    if !alias && fields != 5 {
        return Err(format!(
            "cron expression `{}` has {fields} field(s), expected 5: minute hour day-of-month \
             month day-of-week, e.g. `*/5 * * * *`",
            crate::excerpt::excerpt(expression)
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| {
            format!(
                "invalid cron expression `{}`: {e}; write 5 fields: minute hour day-of-month \
                 month day-of-week, e.g. `*/5 * * * *`",
                crate::excerpt::excerpt(expression)
            )
        })
}

/// Whether `path` can be a hook path: letters, digits, `-`, `_`, `.` and inner `/`, no `..`.
fn valid_hook_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 200
        && !path.starts_with('/')
        && !path.ends_with('/')
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Every problem in `wf`'s triggers, each at its file, line and field.
pub(crate) fn trigger_diagnostics(
    wf: &Workflow,
    repo: &Repo,
    catalog: &dyn Catalog,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut report = |field: String, message: String| {
        diags.push(Diagnostic::at(&wf.file, &wf.lines, field, message));
    };
    let mut own_paths = BTreeSet::new();
    for (i, trigger) in wf.triggers.iter().enumerate() {
        let base = join_index("triggers", i);
        match trigger {
            Trigger::Schedule { schedule, inputs } => {
                if let Err(message) = parse_cron(schedule) {
                    report(join_key(&base, "schedule"), message);
                }
                let mut inputs = inputs.clone();
                apply_input_defaults(wf, &mut inputs);
                if let Err(problems) = validate_inputs(wf, &Value::Object(inputs)) {
                    report(
                        join_key(&base, "inputs"),
                        format!(
                            "these inputs do not fit the workflow's `inputs` schema: {}",
                            problems.join("; ")
                        ),
                    );
                }
            }
            Trigger::Webhook { webhook } => {
                let path_field = join_key(&base, "webhook.path");
                if !valid_hook_path(&webhook.path) {
                    report(
                        path_field.clone(),
                        format!(
                            "`{}` cannot be a hook path; use letters, digits, `-`, `_`, `.` and \
                             `/` between parts, e.g. `deploy` or `github/push`",
                            crate::excerpt::excerpt(&webhook.path)
                        ),
                    );
                } else if !own_paths.insert(webhook.path.as_str()) {
                    report(
                        path_field.clone(),
                        format!(
                            "webhook path `{}` is used twice in this workflow; give each hook \
                             its own path",
                            webhook.path
                        ),
                    );
                }
                for other in repo.workflows.values().filter(|o| o.name != wf.name) {
                    if other.triggers.iter().any(
                        |t| matches!(t, Trigger::Webhook { webhook: w } if w.path == webhook.path),
                    ) {
                        report(
                            path_field.clone(),
                            format!(
                                "webhook path `{}` is also used by workflow `{}` ({}); a \
                                 path can start only one workflow, rename one",
                                webhook.path,
                                other.name,
                                other.file.display()
                            ),
                        );
                    }
                }
                let secret_field = join_key(&base, "webhook.secret");
                if !webhook.secret.contains("${{") {
                    // Never quote it: it may be the secret itself.
                    report(
                        secret_field,
                        "the secret is written in the file; keep it in the vault and write \
                         `secret: \"${{ vault.get('hooks', 'github') }}\"` (orch vault put \
                         hooks github)"
                            .to_string(),
                    );
                } else if let Err(message) = catalog.check_template(&webhook.secret) {
                    report(secret_field, message);
                }
                if let Some(problem) = body_input_problem(wf) {
                    report(join_key(&base, "webhook"), problem);
                }
            }
        }
    }
    diags
}

/// Why `wf` cannot take a webhook's body as `inputs.body`, if it cannot.
fn body_input_problem(wf: &Workflow) -> Option<String> {
    const HOW: &str = "declare it: `inputs: {type: object, properties: {body: {}}}`";
    let Some(schema) = &wf.inputs else {
        return Some(format!(
            "a webhook gives the workflow the request body as `inputs.body`, but this workflow \
             takes no inputs; {HOW}"
        ));
    };
    if let Some(declared) = declared_names(schema)
        && !declared.contains(&"body")
    {
        return Some(format!(
            "a webhook gives the workflow the request body as `inputs.body`, but the workflow's \
             inputs do not declare `body`; {HOW}"
        ));
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| *name != "body")
        .filter(|name| {
            schema
                .get("properties")
                .and_then(|p| p.get(*name))
                .and_then(|p| p.get("default"))
                .is_none()
        })
        .collect();
    (!required.is_empty()).then(|| {
        format!(
            "a webhook gives the workflow only `inputs.body`, but the workflow requires {}; \
             give them defaults or make them optional",
            required
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::workflow::validate;

    struct Fake;

    impl Catalog for Fake {
        fn method_names(&self, _model: &str) -> Option<Vec<String>> {
            Some(vec!["m".to_string()])
        }
        fn check_template(&self, _text: &str) -> Result<(), String> {
            Ok(())
        }
    }

    const HEAD: &str = "inputs:\n  type: object\n  properties:\n    vmName: { type: string }\n    body: {}\n  additionalProperties: false\njobs: []\n";

    fn repo_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("orch.yaml"), "").unwrap();
        fs::create_dir_all(dir.path().join("workflows")).unwrap();
        for (name, text) in files {
            fs::write(dir.path().join("workflows").join(name), text).unwrap();
        }
        let repo = Repo::load(dir.path()).unwrap();
        (dir, repo)
    }

    fn problems(repo: &Repo, name: &str) -> Vec<String> {
        validate(&repo.workflows[name], repo, &Fake)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn schedules_and_webhooks_are_read() {
        let text = format!(
            "{HEAD}triggers:\n  - schedule: \"*/2 * * * *\"\n    inputs: {{ vmName: a }}\n  - webhook: {{ path: deploy, secret: \"${{{{ vault.get('hooks', 'github') }}}}\" }}\n"
        );
        let wf = Workflow::parse(&text, Path::new("workflows/w.yaml")).unwrap();
        assert_eq!(
            wf.triggers,
            [
                Trigger::Schedule {
                    schedule: "*/2 * * * *".into(),
                    inputs: serde_json::json!({"vmName": "a"})
                        .as_object()
                        .unwrap()
                        .clone()
                },
                Trigger::Webhook {
                    webhook: WebhookTrigger {
                        path: "deploy".into(),
                        secret: "${{ vault.get('hooks', 'github') }}".into()
                    }
                }
            ]
        );
        let (_dir, repo) = repo_with(&[("w.yaml", &text)]);
        assert_eq!(problems(&repo, "w"), Vec::<String>::new());
    }

    #[test]
    fn a_bad_cron_expression_names_file_line_and_field() {
        let text =
            format!("{HEAD}triggers:\n  - schedule: \"*/2 * * *\"\n  - schedule: \"61 * * * *\"\n");
        let (_dir, repo) = repo_with(&[("w.yaml", &text)]);
        let found = problems(&repo, "w");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("workflows/w.yaml:9: triggers[0].schedule: cron expression `*/2 * * *` has 4 field(s), expected 5"),
            "{}",
            found[0]
        );
        assert!(
            found[1].starts_with(
                "workflows/w.yaml:10: triggers[1].schedule: invalid cron expression `61 * * * *`"
            ),
            "{}",
            found[1]
        );
    }

    #[test]
    fn an_unknown_trigger_key_is_suggested_at_its_line() {
        let text = format!("{HEAD}triggers:\n  - schedle: \"* * * * *\"\n");
        let errs = Workflow::parse(&text, Path::new("workflows/w.yaml")).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "workflows/w.yaml:9: triggers[0].schedle: unknown field `schedle`; did you mean `schedule`?"
        );
        let text = format!("{HEAD}triggers:\n  - webhook: {{ path: a, secret: x, scret: y }}\n");
        let errs = Workflow::parse(&text, Path::new("workflows/w.yaml")).unwrap_err();
        assert!(
            errs[0].to_string().starts_with(
                "workflows/w.yaml:9: triggers[0].webhook.scret: unknown field `scret`"
            ),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn a_webhook_path_used_by_two_workflows_is_refused_in_both() {
        let hook = |path: &str| {
            format!(
                "{HEAD}triggers:\n  - webhook:\n      path: {path}\n      secret: \"${{{{ vault.get('h', 'k') }}}}\"\n"
            )
        };
        let (_dir, repo) = repo_with(&[("a.yaml", &hook("deploy")), ("b.yaml", &hook("deploy"))]);
        let found = problems(&repo, "a");
        assert_eq!(
            found,
            [
                "workflows/a.yaml:10: triggers[0].webhook.path: webhook path `deploy` is also used by workflow `b` (workflows/b.yaml); a path can start only one workflow, rename one"
            ]
        );
        assert_eq!(problems(&repo, "b").len(), 1);
    }

    #[test]
    fn schedule_inputs_must_fit_the_inputs_schema() {
        let text =
            format!("{HEAD}triggers:\n  - schedule: \"0 * * * *\"\n    inputs: {{ vmName: 5 }}\n");
        let (_dir, repo) = repo_with(&[("w.yaml", &text)]);
        assert_eq!(
            problems(&repo, "w"),
            [
                "workflows/w.yaml:10: triggers[0].inputs: these inputs do not fit the workflow's `inputs` schema: input `vmName`: expected string, got 5"
            ]
        );
    }

    #[test]
    fn a_secret_written_in_the_file_is_refused_without_quoting_it() {
        let text = format!("{HEAD}triggers:\n  - webhook: {{ path: p, secret: hunter2-plain }}\n");
        let (_dir, repo) = repo_with(&[("w.yaml", &text)]);
        let found = problems(&repo, "w");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("triggers[0].webhook.secret: the secret is written in the file"));
        assert!(!found[0].contains("hunter2"), "{}", found[0]);
    }

    #[test]
    fn a_webhook_needs_a_body_input() {
        let text = "jobs: []\ntriggers:\n  - webhook: { path: p, secret: \"${{ vault.get('h', 'k') }}\" }\n";
        let (_dir, repo) = repo_with(&[("w.yaml", text)]);
        let found = problems(&repo, "w");
        assert!(
            found[0].starts_with("workflows/w.yaml:3: triggers[0].webhook: a webhook gives the workflow the request body as `inputs.body`"),
            "{found:?}"
        );
    }

    #[test]
    fn bad_hook_paths_are_refused() {
        for bad in ["", "/x", "a/../b", "a b", "x/"] {
            assert!(!valid_hook_path(bad), "{bad}");
        }
        for good in ["deploy", "github/push", "a.b-c_d"] {
            assert!(valid_hook_path(good), "{good}");
        }
    }
}
