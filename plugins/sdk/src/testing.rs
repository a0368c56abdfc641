//! A fake host for native unit tests: in-memory resources, scripted HTTP and SSH answers and
//! captured logs. [`FakeHost::call`] runs a plugin method exactly as the host would (globals
//! and arguments validated by the SDK, the method's result as JSON), but in-process.
//!
//! ```
//! use orch_plugin_sdk::testing::FakeHost;
//! use orch_plugin_sdk::{Ctx, JsonSchema, MethodKind, ModelType, NoArgs, Plugin, Result, json};
//! use orch_plugin_sdk::serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(crate = "orch_plugin_sdk::serde")]
//! #[schemars(crate = "orch_plugin_sdk::schemars")]
//! struct Globals { url: String }
//!
//! fn status(ctx: &Ctx<Globals>, _: NoArgs) -> Result<u64> {
//!     let up: orch_plugin_sdk::Value = ctx.http().get_json(&ctx.globals.url)?;
//!     ctx.write_resource("status", "status", &up)?;
//!     Ok(up["count"].as_u64().unwrap_or(0))
//! }
//!
//! struct Demo;
//! impl Plugin for Demo {
//!     fn types() -> Vec<ModelType> {
//!         vec![ModelType::new::<Globals>("demo/thing", "2026.1.1.1", "A thing")
//!             .method("status", MethodKind::Read, "Status", status)]
//!     }
//! }
//!
//! let host = FakeHost::new().with_http("GET", "http://x/up", 200, json!({"count": 3}));
//! let out = host.call::<Demo>("demo/thing", "status", json!({"url": "http://x/up"}), json!({}));
//! assert_eq!(out.unwrap(), json!(3));
//! assert_eq!(host.latest("status", "status"), Some(json!({"count": 3})));
//! ```

use crate::bindings::orch::plugin::{http, log::Level, ssh, types as wit};
use crate::{Error, PlannedChange, Plugin, Result, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// Runs `f` against the fake host of the current [`FakeHost::call`].
pub(crate) fn with_fake<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let state = CURRENT.with(|c| c.borrow().clone()).unwrap_or_else(|| {
        panic!(
            "a plugin method called the orch host outside a host: in native tests, run it through orch_plugin_sdk::testing::FakeHost::call"
        )
    });
    let mut state = state.borrow_mut();
    f(&mut state)
}

/// A request the plugin sent.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Headers, the client's defaults included.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
}

impl RecordedRequest {
    /// The body parsed as JSON (`Value::Null` when there is none or it is not JSON).
    pub fn json(&self) -> Value {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null)
    }
}

type Answers<T> = VecDeque<Result<T>>;

/// Everything the fake host holds.
#[derive(Default)]
pub(crate) struct State {
    /// Versions of each resource, oldest first; `None` is a tombstone (retired).
    resources: BTreeMap<(String, String), Vec<Option<String>>>,
    http: Vec<((String, String), Answers<http::Response>)>,
    requests: Vec<RecordedRequest>,
    batches: Vec<usize>,
    ssh: Vec<(String, Answers<ssh::ExecResult>)>,
    commands: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    logs: Vec<(Level, String)>,
}

/// Takes the next answer; the last one is repeated.
fn next<T: Clone>(answers: &mut Answers<T>) -> Result<T> {
    if answers.len() > 1 {
        answers.pop_front().expect("non-empty")
    } else {
        answers.front().cloned().expect("non-empty")
    }
}

