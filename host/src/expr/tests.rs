use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use super::*;

/// An in-memory data source that counts how often each model is loaded.
#[derive(Default)]
struct Fake {
    models: BTreeMap<String, Result<Vec<ResourceData>, String>>,
    vault: HashMap<(String, String), String>,
    loads: Mutex<HashMap<String, usize>>,
    vault_calls: AtomicUsize,
}

impl Fake {
    fn loads(&self, model: &str) -> usize {
        self.loads.lock().unwrap().get(model).copied().unwrap_or(0)
    }
}

impl DataSource for Fake {
    fn model_exists(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    fn model_names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    fn model_resources(&self, model: &str) -> Result<Vec<ResourceData>, String> {
        *self
            .loads
            .lock()
            .unwrap()
            .entry(model.to_string())
            .or_default() += 1;
        self.models
            .get(model)
            .cloned()
            .unwrap_or_else(|| Err(format!("no model {model}")))
    }

    fn vault_get(&self, vault: &str, key: &str) -> Result<Option<String>, String> {
        self.vault_calls.fetch_add(1, Ordering::SeqCst);
        if vault == "broken" {
            return Err("vault file is corrupt".to_string());
        }
        Ok(self
            .vault
            .get(&(vault.to_string(), key.to_string()))
            .cloned())
    }

    fn file_contents(&self, path: &str) -> Result<String, String> {
        match path {
            "dashboards/games.json" => Ok("{\"uid\": \"games\"}".to_string()),
            "alerts/broken.json" => Ok("{\n  \"uid\": \"x\",\n  oops\n}".to_string()),
            _ => Err(format!("file `{path}` does not exist in the repository")),
        }
    }
}

fn resource(spec: &str, name: &str, version: u64, attributes: Value) -> ResourceData {
    ResourceData {
        spec: spec.to_string(),
        name: name.to_string(),
        version,
        written_at: format!("2025-01-01T00:00:{version:02}Z"),
        attributes,
        retired: None,
    }
}

/// `fleet` has ten VMs (web3 is stopped, so its ip is null) plus `gold-image`;
/// `keebDev02` follows the single-instance shape; `empty` has no data yet.
fn fake() -> Fake {
    let mut vms: Vec<ResourceData> = (1..=10)
        .map(|i| {
            let ip = if i == 3 {
                Value::Null
            } else {
                json!(format!("10.0.0.{i}"))
            };
            resource(
                "vm",
                &format!("web{i}"),
                i,
                json!({"ip": ip, "cores": i, "tags": ["a", "b"], "net": {"bridge": "vmbr0"}}),
            )
        })
        .collect();
    vms.push(resource(
        "vm",
        "gold-image",
        1,
        json!({"ip": null, "template": true}),
    ));
    vms.push(resource("host", "pve1", 4, json!({"ip": "192.168.1.2"})));
    let mut models = BTreeMap::new();
    models.insert("fleet".to_string(), Ok(vms));
    models.insert(
        "keebDev02".to_string(),
        Ok(vec![resource(
            "node",
            "node",
            7,
            json!({"ticket": "PVE:abc"}),
        )]),
    );
    models.insert("empty".to_string(), Ok(Vec::new()));
    models.insert("broken".to_string(), Err("database is locked".to_string()));
    let mut vault = HashMap::new();
    vault.insert(
        ("pve".to_string(), "password".to_string()),
        "hunter2-s3cret".to_string(),
    );
    Fake {
        models,
        vault,
        ..Fake::default()
    }
}

fn vars() -> Vars {
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), "/home/orch".to_string());
    Vars {
        inputs: json!({"vmName": "web2", "count": 3, "modelName": "fleet"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        env,
        run_id: "run-42".to_string(),
        self_: json!({"name": "sync", "vm": {"gold-image": "debian-12", "id": 100}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

fn resolve(scope: &Scope<'_>, s: &str) -> Result<Value, ExprError> {
    scope.resolve_value(&json!(s), "f")
}

#[test]
fn whole_value_keeps_cel_type() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    assert_eq!(resolve(&scope, "${{ 1 + 2 }}").unwrap(), json!(3));
    assert_eq!(resolve(&scope, "  ${{ 1 < 2 }} ").unwrap(), json!(true));
    assert_eq!(resolve(&scope, "${{ null }}").unwrap(), Value::Null);
    assert_eq!(resolve(&scope, "${{ 2.5 }}").unwrap(), json!(2.5));
    assert_eq!(resolve(&scope, "${{ 1.0 }}").unwrap(), json!(1.0));
    assert_eq!(
        resolve(&scope, "${{ 18446744073709551615u }}").unwrap(),
        json!(u64::MAX)
    );
    assert_eq!(
        resolve(&scope, "${{ {'b': [1, 'x'], 'a': {'c': null}} }}").unwrap(),
        json!({"a": {"c": null}, "b": [1, "x"]})
    );
    assert_eq!(
        resolve(&scope, "${{ [1, 2] + [3] }}").unwrap(),
        json!([1, 2, 3])
    );
    assert_eq!(resolve(&scope, "${{ 'x' }}").unwrap(), json!("x"));
    assert_eq!(
        resolve(
            &scope,
            "${{ model.fleet.resource.vm.web1.attributes.cores }}"
        )
        .unwrap(),
        json!(1)
    );
}

#[test]
fn json_numbers_round_trip() {
    let (ev, data) = (Evaluator::new(), fake());
    let mut v = vars();
    v.inputs = json!({"i": -5, "big": u64::MAX, "f": 0.25, "whole": 3.0})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let scope = ev.scope(&data, v);
    assert_eq!(scope.eval_expr("inputs.i * 2").unwrap(), json!(-10));
    assert_eq!(
        scope.eval_expr("type(inputs.i) == int").unwrap(),
        json!(true)
    );
    assert_eq!(scope.eval_expr("inputs.big").unwrap(), json!(u64::MAX));
    assert_eq!(scope.eval_expr("inputs.f * 2.0").unwrap(), json!(0.5));
    assert_eq!(scope.eval_expr("inputs.whole").unwrap(), json!(3.0));
    assert_eq!(scope.eval_expr("inputs").unwrap()["whole"], json!(3.0));
}

#[test]
fn interpolation_formats_values_as_text() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    assert_eq!(
        resolve(
            &scope,
            "https://${{ model.fleet.resource.vm.web1.attributes.ip }}:${{ 8006 }}/api"
        )
        .unwrap(),
        json!("https://10.0.0.1:8006/api")
    );
    assert_eq!(
        resolve(
            &scope,
            "ip=${{ model.fleet.resource.vm.web3.attributes.ip }}"
        )
        .unwrap(),
        json!("ip=null")
    );
    assert_eq!(
        resolve(
            &scope,
            "t=${{ model.fleet.resource.vm.web1.attributes.tags }} ${{ true }} ${{ 1.5 }}"
        )
        .unwrap(),
        json!("t=[\"a\",\"b\"] true 1.5")
    );
    assert_eq!(
        resolve(&scope, "m=${{ {'k': 1} }}").unwrap(),
        json!("m={\"k\":1}")
    );
    assert_eq!(
        resolve(&scope, "no templates {{ here }}").unwrap(),
        json!("no templates {{ here }}")
    );
}

#[test]
fn null_ip_stays_null() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    assert_eq!(
        resolve(&scope, "${{ model.fleet.resource.vm.web3.attributes.ip }}").unwrap(),
        Value::Null
    );
    assert_eq!(
        scope
            .eval_expr("model.fleet.resource.vm.web3.attributes.ip == null")
            .unwrap(),
        json!(true)
    );
}

#[test]
fn both_address_forms_and_shorthand() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    for expr in [
        "model.fleet.resource.vm['web2'].attributes.ip",
        "model.fleet.resource.vm.web2.attributes.ip",
        "model.fleet.resource['vm'].web2['attributes']['ip']",
        "model['fleet'].resource.vm.web2.attributes.ip",
        "model[inputs.modelName].resource.vm.web2.attributes.ip",
        "model.fleet.resource.vm[inputs.vmName].attributes.ip",
        "data.latest('fleet', 'web2').attributes.ip",
    ] {
        assert_eq!(scope.eval_expr(expr).unwrap(), json!("10.0.0.2"), "{expr}");
    }
    let ticket = json!("PVE:abc");
    assert_eq!(
        scope
            .eval_expr("model.keebDev02.resource.node.attributes.ticket")
            .unwrap(),
        ticket
    );
    assert_eq!(
        scope
            .eval_expr("model.keebDev02.resource.node.node.attributes.ticket")
            .unwrap(),
        ticket
    );
    assert_eq!(
        scope
            .eval_expr("model.keebDev02.resource.node.version")
            .unwrap(),
        json!(7)
    );
    let instance = scope
        .eval_expr("model.keebDev02.resource.node.node")
        .unwrap();
    assert_eq!(
        instance,
        json!({
            "attributes": {"ticket": "PVE:abc"},
            "name": "node",
            "version": 7,
            "writtenAt": "2025-01-01T00:00:07Z",
        })
    );
    // Specs with several instances get no shorthand.
    assert!(
        scope
            .eval_expr("model.fleet.resource.vm.attributes")
            .is_err()
    );
    // A name that is not an identifier: bracket or backtick form.
    assert_eq!(
        scope
            .eval_expr("model.fleet.resource.vm[\"gold-image\"].attributes.template")
            .unwrap(),
        json!(true)
    );
    assert_eq!(
        scope
            .eval_expr("model.fleet.resource.vm.`gold-image`.attributes.template")
            .unwrap(),
        json!(true)
    );
}

#[test]
fn shorthand_yields_to_an_instance_named_attributes() {
    let mut data = fake();
    data.models.insert(
        "odd".to_string(),
        Ok(vec![
            resource("cfg", "cfg", 1, json!({"x": 1})),
            resource("cfg", "attributes", 2, json!({"x": 2})),
        ]),
    );
    let ev = Evaluator::new();
    let scope = ev.scope(&data, vars());
    assert_eq!(
        scope
            .eval_expr("model.odd.resource.cfg.attributes.attributes.x")
            .unwrap(),
        json!(2)
    );
    assert_eq!(
        scope
            .eval_expr("model.odd.resource.cfg.cfg.attributes.x")
            .unwrap(),
        json!(1)
    );
}

#[test]
fn collections_and_macros_over_model_data() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    assert_eq!(
        scope.eval_expr("size(model.fleet.resource.vm)").unwrap(),
        json!(11)
    );
    assert_eq!(
        scope
            .eval_expr(
                "model.fleet.resource.vm.filter(k, model.fleet.resource.vm[k].attributes.ip == null).size()"
            )
            .unwrap(),
        json!(2)
    );
    assert_eq!(
        scope
            .eval_expr("has(model.fleet.resource.vm.web1) && !has(model.fleet.resource.vm.nope)")
            .unwrap(),
        json!(true)
    );
    assert_eq!(scope.eval_expr("'fleet' in model").unwrap(), json!(true));
    assert_eq!(scope.eval_expr("'nope' in model").unwrap(), json!(false));
    assert_eq!(
        scope
            .eval_expr("[model][0].fleet.resource.host.pve1.attributes.ip")
            .unwrap(),
        json!("192.168.1.2")
    );
    assert_eq!(
        scope.eval_expr("'a,b'.split(',').join('-')").unwrap(),
        json!("a-b")
    );
    assert_eq!(
        scope
            .eval_expr("model.fleet.resource.vm.web1.writtenAt")
            .unwrap(),
        json!("2025-01-01T00:00:01Z")
    );
    assert_eq!(
        scope
            .eval_expr("data.latest('fleet', 'pve1').attributes.ip")
            .unwrap(),
        json!("192.168.1.2")
    );
}

