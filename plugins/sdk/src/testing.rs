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
use crate::{Error, Plugin, Result, Value};
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
    resources: BTreeMap<(String, String), Vec<String>>,
    http: Vec<((String, String), Answers<http::Response>)>,
    requests: Vec<RecordedRequest>,
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
        versions.push(attributes.to_string());
        Ok(versions.len() as u64)
    }
    pub(crate) fn read_resource(&mut self, spec: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .resources
            .get(&(spec.to_string(), name.to_string()))
            .and_then(|v| v.last().cloned()))
    }
    pub(crate) fn list_resources(&mut self, spec: &str) -> Result<Vec<String>> {
        Ok(self
            .resources
            .keys()
            .filter(|(s, _)| s == spec)
            .map(|(_, n)| n.clone())
            .collect())
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
        struct Restore(Option<Rc<RefCell<State>>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.state.clone()));
        let _restore = Restore(previous);
        let call = wit::Call {
            type_name: type_name.to_string(),
            method: method.to_string(),
            model_name: "test".to_string(),
            global_arguments: globals.to_string(),
            arguments: arguments.to_string(),
            dry_run,
        };
        let out = crate::__execute::<P>(call)?;
        serde_json::from_str(&out)
            .map_err(|e| Error::Failed(format!("the method's result is not JSON: {e}")))
    }

    /// The latest version of a resource, if any was written or seeded.
    pub fn latest(&self, spec: &str, name: &str) -> Option<Value> {
        self.versions(spec, name).pop()
    }

    /// Every version of a resource, oldest first.
    pub fn versions(&self, spec: &str, name: &str) -> Vec<Value> {
        self.state
            .borrow()
            .resources
            .get(&(spec.to_string(), name.to_string()))
            .map(|v| {
                v.iter()
                    .map(|s| serde_json::from_str(s).unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The HTTP requests sent so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.borrow().requests.clone()
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

    #[test]
    #[should_panic(expected = "FakeHost::call")]
    fn calling_the_host_outside_a_fake_call_says_how_to_test() {
        let _ = crate::host::list_resources("x");
    }
}
