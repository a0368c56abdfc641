//! The sandboxed plugin runtime: one wasmtime `Engine`, a precompile cache, an `InstancePre` per
//! plugin and a fresh `Store` with limits for every call.

pub mod bindings;
mod imports;
pub mod manifest;
pub mod registry;
mod types;
pub mod validate;

pub use manifest::{Limits, PluginManifest};
pub use registry::{PluginRegistry, ProvidedType};
pub use types::{MethodInfo, ResourceSpecInfo, TypeDescription};

use crate::capabilities::{DataCapability, HttpCapability, LogCapability, SshCapability};
use bindings::{ModelPlugin, ModelPluginPre};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch ticker advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of a guest's stderr is kept for trap messages.
const STDERR_CAPACITY: usize = 64 * 1024;

/// Why a plugin could not be loaded or a call could not complete. Plugin-level failures
/// (`error.denied`, `error.failed`, …) are not here: they come back as values.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The manifest is unusable.
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    /// The wasm file is missing or does not match the manifest.
    #[error("{path}: {message}")]
    Bundle {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The component imports something outside the allowed interfaces.
    #[error(
        "plugin `{plugin}` ({path}) imports `{import}`, which orch does not provide: plugins reach the world only through orch:plugin/* (and wasi io, cli, clocks, random). Remove the code that needs it (often std::fs, std::net or std::env)"
    )]
    ForbiddenImport {
        /// Plugin id.
        plugin: String,
        /// The wasm path.
        path: PathBuf,
        /// The import's name.
        import: String,
    },
    /// wasmtime refused the component or the engine could not be built.
    #[error("plugin `{plugin}`: {message}")]
    Wasm {
        /// Plugin id (or `engine`).
        plugin: String,
        /// wasmtime's message.
        message: String,
    },
    /// The guest trapped (a bug in the plugin, or a limit).
    #[error("plugin `{plugin}` {version} trapped in {during}: {message}")]
    Trap {
        /// Plugin id.
        plugin: String,
        /// Plugin version.
        version: String,
        /// What was being called.
        during: String,
        /// The trap, in words.
        message: String,
    },
    /// The call ran past `limits.timeout-ms`.
    #[error(
        "plugin `{plugin}` {version} exceeded its time limit of {limit_ms} ms in {during} (limits.timeout-ms in its plugin.toml)"
    )]
    Timeout {
        /// Plugin id.
        plugin: String,
        /// Plugin version.
        version: String,
        /// What was being called.
        during: String,
        /// The limit.
        limit_ms: u64,
    },
    /// The guest tried to grow memory past `limits.memory-mb`.
    #[error(
        "plugin `{plugin}` {version} exceeded its memory limit of {limit_mb} MiB in {during} (limits.memory-mb in its plugin.toml)"
    )]
    Memory {
        /// Plugin id.
        plugin: String,
        /// Plugin version.
        version: String,
        /// What was being called.
        during: String,
        /// The limit.
        limit_mb: u64,
    },
    /// describe() returned something unusable.
    #[error("plugin `{plugin}`: describe() returned {message}")]
    Describe {
        /// Plugin id.
        plugin: String,
        /// What is wrong.
        message: String,
    },
}

/// Per-call host state: WASI (locked down), limits and the capabilities granted for this call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
    log: LogCapability,
    data: DataCapability,
    http: HttpCapability,
    ssh: SshCapability,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What a call is granted; built by the method runner from the manifest, orch.yaml and the call.
pub struct CallCapabilities {
    /// Logging.
    pub log: LogCapability,
    /// The calling model's resources.
    pub data: DataCapability,
    /// Outbound HTTP.
    pub http: HttpCapability,
    /// SSH sessions (from the run's pool).
    pub ssh: SshCapability,
}

/// A plugin ready to instantiate.
pub struct LoadedPlugin {
    /// Its manifest.
    pub manifest: PluginManifest,
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// SHA-256 of its wasm.
    pub sha256: String,
    /// Whether the compiled code came from the cache.
    pub cache_hit: bool,
    /// Time spent compiling or loading the compiled code.
    pub load_time: Duration,
    pre: ModelPluginPre<HostState>,
}

/// The result of `execute`: the plugin's answer plus the writes it buffered.
pub struct CallOutcome {
    /// The method's JSON output, or the plugin's typed error.
    pub result: Result<String, bindings::PluginError>,
    /// Writes to commit if the method succeeded.
    pub writes: Vec<crate::store::PendingWrite>,
}

/// The engine, linker and compile cache, shared by every plugin in the process.
pub struct PluginRuntime {
    pub(crate) engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
}

