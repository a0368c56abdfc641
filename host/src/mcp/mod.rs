//! `orch mcp`: the Model Context Protocol over stdin/stdout, for AI agents.
//!
//! The tools are orch's commands (see [`schemas::TOOLS`]); a call answers compact JSON, or a
//! tool error (`isError: true`) carrying orch's own message. With `read_only`, the tools that
//! change infrastructure are neither listed nor run. stdout is the protocol: everything else
//! (warnings, logs) goes to stderr.

pub mod schemas;
pub mod tools;

use crate::cli::context::Ctx;
use crate::run::RunEnv;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use schemas::{Arguments, ToolSpec};
use std::sync::Arc;

/// What the agent is told at `initialize`.
const INSTRUCTIONS: &str = "orch orchestrates infrastructure through models (typed definitions) \
and workflows. Read before you act: list_models, show_model, describe_type, data_get. Prefer a \
workflow or a model method over anything else. Destructive methods need their confirm input \
(e.g. expectVmid): read the value with data_get first and pass it; never guess. run_workflow \
and run_method change infrastructure. `orch init --agent` writes the full guide (AGENTS.md).";

/// The MCP server over one repository, its plugins loaded once.
#[derive(Clone)]
pub struct OrchMcp {
    ctx: Arc<Ctx>,
    env: RunEnv,
    read_only: bool,
}

impl OrchMcp {
    /// A server over `ctx`'s repository, running with `env`; `read_only` hides and refuses the
    /// tools that change infrastructure.
    pub fn new(ctx: Ctx, env: RunEnv, read_only: bool) -> Self {
        OrchMcp {
            ctx: Arc::new(ctx),
            env,
            read_only,
        }
    }

    /// The tools listed in this server's mode, as MCP tools.
    pub fn tools(&self) -> Vec<Tool> {
        schemas::listed(self.read_only).map(tool).collect()
    }

    /// Runs one call: `Ok` is the answer (a failed run's is a tool error too), `Err` the
    /// message of a tool error.
    pub async fn call(
        &self,
        name: &str,
        arguments: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<tools::Answer, String> {
        let Some(spec) = schemas::find(name) else {
            let names: Vec<&str> = schemas::listed(self.read_only).map(|t| t.name).collect();
            return Err(format!(
                "no tool `{name}`; the tools are {}",
                names.join(", ")
            ));
        };
        if self.read_only && spec.mutating {
            return Err(format!(
                "`{name}` changes infrastructure and this server is read-only (`orch mcp --read-only`); \
                 run orch mcp without --read-only to allow it"
            ));
        }
        let args = Arguments::new(spec, arguments)?;
        tools::call(&self.ctx, &self.env, spec, args).await
    }
}

fn tool(spec: &ToolSpec) -> Tool {
    let annotations = ToolAnnotations::new()
        .read_only(!spec.mutating)
        .destructive(spec.mutating);
    Tool::new(spec.name, spec.description, spec.input_schema()).with_annotations(annotations)
}

impl ServerHandler for OrchMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("orch", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let result = match self.call(&request.name, request.arguments).await {
            Ok(tools::Answer {
                value,
                failed: false,
            }) => CallToolResult::success(vec![ContentBlock::text(value.to_string())]),
            Ok(tools::Answer { value, .. }) => {
                CallToolResult::error(vec![ContentBlock::text(value.to_string())])
            }
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        Ok(result.into())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        schemas::listed(self.read_only)
            .find(|t| t.name == name)
            .map(tool)
    }
}

/// Serves MCP on stdin/stdout until the client closes the connection.
pub async fn serve_stdio(server: OrchMcp) -> Result<(), String> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("the MCP client did not initialize: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("the MCP server stopped: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_tool_carries_its_schema_and_whether_it_changes_anything() {
        let run = tool(schemas::find("run_workflow").unwrap());
        assert_eq!(
            run.input_schema["required"],
            serde_json::json!(["workflow"])
        );
        let hints = run.annotations.unwrap();
        assert_eq!(
            (hints.read_only_hint, hints.destructive_hint),
            (Some(false), Some(true))
        );
        let get = tool(schemas::find("data_get").unwrap());
        let hints = get.annotations.unwrap();
        assert_eq!(
            (hints.read_only_hint, hints.destructive_hint),
            (Some(true), Some(false))
        );
    }
}
