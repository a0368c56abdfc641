//! The import allow-list: a plugin reaches the world only through `orch:plugin/*` and the
//! harmless WASI interfaces a std guest links by default.

use super::RuntimeError;
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Interface prefixes a component may import.
const ALLOWED: &[&str] = &[
    "orch:plugin/",
    "wasi:io/",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-",
    "wasi:clocks/",
    "wasi:random/",
];

/// Whether an import name is on the allow-list.
pub fn is_allowed(name: &str) -> bool {
    ALLOWED.iter().any(|p| name.starts_with(p))
}

/// Rejects a component that imports anything not on the allow-list, naming the import.
pub fn check(
    engine: &Engine,
    component: &Component,
    plugin: &str,
    path: &Path,
) -> Result<(), RuntimeError> {
    for (name, _) in component.component_type().imports(engine) {
        if !is_allowed(name) {
            return Err(RuntimeError::ForbiddenImport {
                plugin: plugin.to_string(),
                path: path.to_path_buf(),
                import: name.to_string(),
            });
        }
    }
    Ok(())
}

/// Every import of a component (for `orch plugin validate`).
pub fn list(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::is_allowed;

    #[test]
    fn filesystem_sockets_and_http_are_not_allowed() {
        assert!(!is_allowed("wasi:filesystem/types@0.2.6"));
        assert!(!is_allowed("wasi:filesystem/preopens@0.2.6"));
        assert!(!is_allowed("wasi:sockets/tcp@0.2.6"));
        assert!(!is_allowed("wasi:http/outgoing-handler@0.2.6"));
    }

    #[test]
    fn orch_and_harmless_wasi_are_allowed() {
        assert!(is_allowed("orch:plugin/http@0.1.0"));
        assert!(is_allowed("wasi:io/streams@0.2.6"));
        assert!(is_allowed("wasi:cli/stderr@0.2.6"));
        assert!(is_allowed("wasi:clocks/monotonic-clock@0.2.6"));
        assert!(is_allowed("wasi:random/random@0.2.6"));
    }
}