impl State {
    pub(crate) fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }
    pub(crate) fn write_resource(
        &mut self,
        spec: &str,
        name: &str,
        attributes: &str,
    ) -> Result<u64> {
        let versions = self
            .resources
            .entry((spec.to_string(), name.to_string()))
            .or_default();
        versions.push(Some(attributes.to_string()));
        Ok(versions.len() as u64)
    }
    pub(crate) fn read_resource(&mut self, spec: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .resources
            .get(&(spec.to_string(), name.to_string()))
            .and_then(|v| v.last().cloned().flatten()))
    }
    pub(crate) fn list_resources(&mut self, spec: &str) -> Result<Vec<String>> {
        Ok(self
            .resources
            .iter()
            .filter(|((s, _), versions)| s == spec && matches!(versions.last(), Some(Some(_))))
            .map(|((_, n), _)| n.clone())
            .collect())
    }
    pub(crate) fn retire_resource(&mut self, spec: &str, name: &str) -> Result<u64> {
        match self
            .resources
            .get_mut(&(spec.to_string(), name.to_string()))
        {
            Some(versions) if matches!(versions.last(), Some(Some(_))) => {
                versions.push(None);
                Ok(versions.len() as u64)
            }
            _ => Err(Error::NotFound(format!(
                "FakeHost: no live resource {spec}/{name} to retire"
            ))),
        }
    }
    pub(crate) fn http_send(&mut self, request: &http::Request) -> Result<http::Response> {
        self.requests.push(RecordedRequest {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        });
        let key = (request.method.to_ascii_uppercase(), request.url.clone());
        match self.http.iter_mut().find(|(k, _)| *k == key) {
            Some((_, answers)) => next(answers),
            None => Err(Error::Denied(format!(
                "FakeHost: no scripted answer for {} {}; add FakeHost::with_http",
                key.0, key.1
            ))),
        }
    }
    pub(crate) fn http_send_batch(
        &mut self,
        requests: &[http::Request],
    ) -> Vec<Result<http::Response>> {
        self.batches.push(requests.len());
        requests.iter().map(|r| self.http_send(r)).collect()
    }
    pub(crate) fn ssh_open(&mut self, target: &ssh::Target) -> Result<String> {
        Ok(format!("{}@{}:{}", target.user, target.host, target.port))
    }
    pub(crate) fn ssh_exec(
        &mut self,
        _session: &str,
        command: &str,
        _stdin: Option<&[u8]>,
    ) -> Result<ssh::ExecResult> {
        self.commands.push(command.to_string());
        match self.ssh.iter_mut().find(|(c, _)| c == command) {
            Some((_, answers)) => next(answers),
            None => Err(Error::Failed(format!(
                "FakeHost: no scripted answer for SSH command `{command}`; add FakeHost::with_ssh"
            ))),
        }
    }
    pub(crate) fn ssh_upload(&mut self, _session: &str, path: &str, contents: &[u8]) -> Result<()> {
        self.files.insert(path.to_string(), contents.to_vec());
        Ok(())
    }
    pub(crate) fn ssh_download(&mut self, _session: &str, path: &str) -> Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| {
            Error::NotFound(format!("FakeHost: no file {path}; add FakeHost::with_file"))
        })
    }
}

/// A fake orch host: script it, call a method, then inspect what the method did.
#[derive(Clone, Default)]
pub struct FakeHost {
    state: Rc<RefCell<State>>,
}

impl FakeHost {
    /// An empty host: no resources, no scripted answers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seeds a resource version, as an earlier run would have written it.
    pub fn with_resource(self, spec: &str, name: &str, attributes: Value) -> Self {
        let _ = self
            .state
            .borrow_mut()
            .write_resource(spec, name, &attributes.to_string());
        self
    }

