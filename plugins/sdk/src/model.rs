//! Model types, their methods and how a call is dispatched to a plain Rust function.

use crate::bindings::orch::plugin::types as wit;
use crate::{Ctx, Error, Result, error};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// A plugin: the model types it provides.
pub trait Plugin {
    /// Builds the plugin's model types. Called once per host call, so keep it cheap: schemas are
    /// only generated when the host asks for them.
    fn types() -> Vec<ModelType>;
}

/// What a method does to the outside world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// Creates something.
    Create,
    /// Reads one thing.
    Read,
    /// Changes something.
    Update,
    /// Removes something.
    Delete,
    /// Reads many things.
    List,
    /// Anything else (start, stop, reboot…).
    Action,
    /// Brings the outside world to what the definition describes; its dry run is a plan.
    Converge,
}

impl From<MethodKind> for wit::MethodKind {
    fn from(kind: MethodKind) -> Self {
        match kind {
            MethodKind::Create => wit::MethodKind::Create,
            MethodKind::Read => wit::MethodKind::Read,
            MethodKind::Update => wit::MethodKind::Update,
            MethodKind::Delete => wit::MethodKind::Delete,
            MethodKind::List => wit::MethodKind::List,
            MethodKind::Action => wit::MethodKind::Action,
            MethodKind::Converge => wit::MethodKind::Converge,
        }
    }
}

/// How a destructive call is confirmed: the caller passes argument `input`, which must equal
/// attribute `attribute` of the model's stored `spec` resource named by argument `name_argument`
/// (e.g. `expectVmid` against `vm[vmName].vmid`). The host checks it before the method runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmRule {
    /// The argument the caller confirms with (`expectVmid`).
    pub input: String,
    /// The resource spec holding the expected value (`vm`).
    pub spec: String,
    /// The argument naming the resource (`vmName`).
    pub name_argument: String,
    /// The resource attribute `input` must equal (`vmid`).
    pub attribute: String,
}

impl ConfirmRule {
    /// A rule: argument `input` must equal `spec[args[name_argument]].attribute`.
    pub fn new(input: &str, spec: &str, name_argument: &str, attribute: &str) -> Self {
        ConfirmRule {
            input: input.to_string(),
            spec: spec.to_string(),
            name_argument: name_argument.to_string(),
            attribute: attribute.to_string(),
        }
    }
}

impl From<ConfirmRule> for wit::ConfirmRule {
    fn from(rule: ConfirmRule) -> Self {
        wit::ConfirmRule {
            input: rule.input,
            spec: rule.spec,
            name_argument: rule.name_argument,
            attribute: rule.attribute,
        }
    }
}

/// What a planned change does to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlannedAction {
    /// The resource would be created.
    Create,
    /// The resource would be changed.
    Update,
    /// The resource would be removed.
    Delete,
    /// The thing would be started.
    Start,
    /// The thing would be stopped.
    Stop,
    /// Nothing would change (reported so a plan lists everything it looked at).
    None,
}

impl From<PlannedAction> for wit::PlannedAction {
    fn from(action: PlannedAction) -> Self {
        match action {
            PlannedAction::Create => wit::PlannedAction::Create,
            PlannedAction::Update => wit::PlannedAction::Update,
            PlannedAction::Delete => wit::PlannedAction::Delete,
            PlannedAction::Start => wit::PlannedAction::Start,
            PlannedAction::Stop => wit::PlannedAction::Stop,
            PlannedAction::None => wit::PlannedAction::None,
        }
    }
}

/// One attribute a planned change alters; `None` means absent.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// JSON Pointer to the attribute (`/cores`).
    pub path: String,
    /// The value now.
    pub before: Option<serde_json::Value>,
    /// The value after the change.
    pub after: Option<serde_json::Value>,
}

/// One change a converge method would make, as its plan reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedChange {
    /// What would happen.
    pub action: PlannedAction,
    /// The resource spec the change concerns.
    pub spec: String,
    /// The resource name the change concerns.
    pub name: String,
    /// One line for a human (`create vm web-1 with 2 cores`).
    pub summary: String,
    /// Field-level detail, if any.
    pub changes: Vec<FieldChange>,
}