#[test]
fn inputs_env_self_and_run() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    assert_eq!(scope.eval_expr("inputs.count + 1").unwrap(), json!(4));
    assert_eq!(scope.eval_expr("env.HOME").unwrap(), json!("/home/orch"));
    assert_eq!(scope.eval_expr("run.id").unwrap(), json!("run-42"));
    assert_eq!(scope.eval_expr("self.name").unwrap(), json!("sync"));
    assert_eq!(
        scope.eval_expr("self.vm[\"gold-image\"]").unwrap(),
        json!("debian-12")
    );
    assert_eq!(
        resolve(&scope, "${{ run.id }}/${{ self.vm.id }}").unwrap(),
        json!("run-42/100")
    );
}

#[test]
fn vault_values_join_the_redaction_set() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    assert!(ev.secrets().is_empty());
    assert_eq!(
        resolve(&scope, "${{ vault.get('pve', 'password') }}").unwrap(),
        json!("hunter2-s3cret")
    );
    assert_eq!(ev.secrets(), vec!["hunter2-s3cret".to_string()]);
    assert_eq!(
        resolve(&scope, "pw=${{ vault.get(\"pve\", \"password\") }}").unwrap(),
        json!("pw=hunter2-s3cret")
    );
    assert_eq!(ev.secrets().len(), 1, "values are recorded once");
    assert_eq!(
        data.vault_calls.load(Ordering::SeqCst),
        1,
        "memoized per scope"
    );
    assert_eq!(ev.redact("login hunter2-s3cret ok"), "login [redacted] ok");

    // Errors never carry the value, even where CEL would print it.
    for expr in [
        "vault.get('pve', 'password') + 1",
        "int(vault.get('pve', 'password'))",
        "{'a': 1}[vault.get('pve', 'password')]",
        "inputs[vault.get('pve', 'password')]",
        "vault.get('pve', 'password') < 1",
    ] {
        let err = scope.eval_expr(expr).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{expr}: {err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{expr}: {err:?}");
    }
}

