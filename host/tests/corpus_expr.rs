//! Replays the expression corpus (tests/corpus/expr/): templates (`.tmpl`) and bare CEL (`.cel`)
//! that once crashed the host, hung it or ate its memory. Each goes through the same front end a
//! run uses (template parser, validation, evaluation) and must end cleanly, with the outcome its
//! first line states: `#! ok [json]` or `#! error [words the message must contain]`.

use std::collections::BTreeMap;
use std::path::Path;

use orch::expr::{DataSource, Evaluator, ExprError, ResourceData, Vars};
use serde_json::{Value, json};

/// Data for the corpus: one model with one resource, a few inputs.
struct Data;

impl DataSource for Data {
    fn model_exists(&self, model: &str) -> bool {
        model == "fleet"
    }

    fn model_names(&self) -> Vec<String> {
        vec!["fleet".to_string()]
    }

    fn model_resources(&self, _model: &str) -> Result<Vec<ResourceData>, String> {
        Ok(vec![ResourceData {
            spec: "vm".to_string(),
            name: "web1".to_string(),
            version: 1,
            written_at: "2025-01-01T00:00:00Z".to_string(),
            attributes: json!({"ip": "10.0.0.1", "tags": ["a", "b"]}),
            retired: None,
        }])
    }

    fn vault_get(&self, _vault: &str, _key: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
}

fn vars() -> Vars {
    let mut inputs = serde_json::Map::new();
    inputs.insert("a".to_string(), json!({"a": {"a": 1}}));
    inputs.insert("n".to_string(), json!(3));
    Vars {
        inputs,
        env: BTreeMap::from([("X".to_string(), "x".to_string())]),
        run_id: "run-1".to_string(),
        self_: serde_json::Map::new(),
    }
}

/// What a case must produce.
enum Expect {
    Ok(Option<Value>),
    Error(String),
}

fn expectation(header: &str, case: &str) -> Expect {
    let header = header
        .strip_prefix("#! ")
        .unwrap_or_else(|| panic!("{case}: the first line must be `#! ok …` or `#! error …`"));
    if let Some(rest) = header.strip_prefix("ok") {
        let rest = rest.trim();
        Expect::Ok((!rest.is_empty()).then(|| {
            serde_json::from_str(rest).unwrap_or_else(|e| panic!("{case}: bad expected JSON: {e}"))
        }))
    } else if let Some(rest) = header.strip_prefix("error") {
        Expect::Error(rest.trim().to_string())
    } else {
        panic!("{case}: unknown expectation `{header}`")
    }
}

/// Validates then evaluates one case, as a run would.
fn replay(text: &str, templated: bool) -> Result<Value, ExprError> {
    let evaluator = Evaluator::new();
    let data = Data;
    let scope = evaluator.scope(&data, vars());
    if templated {
        evaluator.check_value(&Value::String(text.to_string()), "value")?;
        scope.resolve_str(text, "value")
    } else {
        evaluator.check_syntax(text)?;
        scope.eval_expr(text)
    }
}

#[test]
fn every_corpus_case_ends_cleanly_with_its_expected_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/expr");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 40,
        "expected the corpus under {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for path in cases {
        let case = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let content = std::fs::read_to_string(&path).expect("corpus file is UTF-8");
        let (header, body) = content.split_once('\n').unwrap_or((&content, ""));
        let text = body.strip_suffix('\n').unwrap_or(body);
        let templated = case.ends_with(".tmpl");
        let outcome = std::panic::catch_unwind(|| replay(text, templated));
        let problem = match (expectation(header, &case), outcome) {
            (_, Err(_)) => Some("panicked".to_string()),
            (Expect::Ok(None), Ok(Ok(_))) => None,
            (Expect::Ok(Some(want)), Ok(Ok(got))) if got == want => None,
            (Expect::Ok(want), Ok(got)) => Some(format!("want ok {want:?}, got {got:?}")),
            (Expect::Error(words), Ok(Err(e))) => {
                let message = e.to_string();
                let named = message.len() < 2 * text.len() + 2000;
                if !message.contains(&words) {
                    Some(format!(
                        "want an error containing `{words}`, got: {message}"
                    ))
                } else if !named {
                    Some(format!("the error is {} bytes long", message.len()))
                } else {
                    None
                }
            }
            (Expect::Error(words), Ok(Ok(v))) => {
                let shown: String = v.to_string().chars().take(200).collect();
                Some(format!(
                    "want an error containing `{words}`, got ok {shown}"
                ))
            }
        };
        if let Some(problem) = problem {
            failures.push(format!("{case}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every expression the repository's workflows and the reference documents use stays within
/// the bounds, so limits that catch abuse never break real use.
#[test]
fn expressions_in_the_shipped_workflows_and_reference_docs_pass_the_bounds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    collect(&root.join("workflows"), &mut files);
    collect(&root.join("../shared/reference"), &mut files);
    let evaluator = Evaluator::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            let mut rest = line;
            while let Some(start) = rest.find("${{") {
                let Some(len) = rest[start..].find("}}") else {
                    break;
                };
                let template = &rest[start..start + len + 2];
                rest = &rest[start + len + 2..];
                checked += 1;
                // Reference snippets may be illustrative; only the bounds matter here.
                if let Err(e) = evaluator.check_syntax(template)
                    && matches!(e.kind, orch::expr::ExprErrorKind::TooComplex(_))
                {
                    failures.push(format!("{}: {e}", file.display()));
                }
            }
        }
    }
    assert!(checked > 10, "found only {checked} templates");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
