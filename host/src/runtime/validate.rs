//! `orch plugin validate`: everything the host checks at load, as a report for authors' CI.

use super::{
    EffectiveLimits, Limits, LoadedPlugin, PluginManifest, PluginRuntime, TypeDescription, files,
    imports,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use wasmtime::component::Component;

/// One check and its verdict.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Details, or what to fix.
    pub message: String,
}

/// The whole report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    /// True when every check passed.
    pub ok: bool,
    /// What was validated.
    pub path: String,
    /// Plugin id, when a manifest was read.
    pub plugin: Option<String>,
    /// The orch:plugin version the component speaks, read from its own imports and exports.
    pub api_version: Option<String>,
    /// Every import of the component.
    pub imports: Vec<String>,
    /// The limits the plugin asks for (orch.yaml may lower them in a repository).
    pub limits: Option<Limits>,
    /// The types describe() returned.
    pub types: Vec<TypeDescription>,
    /// The checks in order.
    pub checks: Vec<Check>,
    /// The describe() schema lint: advice that does not make the bundle invalid.
    pub lints: Vec<super::lint::Lint>,
}

impl ValidationReport {
    fn check(&mut self, name: &str, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let message = result.unwrap_or_else(|e| e);
        self.ok &= ok;
        self.checks.push(Check {
            name: name.to_string(),
            ok,
            message,
        });
        ok
    }
}