#[test]
fn missing_vault_key_says_how_to_add_it() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let err = resolve(&scope, "${{ vault.get('pve', 'token') }}").unwrap_err();
    assert_eq!(
        err.kind,
        ExprErrorKind::Vault {
            vault: "pve".into(),
            key: "token".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "field `f`: `${{ vault.get('pve', 'token') }}`: vault `pve` has no secret `token`; add it with `orch vault put pve token`"
    );
    let err = scope.eval_expr("vault.get('broken', 'x')").unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::DataSource(_)), "{err}");
    let err = scope.eval_expr("vault.get('pve')").unwrap_err();
    assert!(err.to_string().contains("two string arguments"), "{err}");
}

#[test]
fn file_contents_returns_the_text_and_errors_name_file_and_expression() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    assert_eq!(
        resolve(&scope, "${{ file.contents('dashboards/games.json') }}").unwrap(),
        json!("{\"uid\": \"games\"}")
    );
    assert_eq!(
        scope
            .eval_expr("size(file.contents('dashboards/' + 'games.json'))")
            .unwrap(),
        json!(16)
    );
    let err = resolve(&scope, "${{ file.contents('dashboards/nope.json') }}").unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::DataSource(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("field `f`"), "{text}");
    assert!(
        text.contains("`${{ file.contents('dashboards/nope.json') }}`"),
        "{text}"
    );
    assert!(
        text.contains("file `dashboards/nope.json` does not exist"),
        "{text}"
    );
    let err = scope.eval_expr("file.contents(1)").unwrap_err();
    assert!(err.to_string().contains("one string argument"), "{err}");
}

#[test]
fn file_json_parses_the_file_and_a_syntax_error_names_file_line_and_column() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    assert_eq!(
        resolve(&scope, "${{ file.json('dashboards/games.json') }}").unwrap(),
        json!({"uid": "games"})
    );
    assert_eq!(
        scope
            .eval_expr("file.json('dashboards/games.json').uid")
            .unwrap(),
        json!("games")
    );
    let err = resolve(&scope, "${{ file.json('alerts/broken.json') }}").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("alerts/broken.json:3:3: not valid JSON"),
        "{text}"
    );
    assert!(
        text.contains("`${{ file.json('alerts/broken.json') }}`"),
        "{text}"
    );
    let err = scope.eval_expr("file.json('nope.json')").unwrap_err();
    assert!(
        err.to_string().contains("`nope.json` does not exist"),
        "{err}"
    );
}