impl PluginRuntime {
    /// Builds the engine and linker; `cache_dir` holds precompiled plugins (None: no cache).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Arc<Self>, RuntimeError> {
        let wasm_err = |e: wasmtime::Error| RuntimeError::Wasm {
            plugin: "engine".into(),
            message: format!("{e:#}"),
        };
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(wasm_err)?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_err)?;
        bindings::orch::plugin::types::add_to_linker::<HostState, HasSelf<DataCapability>>(
            &mut linker,
            |s| &mut s.data,
        )
        .map_err(wasm_err)?;
        bindings::orch::plugin::log::add_to_linker::<HostState, HasSelf<LogCapability>>(
            &mut linker,
            |s| &mut s.log,
        )
        .map_err(wasm_err)?;
        bindings::orch::plugin::data::add_to_linker::<HostState, HasSelf<DataCapability>>(
            &mut linker,
            |s| &mut s.data,
        )
        .map_err(wasm_err)?;
        bindings::orch::plugin::http::add_to_linker::<HostState, HasSelf<HttpCapability>>(
            &mut linker,
            |s| &mut s.http,
        )
        .map_err(wasm_err)?;
        bindings::orch::plugin::ssh::add_to_linker::<HostState, HasSelf<SshCapability>>(
            &mut linker,
            |s| &mut s.ssh,
        )
        .map_err(wasm_err)?;
        spawn_epoch_ticker(&engine);
        Ok(Arc::new(PluginRuntime {
            engine,
            linker,
            cache_dir,
        }))
    }

    /// Loads a bundle directory holding `plugin.toml` and its wasm.
    pub fn load(&self, dir: &Path) -> Result<LoadedPlugin, RuntimeError> {
        let manifest = PluginManifest::load(&dir.join("plugin.toml"))?;
        let wasm_path = dir.join(&manifest.wasm);
        let bytes = std::fs::read(&wasm_path).map_err(|e| RuntimeError::Bundle {
            path: wasm_path.clone(),
            message: format!("cannot read the plugin's wasm: {e}"),
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if !sha256.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(RuntimeError::Bundle {
                path: wasm_path,
                message: format!(
                    "SHA-256 is {sha256} but plugin.toml says {}; the bundle was changed after it was built (rebuild it with `cargo xtask build`)",
                    manifest.sha256
                ),
            });
        }
        self.load_component(manifest, dir, &wasm_path, &bytes, sha256)
    }

    pub(crate) fn load_component(
        &self,
        manifest: PluginManifest,
        dir: &Path,
        wasm_path: &Path,
        bytes: &[u8],
        sha256: String,
    ) -> Result<LoadedPlugin, RuntimeError> {
        let started = Instant::now();
        let wasm_err = |e: wasmtime::Error| RuntimeError::Wasm {
            plugin: manifest.id.clone(),
            message: format!("{e:#}"),
        };
        let cache_file = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.engine_hash())));
        let mut cache_hit = false;
        let mut component = None;
        if let Some(path) = &cache_file
            && let Ok(compiled) = std::fs::read(path)
        {
            // SAFETY: the cache directory only holds files this host serialized itself (written
            // atomically below) and the name pins the engine's compatibility hash.
            match unsafe { Component::deserialize(&self.engine, &compiled) } {
                Ok(c) => {
                    cache_hit = true;
                    component = Some(c);
                }
                Err(e) => tracing::warn!("ignoring unusable compile cache {}: {e}", path.display()),
            }
        }
        let component = match component {
            Some(c) => c,
            None => {
                let c = Component::new(&self.engine, bytes).map_err(wasm_err)?;
                if let Some(path) = &cache_file {
                    write_cache(path, &c);
                }
                c
            }
        };
        imports::check(&self.engine, &component, &manifest.id, wasm_path)?;
        let pre = self.linker.instantiate_pre(&component).map_err(wasm_err)?;
        let pre = ModelPluginPre::new(pre).map_err(wasm_err)?;
        Ok(LoadedPlugin {
            manifest,
            dir: dir.to_path_buf(),
            sha256,
            cache_hit,
            load_time: started.elapsed(),
            pre,
        })
    }

    fn engine_hash(&self) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    fn new_store(&self, plugin: &LoadedPlugin, caps: CallCapabilities) -> Store<HostState> {
        let limits = &plugin.manifest.limits;
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(limits.memory_mb * 1024 * 1024).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        // Guest stderr is kept (bounded) so a panic's message can be shown with its trap.
        let stderr = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limits: store_limits,
                stderr,
                log: caps.log,
                data: caps.data,
                http: caps.http,
                ssh: caps.ssh,
            },
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(limits.timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1);
        store
    }

    /// Calls `describe()` in a fresh instance with no capabilities.
    pub async fn describe(
        &self,
        plugin: &LoadedPlugin,
    ) -> Result<Vec<TypeDescription>, RuntimeError> {
        let caps = CallCapabilities {
            log: LogCapability::to_tracing(),
            data: DataCapability::none(),
            http: HttpCapability::none(),
            ssh: SshCapability::none(),
        };
        let mut store = self.new_store(plugin, caps);
        let during = "describe()".to_string();
        let infos = self
            .guarded(
                plugin,
                &during,
                &mut store,
                async |store: &mut Store<HostState>| {
                    let instance: ModelPlugin = plugin.pre.instantiate_async(&mut *store).await?;
                    instance.call_describe(&mut *store).await
                },
            )
            .await?;
        infos
            .into_iter()
            .map(|info| {
                TypeDescription::from_wit(info).map_err(|message| RuntimeError::Describe {
                    plugin: plugin.manifest.id.clone(),
                    message,
                })
            })
            .collect()
    }

    /// Calls `execute(call)` in a fresh instance with the given capabilities.
    pub async fn execute(
        &self,
        plugin: &LoadedPlugin,
        call: bindings::Call,
        caps: CallCapabilities,
    ) -> Result<CallOutcome, RuntimeError> {
        let mut store = self.new_store(plugin, caps);
        let during = format!("{}.{}", call.type_name, call.method);
        let result = self
            .guarded(
                plugin,
                &during,
                &mut store,
                async |store: &mut Store<HostState>| {
                    let instance: ModelPlugin = plugin.pre.instantiate_async(&mut *store).await?;
                    instance.call_execute(&mut *store, &call).await
                },
            )
            .await?;
        let state = store.into_data();
        let writes = match result {
            Ok(_) => state.data.into_pending(),
            Err(_) => Vec::new(),
        };
        Ok(CallOutcome { result, writes })
    }

    /// Runs `f` under the wall-clock timeout and turns traps into named errors.
    async fn guarded<T>(
        &self,
        plugin: &LoadedPlugin,
        during: &str,
        store: &mut Store<HostState>,
        f: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, RuntimeError> {
        let limits = &plugin.manifest.limits;
        let id = plugin.manifest.id.clone();
        let version = plugin.manifest.version.clone();
        // Epochs stop guest code; this also stops time spent blocked in host calls.
        let wall = Duration::from_millis(limits.timeout_ms) + Duration::from_millis(250);
        let timeout_err = || RuntimeError::Timeout {
            plugin: id.clone(),
            version: version.clone(),
            during: during.to_string(),
            limit_ms: limits.timeout_ms,
        };
        let outcome = match tokio::time::timeout(wall, f(&mut *store)).await {
            Err(_) => return Err(timeout_err()),
            Ok(r) => r,
        };
        let stderr = String::from_utf8_lossy(&store.data().stderr.contents()).into_owned();
        outcome.map_err(|e| {
            if let Some(trap) = e.downcast_ref::<wasmtime::Trap>()
                && *trap == wasmtime::Trap::Interrupt
            {
                return timeout_err();
            }
            let text = format!("{e:#}");
            if text.contains("forcing trap when growing memory") || text.contains("memory.grow") {
                return RuntimeError::Memory {
                    plugin: id.clone(),
                    version: version.clone(),
                    during: during.to_string(),
                    limit_mb: limits.memory_mb,
                };
            }
            RuntimeError::Trap {
                plugin: id.clone(),
                version: version.clone(),
                during: during.to_string(),
                message: summarize_trap(&e, &stderr),
            }
        })
    }
}

/// The trap's reason in words, plus what the guest last wrote to stderr (a panic message).
fn summarize_trap(e: &wasmtime::Error, stderr: &str) -> String {
    let reason = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => "stack overflow (unbounded recursion?)".to_string(),
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "unreachable code reached (usually a Rust panic)".to_string()
        }
        Some(trap) => format!("wasm trap: {trap}"),
        None => e
            .chain()
            .map(|c| c.to_string())
            .last()
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &tail[tail.len().saturating_sub(4)..];
    if tail.is_empty() {
        reason
    } else {
        format!("{reason}; the plugin wrote: {}", tail.join(" / "))
    }
}

fn write_cache(path: &Path, component: &Component) {
    let Ok(bytes) = component.serialize() else {
        return;
    };
    if let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_err()
    {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("orch-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .ok();
}