/// Validates a bundle directory (plugin.toml + wasm) or a bare `.wasm` file.
pub async fn validate(runtime: &PluginRuntime, path: &Path) -> ValidationReport {
    let mut report = ValidationReport {
        ok: true,
        path: path.display().to_string(),
        plugin: None,
        api_version: None,
        imports: Vec::new(),
        limits: None,
        types: Vec::new(),
        checks: Vec::new(),
        lints: Vec::new(),
    };
    let bare = !path.is_dir();
    let (mut manifest, wasm_path) = if path.is_dir() {
        match PluginManifest::load(&path.join("plugin.toml")) {
            Ok(m) => {
                report.check(
                    "manifest",
                    Ok(format!("{} {} (orch:plugin {})", m.id, m.version, m.api)),
                );
                report.plugin = Some(m.id.clone());
                report.limits = Some(m.limits.clone());
                report.check(
                    "limits",
                    Ok(super::manifest::LIMIT_FIELDS
                        .iter()
                        .map(|f| format!("{} {}", f.toml, f.get(&m.limits)))
                        .collect::<Vec<_>>()
                        .join(", ")),
                );
                let wasm = path.join(&m.wasm);
                (m, wasm)
            }
            Err(e) => {
                report.check("manifest", Err(e.to_string()));
                return report;
            }
        }
    } else {
        let m = PluginManifest {
            id: path
                .file_stem()
                .map(|s| s.to_string_lossy().replace(['.', ' '], "_"))
                .unwrap_or_default(),
            version: "0.0.0".into(),
            api: "0.1.0".into(),
            description: String::new(),
            wasm: String::new(),
            sha256: String::new(),
            capabilities: Default::default(),
            limits: Default::default(),
        };
        (m, path.to_path_buf())
    };
    let bytes = match files::read_regular(&wasm_path, files::MAX_WASM_BYTES) {
        Ok(b) => b,
        Err(e) => {
            report.check("wasm", Err(format!("{}: {e}", wasm_path.display())));
            return report;
        }
    };
    let sha = hex::encode(Sha256::digest(&bytes));
    if !manifest.sha256.is_empty() {
        let ok = sha.eq_ignore_ascii_case(&manifest.sha256);
        report.check(
            "sha256",
            if ok {
                Ok(sha.clone())
            } else {
                Err(format!(
                    "the wasm's SHA-256 is {sha} but plugin.toml says {}",
                    manifest.sha256
                ))
            },
        );
    }
    let engine = match runtime.engine() {
        Ok(engine) => engine,
        Err(e) => {
            report.check("component", Err(e.to_string()));
            return report;
        }
    };
    let component = match Component::new(engine, &bytes) {
        Ok(c) => {
            report.check("component", Ok(format!("{} bytes compiled", bytes.len())));
            c
        }
        Err(e) => {
            report.check(
                "component",
                Err(format!("not a loadable WebAssembly component: {e:#}")),
            );
            return report;
        }
    };
    report.imports = imports::list(engine, &component);
    let forbidden: Vec<&String> = report
        .imports
        .iter()
        .filter(|i| !imports::is_allowed(i))
        .collect();
    let imports_ok = forbidden.is_empty();
    report.check(
        "imports",
        if imports_ok {
            Ok(format!("{} imports, all allowed", report.imports.len()))
        } else {
            Err(format!(
                "imports outside orch:plugin/* and harmless WASI: {}",
                forbidden
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        },
    );
    if !imports_ok {
        return report;
    }
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .chain(ty.exports(engine).map(|(name, _)| name.to_string()))
        .collect();
    let supported = super::manifest::SUPPORTED_API_VERSIONS;
    let spoken = if bare {
        super::version::detect(names.iter().map(String::as_str)).and_then(|v| {
            if supported.contains(&v.as_str()) {
                Ok(v)
            } else {
                Err(format!(
                    "{}: it speaks orch:plugin@{v}, which this orch does not support (supported: {})",
                    wasm_path.display(),
                    supported.join(", ")
                ))
            }
        })
    } else {
        super::version::check_names(
            names.iter().map(String::as_str),
            &manifest.api,
            supported,
            &path.join("plugin.toml"),
            &wasm_path,
        )
        .map_err(|e| e.to_string())
    };
    match spoken {
        Ok(version) => {
            report.api_version = Some(version.clone());
            report.check(
                "api",
                Ok(format!(
                    "orch:plugin@{version} (read from the component's imports and exports)"
                )),
            );
            if bare {
                manifest.api = version;
            }
        }
        Err(e) => {
            report.check("api", Err(e));
            return report;
        }
    }
    let limits = EffectiveLimits::as_asked(&manifest.limits);
    let wasm_sha = sha.clone();
    let plugin: LoadedPlugin =
        match runtime.load_component(manifest, path, &wasm_path, Some(&bytes), sha, limits) {
            Ok(p) => p,
            Err(e) => {
                report.check("link", Err(e.to_string()));
                return report;
            }
        };
    match runtime.describe(&plugin).await {
        Ok(d) if d.types.is_empty() && d.rejected.is_empty() => {
            report.check("describe", Err("describe() returned no types".into()));
        }
        Ok(d) => {
            let names: Vec<String> = d
                .types
                .iter()
                .map(|t| format!("{} {}", t.name, t.version))
                .collect();
            if d.rejected.is_empty() {
                report.check("describe", Ok(format!("types: {}", names.join(", "))));
            } else {
                let refused: Vec<String> = d
                    .rejected
                    .iter()
                    .map(|(name, problem)| format!("type `{name}`: {problem}"))
                    .collect();
                report.check("describe", Err(refused.join("; ")));
            }
            if !bare {
                report.check("types.json", check_types_file(path, &wasm_sha, &d));
            }
            report.lints = super::lint::lint(&d.types);
            report.types = d.types;
        }
        Err(e) => {
            report.check("describe", Err(e.to_string()));
        }
    }
    report
}

/// The bundle's `types.json` against the plugin's real describe(): absent is fine (a cold
/// repository then compiles the plugin to learn its types); stale, malformed or different is a
/// defect to fix by rebuilding.
fn check_types_file(dir: &Path, sha256: &str, actual: &super::Described) -> Result<String, String> {
    use super::bundle_types::{self, BundleTypes};
    let path = dir.join(bundle_types::TYPES_FILE);
    let rebuild = "rebuild the bundle with `orch plugin build`";
    let infos = match bundle_types::read(dir, sha256) {
        BundleTypes::Missing => {
            return Ok(format!(
                "none: a repository without cached types compiles the plugin to learn them ({rebuild} to add it)"
            ));
        }
        BundleTypes::Unusable(why) => return Err(format!("{}: {why}; {rebuild}", path.display())),
        BundleTypes::Claimed(infos) => infos,
    };
    let claimed = super::check_described("bundle", infos)
        .map_err(|e| format!("{}: {e}; {rebuild}", path.display()))?;
    match bundle_types::differences(&claimed, actual) {
        None => Ok("matches describe()".into()),
        Some(difference) => Err(format!("{}: {difference}; {rebuild}", path.display())),
    }
}