#[test]
fn file_contents_is_refused_by_a_data_source_without_a_repository() {
    struct NoRepo;
    impl DataSource for NoRepo {
        fn model_exists(&self, _: &str) -> bool {
            false
        }
        fn model_names(&self) -> Vec<String> {
            Vec::new()
        }
        fn model_resources(&self, _: &str) -> Result<Vec<ResourceData>, String> {
            Ok(Vec::new())
        }
        fn vault_get(&self, _: &str, _: &str) -> Result<Option<String>, String> {
            Ok(None)
        }
    }
    let ev = Evaluator::new();
    let scope = ev.scope(&NoRepo, vars());
    let err = scope.eval_expr("file.contents('a.json')").unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");
}

#[test]
fn unknown_model_suggests_a_name() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let err = resolve(&scope, "${{ model.fleeet.resource.vm.web1.attributes.ip }}").unwrap_err();
    assert_eq!(
        err.kind,
        ExprErrorKind::UnknownModel {
            name: "fleeet".into(),
            suggestion: Some("fleet".into())
        }
    );
    assert!(
        err.to_string()
            .ends_with("unknown model `fleeet`; did you mean `fleet`?")
    );
    let err = scope.eval_expr("model['zzzzzz']").unwrap_err();
    assert_eq!(
        err.kind,
        ExprErrorKind::UnknownModel {
            name: "zzzzzz".into(),
            suggestion: None
        }
    );
    let err = scope
        .eval_expr("data.latest('keebDev2', 'node')")
        .unwrap_err();
    assert_eq!(
        err.kind,
        ExprErrorKind::UnknownModel {
            name: "keebDev2".into(),
            suggestion: Some("keebDev02".into())
        }
    );
}

#[test]
fn model_without_data_reads_like_the_design() {
    let mut data = fake();
    data.models.insert("keebDev02".to_string(), Ok(Vec::new()));
    let ev = Evaluator::new();
    let scope = ev.scope(&data, vars());
    let value = json!({"ticket": "${{ model.keebDev02.resource.node.node.attributes.ticket }}"});
    let err = scope.resolve_value(&value, "globalArguments").unwrap_err();
    assert_eq!(err.field, "globalArguments.ticket");
    assert_eq!(
        err.expr,
        "model.keebDev02.resource.node.node.attributes.ticket"
    );
    assert_eq!(
        err.to_string(),
        "field `globalArguments.ticket`: `${{ model.keebDev02.resource.node.node.attributes.ticket }}`: model `keebDev02` has no data yet; run a method that writes it first"
    );
    let err = scope.eval_expr("data.latest('empty', 'x')").unwrap_err();
    assert_eq!(
        err.kind,
        ExprErrorKind::NoData {
            model: "empty".into()
        }
    );
}

#[test]
fn data_source_errors_are_reported() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let err = scope.eval_expr("model.broken.resource").unwrap_err();
    assert!(
        matches!(&err.kind, ExprErrorKind::DataSource(m) if m.contains("database is locked")),
        "{err}"
    );
}

#[test]
fn missing_instance_attribute_and_spec_name_the_key() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());

    let err = resolve(
        &scope,
        "${{ model.fleet.resource.vm[\"gold-imag\"].attributes.ip }}",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `f`: `${{ model.fleet.resource.vm[\"gold-imag\"].attributes.ip }}`: instance `gold-imag` of spec `vm` in model `fleet` does not exist; did you mean `gold-image`?"
    );

    let err = scope
        .eval_expr("model.fleet.resource.vm.web1.attributes.ipp")
        .unwrap_err();
    assert_eq!(
        err.kind,
        ExprErrorKind::NoSuchKey {
            missing: "attribute `ipp` of instance `web1` of spec `vm` in model `fleet`".into(),
            suggestion: Some("ip".into()),
            available: Box::default(),
        }
    );

    let err = scope
        .eval_expr("model.fleet.resource.vm.web1.attributes.net.bridgee")
        .unwrap_err();
    assert_eq!(
        err.kind,
        ExprErrorKind::NoSuchKey {
            missing: "attribute `net.bridgee` of instance `web1` of spec `vm` in model `fleet`"
                .into(),
            suggestion: Some("bridge".into()),
            available: Box::default(),
        }
    );

    let err = scope
        .eval_expr("model.fleet.resource.vms.web1")
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("spec `vms` in model `fleet` does not exist; did you mean `vm`?"),
        "{err}"
    );

    let err = scope
        .eval_expr("model.keebDev02.resource.node.attributes.tiket")
        .unwrap_err();
    assert!(
        err.to_string().ends_with(
            "attribute `tiket` of resource `node` in model `keebDev02` does not exist; did you mean `ticket`?"
        ),
        "{err}"
    );

    let mut v = vars();
    v.inputs.insert("vmName".into(), json!("web99"));
    let scope = ev.scope(&data, v);
    let err = scope
        .eval_expr("model.fleet.resource.vm[inputs.vmName].attributes.ip")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("instance `web99` of spec `vm` in model `fleet` does not exist"),
        "{err}"
    );

    let err = scope.eval_expr("inputs.vmNam").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("input `vmNam` does not exist; did you mean `vmName`?"),
        "{err}"
    );
    let err = scope.eval_expr("env.NOPE_NOTHING").unwrap_err();
    assert_eq!(
        err.kind,
        ExprErrorKind::NoSuchKey {
            missing: "environment variable `NOPE_NOTHING`".into(),
            suggestion: None,
            available: vec!["HOME".into()].into(),
        }
    );
    let err = scope.eval_expr("input.vmName").unwrap_err();
    assert!(err.to_string().contains("did you mean `inputs`?"), "{err}");
    let err = scope
        .eval_expr("data.latest('fleet', 'web11x')")
        .unwrap_err();
    assert!(
        matches!(&err.kind, ExprErrorKind::NoSuchKey { missing, .. } if missing == "resource `web11x` in model `fleet`"),
        "{err}"
    );
}