    /// Answers `method url` (exact URL) with `status` and a JSON body. Several answers for the
    /// same request are given in order; the last one repeats.
    pub fn with_http(self, method: &str, url: &str, status: u16, body: Value) -> Self {
        let response = http::Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        };
        self.push_http(method, url, Ok(response))
    }

    /// Answers `method url` with an error, as the host does for a denied or failed request.
    pub fn with_http_error(self, method: &str, url: &str, error: Error) -> Self {
        self.push_http(method, url, Err(error))
    }

    fn push_http(self, method: &str, url: &str, answer: Result<http::Response>) -> Self {
        let key = (method.to_ascii_uppercase(), url.to_string());
        {
            let mut state = self.state.borrow_mut();
            match state.http.iter_mut().find(|(k, _)| *k == key) {
                Some((_, answers)) => answers.push_back(answer),
                None => state.http.push((key, VecDeque::from([answer]))),
            }
        }
        self
    }

    /// Answers the SSH command `command` (exact text) with an exit code and stdout.
    pub fn with_ssh(self, command: &str, exit_code: i32, stdout: &str) -> Self {
        let result = ssh::ExecResult {
            exit_code,
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
        };
        {
            let mut state = self.state.borrow_mut();
            match state.ssh.iter_mut().find(|(c, _)| c == command) {
                Some((_, answers)) => answers.push_back(Ok(result)),
                None => state
                    .ssh
                    .push((command.to_string(), VecDeque::from([Ok(result)]))),
            }
        }
        self
    }

    /// A remote file that SSH `download` returns.
    pub fn with_file(self, path: &str, contents: &[u8]) -> Self {
        self.state
            .borrow_mut()
            .files
            .insert(path.to_string(), contents.to_vec());
        self
    }

    /// Runs `method` of model type `type_name` of plugin `P` with these global arguments and
    /// arguments, as model `test`; returns the method's result as JSON.
    pub fn call<P: Plugin>(
        &self,
        type_name: &str,
        method: &str,
        globals: Value,
        arguments: Value,
    ) -> Result<Value> {
        self.run::<P>(type_name, method, globals, arguments, false)
    }

    /// Like [`FakeHost::call`], as a dry run.
    pub fn dry_run<P: Plugin>(
        &self,
        type_name: &str,
        method: &str,
        globals: Value,
        arguments: Value,
    ) -> Result<Value> {
        self.run::<P>(type_name, method, globals, arguments, true)
    }

    fn run<P: Plugin>(
        &self,
        type_name: &str,
        method: &str,
        globals: Value,
        arguments: Value,
        dry_run: bool,
    ) -> Result<Value> {
        let _current = Current::enter(self);
        let call = test_call(type_name, method, globals, arguments, dry_run);
        let out = crate::__execute::<P>(call)?;
        serde_json::from_str(&out)
            .map_err(|e| Error::Failed(format!("the method's result is not JSON: {e}")))
    }

    /// Runs the `plan` export for `method` (a dry run, as the host does for a converge method);
    /// empty for a method without a plan.
    pub fn plan<P: Plugin>(
        &self,
        type_name: &str,
        method: &str,
        globals: Value,
        arguments: Value,
    ) -> Result<Vec<PlannedChange>> {
        let _current = Current::enter(self);
        let call = test_call(type_name, method, globals, arguments, true);
        let types = P::types();
        let model_type = types
            .iter()
            .find(|t| t.name() == type_name)
            .ok_or_else(|| {
                Error::NotFound(format!("this plugin has no model type `{type_name}`"))
            })?;
        model_type.plan(&call)
    }

    /// The latest version of a resource; `None` if none was written or seeded, or if it was
    /// retired since.
    pub fn latest(&self, spec: &str, name: &str) -> Option<Value> {
        let state = self.state.borrow();
        let latest = state
            .resources
            .get(&(spec.to_string(), name.to_string()))?
            .last()?
            .as_deref()?;
        Some(serde_json::from_str(latest).unwrap_or(Value::Null))
    }

    /// Every version of a resource, oldest first; a retirement (tombstone) shows as `null`.
    pub fn versions(&self, spec: &str, name: &str) -> Vec<Value> {
        self.state
            .borrow()
            .resources
            .get(&(spec.to_string(), name.to_string()))
            .map(|v| {
                v.iter()
                    .map(|s| {
                        s.as_deref()
                            .and_then(|s| serde_json::from_str(s).ok())
                            .unwrap_or(Value::Null)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of the live resources of kind `spec` (retired ones are not listed).
    pub fn list(&self, spec: &str) -> Vec<String> {
        self.state
            .borrow_mut()
            .list_resources(spec)
            .unwrap_or_default()
    }

    /// The HTTP requests sent so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.borrow().requests.clone()
    }

    /// The sizes of the `send_batch` calls so far, in order (their requests are in
    /// [`FakeHost::requests`] too).
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.state.borrow().batches.clone()
    }

    /// The SSH commands run so far, in order.
    pub fn ssh_commands(&self) -> Vec<String> {
        self.state.borrow().commands.clone()
    }

    /// A file uploaded over SSH (or seeded with [`FakeHost::with_file`]).
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.state.borrow().files.get(path).cloned()
    }

    /// Captured log lines as `level: message`.
    pub fn logs(&self) -> Vec<String> {
        self.state
            .borrow()
            .logs
            .iter()
            .map(|(level, m)| format!("{}: {m}", level_name(*level)))
            .collect()
    }
}

/// Makes a [`FakeHost`] the current host of this thread until dropped.
struct Current(Option<Rc<RefCell<State>>>);

impl Current {
    fn enter(host: &FakeHost) -> Self {
        Current(CURRENT.with(|c| c.borrow_mut().replace(host.state.clone())))
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

fn test_call(
    type_name: &str,
    method: &str,
    globals: Value,
    arguments: Value,
    dry_run: bool,
) -> wit::Call {
    wit::Call {
        type_name: type_name.to_string(),
        method: method.to_string(),
        model_name: "test".to_string(),
        global_arguments: globals.to_string(),
        arguments: arguments.to_string(),
        dry_run,
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::{Auth, Session, Target};
    use crate::{Ctx, MethodKind, ModelType, NoArgs, json};

    #[derive(serde::Deserialize, crate::JsonSchema)]
    struct Globals {
        host: String,
    }

    fn uptime(ctx: &Ctx<Globals>, _: NoArgs) -> Result<String> {
        let session = Session::open(&Target {
            host: ctx.globals.host.clone(),
            port: 22,
            user: "root".into(),
            auth: Auth::Password("pw".into()),
            trust_on_first_use: false,
            connect_timeout_ms: None,
        })?;
        session.upload("/tmp/marker", b"x", 0o644)?;
        let out = session.exec_ok("uptime")?;
        ctx.warn("checked");
        Ok(out.trim().to_string())
    }

    fn fetch(ctx: &Ctx<Globals>, _: NoArgs) -> Result<crate::Value> {
        ctx.http()
            .get_json(&format!("http://{}/n", ctx.globals.host))
    }

    struct P;
    impl Plugin for P {
        fn types() -> Vec<ModelType> {
            vec![
                ModelType::new::<Globals>("t/x", "1", "x")
                    .method("uptime", MethodKind::Read, "u", uptime)
                    .method("fetch", MethodKind::Read, "f", fetch),
            ]
        }
    }

    #[test]
    fn scripted_ssh_answers_reach_the_method_and_commands_and_uploads_are_recorded() {
        let host = FakeHost::new().with_ssh("uptime", 0, " up 3 days \n");
        let out = host.call::<P>("t/x", "uptime", json!({"host": "h"}), json!({}));
        assert_eq!(out.unwrap(), json!("up 3 days"));
        assert_eq!(host.ssh_commands(), vec!["uptime"]);
        assert_eq!(host.file("/tmp/marker").as_deref(), Some(&b"x"[..]));
        assert_eq!(host.logs(), vec!["warn: checked"]);
    }

    #[test]
    fn an_unscripted_ssh_command_fails_and_names_the_command() {
        let host = FakeHost::new();
        let err = host
            .call::<P>("t/x", "uptime", json!({"host": "h"}), json!({}))
            .unwrap_err();
        assert!(format!("{err:?}").contains("`uptime`"), "{err:?}");
    }

    #[test]
    fn http_answers_are_given_in_order_and_the_last_repeats() {
        let host = FakeHost::new()
            .with_http("GET", "http://h/n", 200, json!(1))
            .with_http("GET", "http://h/n", 200, json!(2));
        let call = || host.call::<P>("t/x", "fetch", json!({"host": "h"}), json!({}));
        assert_eq!(call().unwrap(), json!(1));
        assert_eq!(call().unwrap(), json!(2));
        assert_eq!(call().unwrap(), json!(2));
        assert_eq!(host.requests().len(), 3);
    }

    #[test]
    fn an_unscripted_request_is_denied_like_an_ungranted_host() {
        let host = FakeHost::new();
        let err = host
            .call::<P>("t/x", "fetch", json!({"host": "h"}), json!({}))
            .unwrap_err();
        assert!(matches!(err, Error::Denied(_)), "{err:?}");
    }

    #[derive(serde::Deserialize, crate::JsonSchema)]
    #[serde(rename_all = "camelCase")]
    struct NameArgs {
        name: String,
        #[serde(default)]
        #[allow(dead_code)] // checked by the host's confirm rule, not by the method
        expect_id: Option<u64>,
    }

    #[derive(serde::Deserialize, crate::JsonSchema)]
    struct Sizes {
        cores: u64,
    }

    fn forget(ctx: &Ctx<Globals>, args: NameArgs) -> Result<u64> {
        ctx.retire_resource("item", &args.name)
    }

    fn resize(ctx: &Ctx<Globals>, args: Sizes) -> Result<u64> {
        ctx.write_resource("item", &ctx.globals.host, &json!({"cores": args.cores}))
    }

    fn plan_resize(ctx: &Ctx<Globals>, args: Sizes) -> Result<Vec<PlannedChange>> {
        let before: Option<Value> = ctx.read_resource("item", &ctx.globals.host)?;
        let action = if ctx.dry_run {
            crate::PlannedAction::Update
        } else {
            crate::PlannedAction::None
        };
        Ok(vec![
            PlannedChange::new(action, "item", &ctx.globals.host, "resize").field(
                "/cores",
                before.map(|b| b["cores"].clone()),
                Some(json!(args.cores)),
            ),
        ])
    }

    fn batch(ctx: &Ctx<Globals>, _: NoArgs) -> Result<Vec<Value>> {
        let get = |path: &str| crate::HttpRequest {
            method: "GET".into(),
            url: format!("http://{}/{path}", ctx.globals.host),
            headers: Vec::new(),
            body: None,
        };
        let results = ctx
            .http()
            .send_batch(vec![get("a"), get("b"), get("a"), get("c")], 16);
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(response) => response.json().unwrap_or(Value::Null),
                Err(e) => json!(format!("{e:?}")),
            })
            .collect())
    }

    struct V2;
    impl Plugin for V2 {
        fn types() -> Vec<ModelType> {
            vec![
                ModelType::new::<Globals>("t/v2", "1", "x")
                    .resource::<Value>("item", "an item")
                    .volatile(&["seenAt"])
                    .method("forget", MethodKind::Delete, "f", forget)
                    .confirm(crate::ConfirmRule::new("expectId", "item", "name", "id"))
                    .converge_method("resize", "r", resize, plan_resize)
                    .method("batch", MethodKind::Read, "b", batch),
            ]
        }
    }

    fn v2_method(name: &str) -> wit::MethodInfo {
        let mut info = crate::__describe::<V2>().remove(0);
        let at = info.methods.iter().position(|m| m.name == name).unwrap();
        info.methods.remove(at)
    }

    #[test]
    fn a_typed_confirm_rule_is_described_and_makes_the_method_destructive() {
        let forget = v2_method("forget");
        assert!(forget.destructive);
        let rule = forget.confirm.expect("confirm rule");
        assert_eq!(
            (rule.input, rule.spec, rule.name_argument, rule.attribute),
            ("expectId".into(), "item".into(), "name".into(), "id".into())
        );
        assert!(v2_method("batch").confirm.is_none());
        // The host checks the rule; the method itself still runs in the fake host.
        let host = FakeHost::new().with_resource("item", "a", json!({"id": 7}));
        let args = json!({"name": "a", "expectId": 7});
        assert_eq!(
            host.call::<V2>("t/v2", "forget", json!({"host": "h"}), args)
                .unwrap(),
            json!(2)
        );
    }

    #[test]
    fn volatile_attributes_are_described_on_their_resource() {
        let info = crate::__describe::<V2>().remove(0);
        assert_eq!(info.resources[0].volatile, vec!["seenAt".to_string()]);
    }

    #[test]
    fn a_converge_method_plans_without_writing_and_applies_through_call() {
        assert!(matches!(
            v2_method("resize").kind,
            wit::MethodKind::Converge
        ));
        let host = FakeHost::new().with_resource("item", "h", json!({"cores": 1}));
        let plan = host
            .plan::<V2>("t/v2", "resize", json!({"host": "h"}), json!({"cores": 4}))
            .unwrap();
        assert_eq!(
            plan,
            vec![
                PlannedChange::new(crate::PlannedAction::Update, "item", "h", "resize").field(
                    "/cores",
                    Some(json!(1)),
                    Some(json!(4))
                )
            ]
        );
        assert_eq!(host.versions("item", "h").len(), 1, "a plan writes nothing");
        let applied = host.call::<V2>("t/v2", "resize", json!({"host": "h"}), json!({"cores": 4}));
        assert_eq!(applied.unwrap(), json!(2));
        assert_eq!(host.latest("item", "h"), Some(json!({"cores": 4})));
        // A method without a plan plans nothing; the WIT form carries JSON texts.
        let none = host.plan::<V2>("t/v2", "batch", json!({"host": "h"}), json!({}));
        assert_eq!(none.unwrap(), vec![]);
        let wit_plan: wit::PlannedChange = plan[0].clone().into();
        assert_eq!(wit_plan.changes[0].before.as_deref(), Some("1"));
        assert_eq!(wit_plan.changes[0].after.as_deref(), Some("4"));
    }

    #[test]
    fn a_retired_resource_is_no_longer_read_or_listed_and_cannot_be_retired_twice() {
        let host = FakeHost::new()
            .with_resource("item", "a", json!({"id": 1}))
            .with_resource("item", "b", json!({"id": 2}));
        let forget =
            || host.call::<V2>("t/v2", "forget", json!({"host": "h"}), json!({"name": "a"}));
        assert_eq!(forget().unwrap(), json!(2), "the tombstone is version 2");
        assert_eq!(host.latest("item", "a"), None);
        assert_eq!(host.list("item"), vec!["b".to_string()]);
        assert_eq!(
            host.versions("item", "a"),
            vec![json!({"id": 1}), Value::Null]
        );
        assert!(matches!(forget().unwrap_err(), Error::NotFound(_)));
    }

    #[test]
    fn send_batch_answers_each_request_in_order_from_the_scripted_answers() {
        let host = FakeHost::new()
            .with_http("GET", "http://h/a", 200, json!("a1"))
            .with_http("GET", "http://h/a", 200, json!("a2"))
            .with_http("GET", "http://h/b", 200, json!("b"));
        let out = host
            .call::<V2>("t/v2", "batch", json!({"host": "h"}), json!({}))
            .unwrap();
        let out = out.as_array().expect("a list").clone();
        assert_eq!(out[0..3], [json!("a1"), json!("b"), json!("a2")]);
        assert!(out[3].as_str().unwrap().contains("Denied"), "{out:?}");
        assert_eq!(host.batch_sizes(), vec![4]);
        let urls: Vec<_> = host.requests().into_iter().map(|r| r.url).collect();
        assert_eq!(
            urls,
            ["http://h/a", "http://h/b", "http://h/a", "http://h/c"]
        );
    }

    #[test]
    #[should_panic(expected = "FakeHost::call")]
    fn calling_the_host_outside_a_fake_call_says_how_to_test() {
        let _ = crate::host::list_resources("x");
    }
}
