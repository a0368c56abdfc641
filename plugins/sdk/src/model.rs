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
        }
    }
}

type Handler = Box<dyn Fn(&wit::Call) -> Result<String>>;

struct Method {
    name: String,
    description: String,
    kind: MethodKind,
    destructive: bool,
    schema: fn() -> String,
    handler: Handler,
}

struct Resource {
    name: String,
    description: String,
    schema: fn() -> String,
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
        });
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
            schema: schema_of::<A>,
            handler,
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
                    arguments_schema: (m.schema)(),
                })
                .collect(),
        }
    }

    /// Runs the method named in `call`.
    pub fn execute(&self, call: &wit::Call) -> std::result::Result<String, Error> {
        (self.parse_globals)(&call.global_arguments)?;
        let method = self
            .methods
            .iter()
            .find(|m| m.name == call.method)
            .ok_or_else(|| {
                error::not_found(format!(
                    "type `{}` has no method `{}`",
                    self.name, call.method
                ))
            })?;
        (method.handler)(call)
    }
}