#[test]
fn syntax_errors_and_unterminated_templates() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let err = resolve(&scope, "${{ model.fleet. }}").unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::Syntax(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with("field `f`: `${{ model.fleet. }}`: syntax error: column"),
        "{err}"
    );
    let err = resolve(&scope, "x ${{ model.fleet").unwrap_err();
    assert_eq!(err.expr, "${{ model.fleet");
    assert!(
        err.to_string()
            .starts_with("field `f`: `${{ model.fleet`: syntax error: unterminated"),
        "quoted as written: {err}"
    );
    assert!(err.to_string().contains("unterminated `${{`"), "{err}");
    assert!(ev.check_syntax("a ${{ 1 + }} b").is_err());
    assert!(ev.check_syntax("${{ oops").is_err());
    assert!(ev.check_syntax("${{ }}").is_err());
    assert!(ev.check_syntax("a ${{ 1 + 2 }} b ${{ model.x.y }}").is_ok());
    assert!(ev.check_syntax("inputs.a > 2 && env.B == 'x'").is_ok());
    assert!(ev.check_syntax("inputs.a >").is_err());
    assert!(ev.check_syntax("").is_err());
    let err = scope.eval_expr("1 +").unwrap_err();
    assert!(!err.templated);
    assert!(err.to_string().starts_with("`1 +`: syntax error:"), "{err}");

    let tree = json!({"a": ["ok ${{ 1 }}", {"b": "${{ 1 + }}"}]});
    let err = ev.check_value(&tree, "globalArguments").unwrap_err();
    assert_eq!(err.field, "globalArguments.a[1].b");
    assert!(ev.check_value(&json!({"a": "${{ 1 }}"}), "").is_ok());
}

#[test]
fn map_keys_are_not_templated_and_paths_nest() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let value = json!({
        "${{ key }}": "${{ inputs.count }}",
        "list": [1, "${{ run.id }}", {"deep": "${{ 'x' + 'y' }}"}],
        "n": 5,
        "b": false,
    });
    assert_eq!(
        scope.resolve_value(&value, "").unwrap(),
        json!({
            "${{ key }}": 3,
            "list": [1, "run-42", {"deep": "xy"}],
            "n": 5,
            "b": false,
        })
    );
    let err = scope
        .resolve_value(
            &json!({"list": [0, {"x": "${{ inputs.nope }}"}]}),
            "globalArguments",
        )
        .unwrap_err();
    assert_eq!(err.field, "globalArguments.list[1].x");
}

#[test]
fn models_load_lazily_once_per_scope() {
    let (ev, data) = (Evaluator::new(), fake());
    {
        let scope = ev.scope(&data, vars());
        assert_eq!(scope.eval_expr("1 + 1").unwrap(), json!(2));
        assert_eq!(data.loads("fleet"), 0);
        for _ in 0..5 {
            scope
                .eval_expr("model.fleet.resource.vm[inputs.vmName].attributes.ip")
                .unwrap();
            scope
                .eval_expr("model['fleet'].resource.vm.web1.version")
                .unwrap();
            scope
                .eval_expr("data.latest('fleet', 'web1').version")
                .unwrap();
        }
        assert!(scope.eval_expr("model.empty.resource").is_err());
        assert!(scope.eval_expr("model.empty.resource").is_err());
        assert!(scope.eval_expr("model.nonexistent.resource").is_err());
        assert_eq!(data.loads("fleet"), 1);
        assert_eq!(data.loads("empty"), 1);
        assert_eq!(
            data.loads("nonexistent"),
            0,
            "unknown models are never loaded"
        );
        assert_eq!(
            data.loads("keebDev02"),
            0,
            "unreferenced models are never loaded"
        );
        assert_eq!(data.loads("broken"), 0);
    }
    let scope = ev.scope(&data, vars());
    scope
        .eval_expr("model.fleet.resource.vm.web1.version")
        .unwrap();
    assert_eq!(data.loads("fleet"), 2, "a new scope sees fresh data");
    // A short-circuited branch does not load its model.
    scope
        .eval_expr("false && model.keebDev02.resource.node.version == 1")
        .unwrap();
    assert_eq!(data.loads("keebDev02"), 0);
}

#[test]
fn compiled_expressions_are_cached() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    for _ in 0..100 {
        resolve(
            &scope,
            "${{ model.fleet.resource.vm[inputs.vmName].attributes.ip }}",
        )
        .unwrap();
    }
    assert_eq!(ev.compile_count(), 1);
    let other = ev.scope(&data, vars());
    resolve(
        &other,
        "  ${{   model.fleet.resource.vm[inputs.vmName].attributes.ip  }}",
    )
    .unwrap();
    other
        .eval_expr("model.fleet.resource.vm[inputs.vmName].attributes.ip")
        .unwrap();
    assert_eq!(ev.compile_count(), 1, "trimmed text is the cache key");
    assert!(other.eval_expr("1 +").is_err());
    assert!(other.eval_expr("1 +").is_err());
    assert_eq!(ev.compile_count(), 2, "syntax errors are cached too");
}