impl PlannedChange {
    /// A change without field-level detail.
    pub fn new(action: PlannedAction, spec: &str, name: &str, summary: impl Into<String>) -> Self {
        PlannedChange {
            action,
            spec: spec.to_string(),
            name: name.to_string(),
            summary: summary.into(),
            changes: Vec::new(),
        }
    }

    /// Adds one field change (`path` is a JSON Pointer such as `/cores`).
    pub fn field(
        mut self,
        path: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Self {
        self.changes.push(FieldChange {
            path: path.to_string(),
            before,
            after,
        });
        self
    }
}

impl From<PlannedChange> for wit::PlannedChange {
    fn from(change: PlannedChange) -> Self {
        wit::PlannedChange {
            action: change.action.into(),
            spec: change.spec,
            name: change.name,
            summary: change.summary,
            changes: change
                .changes
                .into_iter()
                .map(|c| wit::FieldChange {
                    path: c.path,
                    before: c.before.map(|v| v.to_string()),
                    after: c.after.map(|v| v.to_string()),
                })
                .collect(),
        }
    }
}

type Handler = Box<dyn Fn(&wit::Call) -> Result<String>>;
type Planner = Box<dyn Fn(&wit::Call) -> Result<Vec<PlannedChange>>>;

struct Method {
    name: String,
    description: String,
    kind: MethodKind,
    destructive: bool,
    confirm: Option<ConfirmRule>,
    schema: fn() -> String,
    handler: Handler,
    planner: Option<Planner>,
}

struct Resource {
    name: String,
    description: String,
    schema: fn() -> String,
    volatile: Vec<String>,
}

/// A model type (e.g. `proxmox/vm`) and its methods, typed by its global arguments `G`.
pub struct ModelType {
    name: String,
    version: String,
    description: String,
    global_schema: fn() -> String,
    resources: Vec<Resource>,
    methods: Vec<Method>,
    parse_globals: fn(&str) -> Result<()>,
}

fn schema_of<T: JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(T)).unwrap_or_else(|_| "{}".to_string())
}

fn parse<T: DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| error::invalid(format!("{what}: {e}")))
}

fn check_globals<G: DeserializeOwned>(json: &str) -> Result<()> {
    parse::<G>("globalArguments", json).map(|_| ())
}

