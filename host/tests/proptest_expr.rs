//! Property tests over the template and CEL front end: whatever text a definition holds,
//! validating and evaluating it ends with a value or an error, never a panic, an abort or a
//! hang (the evaluation budget bounds every case).

use std::collections::BTreeMap;

use orch::expr::{DataSource, Evaluator, ResourceData, Vars};
use proptest::prelude::*;
use serde_json::{Value, json};

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
            attributes: json!({"ip": "10.0.0.1", "tags": ["a", "b"], "n": 2}),
            retired: None,
        }])
    }

    fn vault_get(&self, vault: &str, key: &str) -> Result<Option<String>, String> {
        Ok((vault == "v" && key == "k").then(|| "s3cret".to_string()))
    }
}

fn vars() -> Vars {
    let mut inputs = serde_json::Map::new();
    inputs.insert("a".to_string(), json!({"b": [1, 2, 3]}));
    inputs.insert("s".to_string(), json!("héllo"));
    inputs.insert("n".to_string(), json!(7));
    Vars {
        inputs,
        env: BTreeMap::from([("X".to_string(), "x".to_string())]),
        run_id: "run-1".to_string(),
        self_: serde_json::Map::new(),
    }
}

/// Validates and evaluates `text` as a run would; only a clean end counts.
fn front_end(text: &str, templated: bool) {
    let evaluator = Evaluator::new();
    let data = Data;
    let scope = evaluator.scope(&data, vars());
    if templated {
        let _ = evaluator.check_value(&Value::String(text.to_string()), "f");
        let _ = scope.resolve_str(text, "f");
    } else {
        let _ = evaluator.check_syntax(text);
        let _ = scope.eval_expr(text);
    }
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        (-5i64..100).prop_map(|n| n.to_string()),
        "[a-z]{0,6}".prop_map(|s| format!("'{s}'")),
        Just("'héllo 🎉\u{202e}x'".to_string()),
        Just("inputs.a".to_string()),
        Just("inputs.a.b".to_string()),
        Just("inputs.s".to_string()),
        Just("inputs.n".to_string()),
        Just("inputs.missing".to_string()),
        Just("model.fleet.resource.vm.web1.attributes.ip".to_string()),
        Just("model.fleet.resource.vm['web1'].attributes.tags".to_string()),
        Just("model.nope".to_string()),
        Just("env.X".to_string()),
        Just("run.id".to_string()),
        Just("vault.get('v', 'k')".to_string()),
        Just("data.latest('fleet', 'web1')".to_string()),
        Just("x".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("[1, 2, 3]".to_string()),
        Just("lists.range(50)".to_string()),
        Just("{'k': 'v'}".to_string()),
    ]
}

/// CEL-shaped expressions, nested a few levels, mostly valid and sometimes not.
fn cel() -> impl Strategy<Value = String> {
    leaf().prop_recursive(6, 64, 4, |inner| {
        let op = prop_oneof![
            Just("+"),
            Just("-"),
            Just("*"),
            Just("/"),
            Just("%"),
            Just("=="),
            Just("!="),
            Just("<"),
            Just(">="),
            Just("&&"),
            Just("||"),
            Just("in"),
        ];
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("size({a})")),
            inner.clone().prop_map(|a| format!("string({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{{{a}: {b}}}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[{b}]")),
            inner.clone().prop_map(|a| format!("{a}.attributes")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("{c} ? {a} : {b}")),
            (inner.clone(), inner.clone()).prop_map(|(l, b)| format!("{l}.map(x, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(l, b)| format!("{l}.filter(x, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(l, b)| format!("{l}.exists(x, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(l, b)| format!("{l}.all(x, {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(s, a, b)| format!("{s}.replace({a}, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(l, s)| format!("{l}.join({s})")),
            (inner.clone(), inner.clone()).prop_map(|(s, p)| format!("{s}.split({p})")),
            inner.clone().prop_map(|l| format!("{l}.distinct()")),
            inner.prop_map(|a| format!("has({a}.b)")),
        ]
    })
}

/// Text from the characters that matter to the template and CEL lexers, plus odd unicode.
fn junk() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("${{"),
            Just("}}"),
            Just("{"),
            Just("}"),
            Just("$"),
            Just("'"),
            Just("\""),
            Just("'''"),
            Just("r'"),
            Just("\\"),
            Just("("),
            Just(")"),
            Just("["),
            Just("]"),
            Just("."),
            Just(","),
            Just(":"),
            Just("?"),
            Just("!"),
            Just("+"),
            Just("-"),
            Just("&&"),
            Just("||"),
            Just("`"),
            Just(" "),
            Just("\n"),
            Just("inputs"),
            Just("model"),
            Just("1"),
            Just("é"),
            Just("🎉"),
            Just("\u{200b}"),
            Just("\u{202e}"),
            Just("\u{0}"),
            Just("\u{fffd}"),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// Template strings: text and `${{ }}` around expressions or junk.
fn template() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            "[a-z :/.-]{0,8}".prop_map(String::from),
            cel().prop_map(|e| format!("${{{{ {e} }}}}")),
            junk().prop_map(|j| format!("${{{{ {j} }}}}")),
            junk(),
        ],
        0..5,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn any_cel_expression_ends_cleanly(expr in cel()) {
        front_end(&expr, false);
    }

    #[test]
    fn any_junk_ends_cleanly_as_cel_and_as_a_template(text in junk()) {
        front_end(&text, false);
        front_end(&text, true);
    }

    #[test]
    fn any_template_ends_cleanly(text in template()) {
        front_end(&text, true);
    }

    #[test]
    fn long_operator_chains_end_cleanly(n in 1usize..3000, op in prop_oneof![Just("+"), Just("."), Just("["), Just("("), Just("!"), Just("-")]) {
        let text = match op {
            "+" => vec!["1"; n].join("+"),
            "." => format!("inputs{}", ".a".repeat(n)),
            "[" => format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            "(" => format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            _ => format!("{}1", op.repeat(n)),
        };
        front_end(&text, false);
        front_end(&format!("${{{{ {text} }}}}"), true);
    }
}