#[test]
fn referenced_models_finds_literal_names() {
    assert_eq!(
        referenced_models(
            "model.a.resource.x == model['b'].resource.y || data.latest('c', 'n') != null || model.a.z"
        ),
        vec!["a".to_string(), "b".to_string(), "c".to_string()]
    );
    assert_eq!(
        referenced_models("x=${{ model.fleet.resource }} y=${{ [1].map(v, model.keebDev02) }}"),
        vec!["fleet".to_string(), "keebDev02".to_string()]
    );
    assert!(referenced_models("inputs.model.x").is_empty());
    assert!(referenced_models("model.").is_empty());
}

#[test]
fn type_errors_are_reported_not_panicked() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let err = scope.eval_expr("'a' + 1").unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::Type(_)), "{err}");
    let err = scope.eval_expr("model").unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::Type(_)), "{err}");
    let err = scope.eval_expr("1 / 0").unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::Eval(_)), "{err}");
    let err = scope.eval_expr("0.0 / 0.0").unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::Type(_)), "{err}");
    let err = scope.eval_expr("[1][5]").unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::Eval(_)), "{err}");
    assert!(
        scope
            .eval_expr("model.fleet.resource.vm.web1.attributes.ip.x")
            .is_err()
    );
    assert!(
        scope
            .eval_expr("((((((((((((((((((((1))))))))))))))))))))")
            .is_ok()
    );
    assert!(scope.eval_expr(&"[".repeat(500)).is_err());
}

#[test]
fn evaluator_and_scope_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Evaluator>();
    assert_send_sync::<Scope<'_>>();

    let ev = Arc::new(Evaluator::new());
    let data = fake();
    let scope = ev.scope(&data, vars());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(
                        scope
                            .eval_expr("model.fleet.resource.vm[inputs.vmName].attributes.ip")
                            .unwrap(),
                        json!("10.0.0.2")
                    );
                }
            });
        }
    });
    assert_eq!(data.loads("fleet"), 1);
}

/// B5: `cargo test --release -- --ignored --nocapture bench_` prints the timing.
#[test]
#[ignore]
fn bench_ten_thousand_resolutions() {
    let ev = Evaluator::new();
    let data = fake();
    let template = json!("${{ model.fleet.resource.vm[inputs.vmName].attributes.ip }}");
    let scope = ev.scope(&data, vars());
    scope.resolve_value(&template, "f").unwrap();

    let start = std::time::Instant::now();
    for _ in 0..10_000 {
        let value = scope.resolve_value(&template, "f").unwrap();
        std::hint::black_box(value);
    }
    let one_scope = start.elapsed();

    let start = std::time::Instant::now();
    for _ in 0..100 {
        let scope = ev.scope(&data, vars());
        for _ in 0..100 {
            let value = scope.resolve_value(&template, "f").unwrap();
            std::hint::black_box(value);
        }
    }
    let hundred_scopes = start.elapsed();

    let start = std::time::Instant::now();
    for _ in 0..10_000 {
        let value = scope.eval_expr("inputs.count + 1").unwrap();
        std::hint::black_box(value);
    }
    let trivial = start.elapsed();

    eprintln!(
        "B5: 10,000 resolutions: {one_scope:?} in one scope, {hundred_scopes:?} over 100 scopes; 10,000 `inputs.count + 1`: {trivial:?}"
    );
}

/// `[1, 2, …, n]`.
fn numbers(n: usize) -> String {
    let items: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(", "))
}

#[test]
fn operator_chains_evaluate_up_to_the_depth_bound_and_are_refused_past_it() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    // 40 additions once crashed a run's worker thread; the bound admits 64 levels.
    for n in [41, 60, MAX_DEPTH] {
        let chain = vec!["1"; n].join(" + ");
        assert!(
            ev.check_syntax(&format!("${{{{ {chain} }}}}")).is_ok(),
            "{n}"
        );
        assert_eq!(scope.eval_expr(&chain).unwrap(), json!(n), "{n}");
        // A dotted name is one more level than a literal.
        let strings = vec!["inputs.vmName"; n - 1].join(" + ");
        assert_eq!(
            scope.eval_expr(&strings).unwrap(),
            json!("web2".repeat(n - 1)),
            "{n}"
        );
    }
    let chain = vec!["1"; MAX_DEPTH + 1].join(" + ");
    let err = ev.check_syntax(&format!("${{{{ {chain} }}}}")).unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::TooComplex(_)), "{err}");
    assert!(err.to_string().contains("nests 65 levels deep"), "{err}");
    let err = scope.eval_expr(&chain).unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::TooComplex(_)), "{err}");
}

#[test]
fn deep_and_long_expressions_are_refused_without_overflowing_any_stack() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let cases = [
        vec!["1"; 2000].join("+"),
        format!("inputs{}", ".a".repeat(2000)),
        (0..300)
            .map(|i| format!("false ? {i} : "))
            .collect::<String>()
            + "1",
        format!("{}1{}", "(".repeat(2000), ")".repeat(2000)),
        format!("{}1{}", "[".repeat(2000), "]".repeat(2000)),
        format!("'x'{}", ".trim()".repeat(600)),
        vec!["1"; 20_000].join("+"),
    ];
    on_small_stack(|| {
        for expr in &cases {
            assert!(ev.check_syntax(expr).is_err(), "{}", &expr[..40]);
            assert!(scope.eval_expr(expr).is_err(), "{}", &expr[..40]);
        }
        let err = scope.eval_expr(&cases[6]).unwrap_err();
        assert!(err.to_string().contains("bytes long"), "{err}");
    });
}

/// Runs `f` on a thread with the smallest stack orch evaluates on, a runtime worker's 2 MiB.
fn on_small_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn_scoped(s, f)
            .expect("spawn")
            .join()
            .expect("no panic");
    });
}