impl ModelType {
    /// A model type whose definitions carry global arguments of type `G`.
    pub fn new<G: DeserializeOwned + JsonSchema + 'static>(
        name: &str,
        version: &str,
        description: &str,
    ) -> Self {
        ModelType {
            name: name.to_string(),
            version: version.to_string(),
            description: description.to_string(),
            global_schema: schema_of::<G>,
            resources: Vec::new(),
            methods: Vec::new(),
            parse_globals: check_globals::<G>,
        }
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Declares a kind of resource this type writes, with attributes of type `R`.
    pub fn resource<R: JsonSchema>(mut self, name: &str, description: &str) -> Self {
        self.resources.push(Resource {
            name: name.to_string(),
            description: description.to_string(),
            schema: schema_of::<R>,
            volatile: Vec::new(),
        });
        self
    }

    /// Marks attributes of the last declared resource (e.g. `timestamp`) as volatile: a new
    /// version that differs only in them is not a change.
    ///
    /// # Panics
    /// When no resource was declared before (a mistake in the plugin's `types()`).
    pub fn volatile(mut self, attributes: &[&str]) -> Self {
        let resource = self
            .resources
            .last_mut()
            .expect("ModelType::volatile applies to the last `resource`; declare one first");
        resource
            .volatile
            .extend(attributes.iter().map(|a| a.to_string()));
        self
    }

    /// Gives the last added method a typed confirm rule (which makes it destructive).
    ///
    /// # Panics
    /// When no method was added before (a mistake in the plugin's `types()`).
    pub fn confirm(mut self, rule: ConfirmRule) -> Self {
        let method = self
            .methods
            .last_mut()
            .expect("ModelType::confirm applies to the last method; add one first");
        method.destructive = true;
        method.confirm = Some(rule);
        self
    }

    /// Adds a `converge` method: `apply` changes the world, `plan` (run for a dry run) says
    /// what `apply` would change without changing anything.
    pub fn converge_method<G, A, O, F, PF>(
        mut self,
        name: &str,
        description: &str,
        apply: F,
        plan: PF,
    ) -> Self
    where
        G: DeserializeOwned + 'static,
        A: DeserializeOwned + JsonSchema + 'static,
        O: serde::Serialize,
        F: Fn(&Ctx<G>, A) -> Result<O> + 'static,
        PF: Fn(&Ctx<G>, A) -> Result<Vec<PlannedChange>> + 'static,
    {
        self = self.add_method(name, MethodKind::Converge, description, false, apply);
        let planner: Planner = Box::new(move |call: &wit::Call| {
            let globals: G = parse("globalArguments", &call.global_arguments)?;
            let args: A = parse("arguments", &call.arguments)?;
            plan(&Ctx::new(globals, call), args)
        });
        if let Some(method) = self.methods.last_mut() {
            method.planner = Some(planner);
        }
        self
    }

    /// Adds a method implemented by `f`, which gets the typed globals and arguments.
    pub fn method<G, A, O, F>(self, name: &str, kind: MethodKind, description: &str, f: F) -> Self
    where
        G: DeserializeOwned + 'static,
        A: DeserializeOwned + JsonSchema + 'static,
        O: serde::Serialize,
        F: Fn(&Ctx<G>, A) -> Result<O> + 'static,
    {
        self.add_method(name, kind, description, false, f)
    }

    /// Adds a destructive method: the host refuses it unless the caller confirms the target.
    pub fn destructive_method<G, A, O, F>(
        self,
        name: &str,
        kind: MethodKind,
        description: &str,
        f: F,
    ) -> Self
    where
        G: DeserializeOwned + 'static,
        A: DeserializeOwned + JsonSchema + 'static,
        O: serde::Serialize,
        F: Fn(&Ctx<G>, A) -> Result<O> + 'static,
    {
        self.add_method(name, kind, description, true, f)
    }

    fn add_method<G, A, O, F>(
        mut self,
        name: &str,
        kind: MethodKind,
        description: &str,
        destructive: bool,
        f: F,
    ) -> Self
    where
        G: DeserializeOwned + 'static,
        A: DeserializeOwned + JsonSchema + 'static,
        O: serde::Serialize,
        F: Fn(&Ctx<G>, A) -> Result<O> + 'static,
    {
        let handler: Handler = Box::new(move |call: &wit::Call| {
            let globals: G = parse("globalArguments", &call.global_arguments)?;
            let args: A = parse("arguments", &call.arguments)?;
            let ctx = Ctx::new(globals, call);
            let output = f(&ctx, args)?;
            serde_json::to_string(&output)
                .map_err(|e| error::failed(format!("cannot serialize the method's output: {e}")))
        });
        self.methods.push(Method {
            name: name.to_string(),
            description: description.to_string(),
            kind,
            destructive,
            confirm: None,
            schema: schema_of::<A>,
            handler,
            planner: None,
        });
        self
    }

    /// The WIT description of this type (generates the schemas).
    pub fn info(&self) -> wit::TypeInfo {
        wit::TypeInfo {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            global_arguments_schema: (self.global_schema)(),
            resources: self
                .resources
                .iter()
                .map(|r| wit::ResourceSpec {
                    name: r.name.clone(),
                    description: r.description.clone(),
                    schema: (r.schema)(),
                    volatile: r.volatile.clone(),
                })
                .collect(),
            methods: self
                .methods
                .iter()
                .map(|m| wit::MethodInfo {
                    name: m.name.clone(),
                    description: m.description.clone(),
                    kind: m.kind.into(),
                    destructive: m.destructive,
                    confirm: m.confirm.clone().map(Into::into),
                    arguments_schema: (m.schema)(),
                })
                .collect(),
        }
    }

    fn method_named(&self, name: &str) -> Result<&Method> {
        self.methods
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| error::not_found(format!("type `{}` has no method `{name}`", self.name)))
    }

    /// Runs the method named in `call`.
    pub fn execute(&self, call: &wit::Call) -> std::result::Result<String, Error> {
        (self.parse_globals)(&call.global_arguments)?;
        let method = self.method_named(&call.method)?;
        (method.handler)(call)
    }

    /// The plan of the converge method named in `call`; empty for a method without a plan.
    pub fn plan(&self, call: &wit::Call) -> Result<Vec<PlannedChange>> {
        (self.parse_globals)(&call.global_arguments)?;
        let method = self.method_named(&call.method)?;
        match &method.planner {
            Some(planner) => planner(call),
            None => Ok(Vec::new()),
        }
    }
}