#[test]
fn the_deepest_admitted_expressions_evaluate_on_a_small_stack() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let deepest = [
        vec!["inputs.count"; MAX_DEPTH - 1].join(" + "),
        format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        ),
        format!("{}true", "!".repeat(MAX_DEPTH - 1)),
        (0..MAX_DEPTH / 2)
            .map(|i| format!("false ? {i} : "))
            .collect::<String>()
            + "'end'",
        format!("'x'{}", ".trim()".repeat(MAX_DEPTH - 1)),
    ];
    on_small_stack(|| {
        for expr in &deepest {
            assert!(scope.eval_expr(expr).is_ok(), "{expr}");
        }
    });
}

#[test]
fn a_nested_comprehension_fails_fast_with_a_budget_error() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let hundred = numbers(100);
    let expr = format!("{hundred}.map(a, {hundred}.map(b, {hundred}.map(c, a + b + c)))");
    assert!(ev.check_syntax(&expr).is_ok(), "within the static bounds");
    let err = resolve(&scope, &format!("${{{{ {expr} }}}}")).unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::Budget(_)), "{err}");
    assert!(err.to_string().contains("steps"), "{err}");
    assert_eq!(err.field, "f");
    assert_eq!(err.expr, expr, "names the expression");

    let expr =
        format!("{hundred}.exists(a, {hundred}.exists(b, {hundred}.exists(c, a + b + c < 0)))");
    let err = scope.eval_expr(&expr).unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::Budget(_)), "{err}");

    let four = "[1].map(a, [1].map(b, [1].map(c, [1].map(d, a))))";
    let err = ev.check_syntax(four).unwrap_err();
    assert!(matches!(err.kind, ExprErrorKind::TooComplex(_)), "{err}");

    // Two levels over a hundred items each stay well within the budget.
    let two = format!("{hundred}.map(a, {hundred}.filter(b, b == a)).size()");
    assert_eq!(scope.eval_expr(&two).unwrap(), json!(100));
}

#[test]
fn strings_that_keep_growing_fail_with_a_budget_error_before_they_are_built() {
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    // (The corpus has the doubling `.replace('x', 'xx')` chain, slow in a debug build.)
    for expr in [
        format!("'x'{}", ".replace('x', 'xxxxxxxxxx')".repeat(12)),
        format!(
            "'{}'.replace('', '{}').replace('', '{}')",
            "y".repeat(1000),
            "z".repeat(1000),
            "z".repeat(1000)
        ),
        format!(
            "lists.range(100000).map(i, '').join('{}')",
            "s".repeat(1000)
        ),
        "lists.range(100000).distinct().size()".to_string(),
        // Each item is 2 MB: the list outgrows the budget after 32 of them.
        format!(
            "lists.range(60).map(i, 'x'.replace('x', '{}').replace('y', '{}'))",
            "y".repeat(2000),
            "z".repeat(1000)
        ),
    ] {
        let err = scope.eval_expr(&expr).unwrap_err();
        assert!(
            matches!(err.kind, ExprErrorKind::Budget(_)),
            "{}: {err}",
            &expr[..40.min(expr.len())]
        );
    }
    // Ordinary use of the same functions is unaffected.
    assert_eq!(
        scope.eval_expr("'a-b-c'.replace('-', '+')").unwrap(),
        json!("a+b+c")
    );
    assert_eq!(
        scope.eval_expr("'aaa'.replace('a', 'b', 2)").unwrap(),
        json!("bba")
    );
    assert_eq!(
        scope
            .eval_expr("['a', 'b'].join(', ') + [].join()")
            .unwrap(),
        json!("a, b")
    );
    assert_eq!(
        scope.eval_expr("[1, 1, 2].distinct()").unwrap(),
        json!([1, 2])
    );
    assert_eq!(
        scope.eval_expr("size(lists.range(1000))").unwrap(),
        json!(1000)
    );
    assert!(scope.eval_expr("'a'.replace(1, 'b')").is_err());
    assert!(scope.eval_expr("[1].join()").is_err());
}

#[test]
fn data_nested_too_deeply_is_refused_not_recursed_into() {
    let mut deep = json!(1);
    for _ in 0..convert::MAX_VALUE_DEPTH + 10 {
        deep = json!([deep]);
    }
    let (ev, mut data) = (Evaluator::new(), fake());
    data.models.insert(
        "deep".to_string(),
        Ok(vec![resource("x", "x", 1, deep.clone())]),
    );
    let scope = ev.scope(&data, vars());
    let err = scope.eval_expr("model.deep.resource.x.x").unwrap_err();
    assert!(err.to_string().contains("nests more than"), "{err}");
    let mut deep_vars = vars();
    deep_vars.inputs.insert("deep".to_string(), deep);
    let scope = ev.scope(&data, deep_vars);
    let err = scope.eval_expr("inputs.vmName").unwrap_err();
    assert!(err.to_string().contains("nests more than"), "{err}");

    let mut deep_args = json!("${{ 1 }}");
    for _ in 0..convert::MAX_VALUE_DEPTH + 10 {
        deep_args = json!({ "a": deep_args });
    }
    let scope = ev.scope(&data, vars());
    let err = scope
        .resolve_value(&deep_args, "globalArguments")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `globalArguments`: too complex: the data nests more than 256 levels deep"
    );
}

#[test]
fn expressions_parsed_and_evaluated_inline_fit_in_a_quarter_of_a_worker_stack() {
    // The worst cases for the caller's stack: up to 256 bytes and 16 levels of nesting are
    // parsed on it, up to 8 levels evaluated on it; deeper ones move to a stack of their own.
    // A runtime worker has 2 MiB; these must fit in 512 KiB.
    let (ev, data) = (Evaluator::new(), fake());
    let scope = ev.scope(&data, vars());
    let parsed_inline = [
        format!("{}1{}", "(".repeat(94), ")".repeat(94)),
        format!("{}1{}", "[".repeat(94), "]".repeat(94)),
        vec!["1"; 128].join("+"),
        format!("x{}", ".a".repeat(127)),
        format!("{}1", "-".repeat(255)),
        (0..30).map(|i| format!("f?{i}:")).collect::<String>() + "1",
        format!("{}1{}", "(".repeat(16), ")".repeat(16)) + &"+1".repeat(100),
        (0..16).map(|i| format!("f?{i}:")).collect::<String>() + &"+1".repeat(80),
    ];
    let evaluated_inline = [
        "-(-(-(-(-(-(-(inputs.count)))))))",
        "!(!(!(!(!(!(inputs.count == 3))))))",
        "model.fleet.resource.vm[inputs.vmName].attributes.tags.map(t, t + 'x')",
    ];
    for expr in evaluated_inline {
        let depth = compile_program(&ENV, expr).expect("compiles").depth;
        assert!(depth <= INLINE_EVAL_DEPTH, "{expr}: {depth}");
    }
    assert_eq!(
        compile_program(&ENV, evaluated_inline[0])
            .expect("compiles")
            .depth,
        INLINE_EVAL_DEPTH
    );
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn_scoped(s, || {
                for expr in &parsed_inline {
                    assert!(expr.len() <= 256, "{expr}");
                    let _ = ev.check_syntax(expr);
                }
                for expr in &evaluated_inline {
                    assert!(scope.eval_expr(expr).is_ok(), "{expr}");
                }
            })
            .expect("spawn")
            .join()
            .expect("no panic");
    });
}

fn shared_base() -> SharedInputs {
    SharedInputs::new(
        json!({"a": 1, "b": 2, "list": [1, 2, 3]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

#[test]
fn shared_inputs_are_converted_once_for_all_scopes_that_share_them() {
    let ev = Evaluator::new();
    let data = fake();
    let base = shared_base();
    let plain = Vars {
        inputs: Map::new(),
        ..vars()
    };
    let first = ev.scope_over(&data, &base, plain.clone());
    let second = ev.scope_over(&data, &base, plain);
    assert_eq!(first.eval_expr("size(inputs.list)").unwrap(), json!(3));
    assert_eq!(second.eval_expr("inputs.a + inputs.b").unwrap(), json!(3));
    assert!(std::ptr::eq(
        first.core.inputs.get(),
        second.core.inputs.get()
    ));
}

#[test]
fn a_calls_own_inputs_override_the_shared_inputs_of_the_same_name() {
    let ev = Evaluator::new();
    let data = fake();
    let base = shared_base();
    let over = Vars {
        inputs: json!({"b": 40, "c": "x"}).as_object().cloned().unwrap(),
        ..vars()
    };
    let scope = ev.scope_over(&data, &base, over);
    assert_eq!(scope.eval_expr("inputs.a + inputs.b").unwrap(), json!(41));
    assert_eq!(scope.eval_expr("size(inputs)").unwrap(), json!(4));
    assert_eq!(scope.eval_expr("inputs.c").unwrap(), json!("x"));
    assert!(!std::ptr::eq(scope.core.inputs.get(), base.cel()));
}

#[test]
fn shared_inputs_nested_too_deep_fail_every_evaluation_as_own_inputs_do() {
    let mut deep = json!(1);
    for _ in 0..(super::convert::MAX_VALUE_DEPTH + 2) {
        deep = json!([deep]);
    }
    let base = SharedInputs::new(Map::from_iter([("deep".to_string(), deep.clone())]));
    let ev = Evaluator::new();
    let data = fake();
    let shared = ev
        .scope_over(
            &data,
            &base,
            Vars {
                inputs: Map::new(),
                ..vars()
            },
        )
        .eval_expr("1 + 1")
        .unwrap_err();
    let own = ev
        .scope(
            &data,
            Vars {
                inputs: Map::from_iter([("deep".to_string(), deep)]),
                ..vars()
            },
        )
        .eval_expr("1 + 1")
        .unwrap_err();
    assert_eq!(shared.to_string(), own.to_string());
}

#[test]
fn bindings_shadow_variables_and_leave_functions_working() {
    let data = fake();
    let ev = Evaluator::new();
    let bindings = json!({"model": "fleet", "attributes": {"status": "running", "ip": "10.0.0.9"}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let scope = ev.scope_with_bindings(&data, vars(), &bindings);
    assert_eq!(
        scope
            .eval_expr(r#"model == "fleet" && attributes.status == "running""#)
            .unwrap(),
        json!(true)
    );
    assert_eq!(scope.eval_expr("attributes.ip").unwrap(), json!("10.0.0.9"));
    assert_eq!(
        scope
            .eval_expr(r#"data.latest("fleet", "web2").attributes.ip"#)
            .unwrap(),
        json!("10.0.0.2"),
        "functions still reach the data behind a shadowed `model`"
    );
    assert_eq!(
        scope
            .eval_expr(r#"size(data.findByTag("env", "lab"))"#)
            .unwrap(),
        json!(0),
        "a data source without tags finds nothing"
    );
}
