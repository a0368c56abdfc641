//! The sandboxed plugin runtime: one wasmtime `Engine`, a precompile cache, an `InstancePre` per
//! plugin and a fresh `Store` with limits for every call.

pub mod bundle_types;
mod cache;
pub mod files;
mod imports;
mod limiter;
pub mod lint;
mod listing;
pub mod manifest;
pub mod registry;
pub mod schema;
mod types;
pub mod validate;
pub mod version;
pub mod wit;

pub use manifest::{EffectiveLimits, HOST_MAXIMUMS, LimitCaps, Limits, PluginManifest};
pub use registry::{PluginRegistry, ProvidedType, RegistrySettings};
pub use types::{MethodInfo, ResourceSpecInfo, TypeDescription};

pub use crate::capabilities::CallCapabilities;
use cache::{CacheRead, Caches, CompiledRead};
use limiter::{BudgetExceeded, CallBudget};
use listing::Listing;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use thiserror::Error;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wit::convert;

/// How often the epoch ticker advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How many epoch ticks guest code runs between two yields to the async executor.
const YIELD_TICKS: u64 = 5;

/// How much of a guest's stderr is kept for trap messages.
const STDERR_CAPACITY: usize = 64 * 1024;

/// Longest describe() may take, whatever the plugin's own timeout: it runs whenever a plugin's
/// types are not cached yet, and a slow one must not stall commands for long.
pub const DESCRIBE_TIMEOUT_MS: u64 = 2_000;

/// Entries (WASI streams and the like) a call may hold in the host's resource table.
const MAX_RESOURCE_TABLE_ENTRIES: usize = 4096;

/// Why a plugin could not be loaded or a call could not complete. Plugin-level failures
/// (`error.denied`, `error.failed`, …) are not here: they come back as values.
#[derive(Debug, Clone, Error)]
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
    /// A bundle's `types.json` claims types its plugin does not describe: it is refused before
    /// any of it runs.
    #[error("{path}: {message}")]
    BundleClaim {
        /// The bundle's `types.json`.
        path: PathBuf,
        /// What differs and what to do.
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
    /// The call ran past its time limit.
    #[error(
        "plugin `{plugin}` {version} exceeded its time limit of {limit_ms} ms in {during} ({origin})"
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
        /// Who set the limit (plugin.toml, orch.yaml or the host).
        origin: String,
    },
    /// The guest's memories and tables together grew past its memory limit.
    #[error(
        "plugin `{plugin}` {version} exceeded its memory limit of {limit_mb} MiB in {during} ({origin})"
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
        /// Who set the limit.
        origin: String,
    },
    /// A method returned more output than its limit.
    #[error(
        "plugin `{plugin}` {version} returned {bytes} bytes of output from {during}, more than its limit of {limit} ({origin}); nothing it wrote was kept"
    )]
    Output {
        /// Plugin id.
        plugin: String,
        /// Plugin version.
        version: String,
        /// What was being called.
        during: String,
        /// The output's size.
        bytes: usize,
        /// The limit.
        limit: u64,
        /// Who set the limit.
        origin: String,
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

/// Per-call host state: WASI (locked down), the memory budget and the capabilities granted for
/// this call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    budget: CallBudget,
    stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
    caps: CallCapabilities,
}

impl crate::capabilities::CapabilityHost for HostState {
    fn capabilities(&mut self) -> &mut CallCapabilities {
        &mut self.caps
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A plugin compiled and ready to instantiate.
pub struct LoadedPlugin {
    /// Its manifest.
    pub manifest: PluginManifest,
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// SHA-256 of its wasm.
    pub sha256: String,
    /// The limits its calls run under (its request, capped by orch.yaml).
    pub limits: EffectiveLimits,
    /// Whether the compiled code came from the cache.
    pub cache_hit: bool,
    /// Time spent compiling or loading the compiled code.
    pub load_time: Duration,
    /// The contract version its wasm speaks (read from its imports and exports).
    pub api_version: String,
    pre: PluginPre,
}

/// What describe() said: the types the host accepted, and those it refused with why.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Described {
    /// Types whose description passed every check.
    pub types: Vec<TypeDescription>,
    /// (type name, problem) for each type refused.
    pub rejected: Vec<(String, String)>,
}

/// The result of `execute`: the plugin's answer plus the writes it buffered.
pub struct CallOutcome {
    /// The method's JSON output, or the plugin's typed error.
    pub result: Result<String, wit::v0_2::PluginError>,
    /// Writes to commit if the method succeeded.
    pub writes: Vec<crate::store::PendingWrite>,
}

/// What a guarded call is, for its limits and its error messages.
struct CallInfo<'a> {
    plugin: &'a str,
    version: &'a str,
    during: String,
    limits: &'a EffectiveLimits,
    timeout_ms: u64,
    timeout_origin: String,
}

/// Plugin calls that can be in flight at once in a process that serves many runs (`orch serve`,
/// a worker, an agent's session): each holds one component instance and one fiber stack from
/// the pool. A call beyond the pool waits for a slot ([`call_slot`]) instead of failing.
pub const MAX_CONCURRENT_CALLS: u32 = 256;

/// The same for a command that runs one workflow and exits (`orch run`, `plan`, `apply`): its
/// calls stay within `orch.yaml`'s `concurrency` (8 by default), and every slot costs start-up
/// time (a guard page per fiber stack, an `mprotect` each: a pool of 256 cost ~0.6 ms).
pub const ONE_RUN_CONCURRENT_CALLS: u32 = 64;

/// How many calls this process's pool holds: fixed by the first [`size_pool`], or by the
/// engine's build ([`MAX_CONCURRENT_CALLS`]).
static POOL_CALLS: OnceLock<u32> = OnceLock::new();

/// Sizes this process's instance pool for `calls` plugin calls at once, unless it is sized
/// already (the engine is built, or was asked to be); returns the size in force.
pub fn size_pool(calls: u32) -> u32 {
    *POOL_CALLS.get_or_init(|| calls.max(1))
}

/// How many plugin calls this process's pool holds at once.
pub fn pool_calls() -> u32 {
    size_pool(MAX_CONCURRENT_CALLS)
}

/// Waits for one of the pool's slots, held for one call (its instance and its fiber stack):
/// calls beyond the pool wait here in turn rather than fail to instantiate.
async fn call_slot() -> Option<tokio::sync::SemaphorePermit<'static>> {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| tokio::sync::Semaphore::new(pool_calls() as usize));
    // Never closed, so this only waits.
    slots.acquire().await.ok()
}

/// Bytes of each pooled memory and table reset in place (memset) rather than decommitted.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// The pooling allocator: a call takes its instance, memories, tables and fiber stack from
/// slots reserved once per process and gives them back reset, instead of mapping and unmapping
/// fresh memory per call (3 `mmap`, 2 `munmap`, 2 `mprotect` each, and a TLB shootdown on the
/// other cores per unmap). Its per-instance limits are the [`limiter`]'s, and a memory may
/// reach the host maximum, so the per-call budget (a `ResourceLimiter`, consulted before the
/// pool) still decides every growth and names the limit as before.
fn pool() -> PoolingAllocationConfig {
    let calls = pool_calls();
    let max_memory_bytes =
        usize::try_from(HOST_MAXIMUMS.memory_mb * 1024 * 1024).unwrap_or(usize::MAX);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(calls)
        .max_core_instances_per_component(limiter::MAX_INSTANCES as u32)
        .max_memories_per_component(limiter::MAX_MEMORIES as u32)
        .max_tables_per_component(limiter::MAX_TABLES as u32)
        .max_memories_per_module(limiter::MAX_MEMORIES as u32)
        .max_tables_per_module(limiter::MAX_TABLES as u32)
        // A std component instantiates a handful of core instances with one or two memories
        // and tables between them; these totals leave room for 4x that per call.
        .total_core_instances(calls * 16)
        .total_memories(calls * 4)
        .total_tables(calls * 8)
        .total_stacks(calls)
        .max_memory_size(max_memory_bytes)
        // Funcref tables of large guests (a JS engine) run to tens of thousands of entries.
        .table_elements(1 << 20)
        // A returned slot's first pages are zeroed with memset and stay mapped instead of being
        // decommitted with `madvise`, which flushes every core's TLB (an IPI per call: a third
        // of the CPU at 10,000 steps). The next call still sees zeroed memory.
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        // Where the kernel has `PAGEMAP_SCAN` (Linux 6.7+), only the pages a call dirtied are
        // reset (copied back from the image or zeroed), and nothing is decommitted: otherwise
        // a memory larger than the resident budget is `madvise`d on every call, and the next
        // call takes a copy-on-write fault (and a TLB shootdown) on each page it writes again.
        .pagemap_scan(Enabled::Auto);
    pool
}

/// The name compiled code is cached under for `engine`: its compatibility hash and this host's
/// version.
fn engine_hash(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// A plugin wasm that could not be opened or read, and why.
fn wasm_unreadable(wasm_path: &Path, message: String) -> RuntimeError {
    RuntimeError::Bundle {
        path: wasm_path.to_path_buf(),
        message: format!("the plugin's wasm {message}"),
    }
}

/// Refuses a wasm whose digest is not the one its plugin.toml declares.
fn check_digest(wasm_path: &Path, sha256: &str, declared: &str) -> Result<(), RuntimeError> {
    match sha256.eq_ignore_ascii_case(declared) {
        true => Ok(()),
        false => Err(RuntimeError::Bundle {
            path: wasm_path.to_path_buf(),
            message: format!(
                "SHA-256 is {sha256} but plugin.toml says {declared}; the bundle was changed after it was built (rebuild it with `cargo xtask build`)"
            ),
        }),
    }
}

/// Loads compiled code the cache vouched for, from the file it opened and checked: wasmtime
/// maps that very file through `/proc/self/fd` (not its path, which another process could
/// point elsewhere meanwhile), so nothing is read or copied up front. Without `/proc`, or on a
/// file system that cannot map it, the file's bytes are read and loaded instead.
fn deserialize_sealed(engine: &Engine, file: std::fs::File) -> wasmtime::Result<Component> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if fd_path.exists() {
            // SAFETY: the file's seal (an HMAC under this repository's private key over this
            // wasm's digest, the engine's compatibility hash and the file's identity) shows this
            // host serialized it from this very wasm, and only this user can change it.
            match unsafe { Component::deserialize_file(engine, &fd_path) } {
                Ok(component) => return Ok(component),
                // A file system that cannot map files: the bytes are read below instead.
                Err(e) => tracing::debug!(error = %format!("{e:#}"), "cannot map compiled code"),
            }
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes)?;
    // SAFETY: as above; these are the bytes of the file that was checked.
    unsafe { Component::deserialize(engine, &bytes) }
}

/// The engine, linker and caches, shared by every plugin in the process.
pub struct PluginRuntime {
    caches: Option<Caches>,
    /// Told the plugin id before a plugin is compiled for lack of cached code.
    compile_notice: OnceLock<CompileNotice>,
}

/// Called with a plugin's id before it is compiled for lack of cached code.
pub type CompileNotice = Box<dyn Fn(&str) + Send + Sync>;

/// What compiling and running plugins needs: the engine (with its instance pool) and the
/// linker holding the host's imports.
struct EngineParts {
    engine: Engine,
    linker: Linker<HostState>,
}

impl EngineParts {
    /// Builds the engine and linker, and starts the engine's epoch ticker.
    fn build() -> Result<EngineParts, String> {
        let err = |e: wasmtime::Error| format!("{e:#}");
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
        let engine = match Engine::new(&config) {
            Ok(engine) => engine,
            // The pool reserves terabytes of address space (no memory) up front; a process
            // under an address-space limit (`ulimit -v`) cannot, and maps per call instead.
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot reserve the plugin instance pool; mapping memory per call instead");
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                Engine::new(&config).map_err(err)?
            }
        };
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
        crate::capabilities::add_to_linker(&mut linker).map_err(err)?;
        spawn_epoch_ticker(&engine);
        Ok(EngineParts { engine, linker })
    }
}

/// The engine and linker every runtime in the process shares, or why they could not be built.
static ENGINE_PARTS: OnceLock<Result<EngineParts, String>> = OnceLock::new();

/// The process's engine and linker, built on first need (or waited for, while another thread
/// builds them).
fn engine_parts() -> Result<&'static EngineParts, RuntimeError> {
    ENGINE_PARTS
        .get_or_init(EngineParts::build)
        .as_ref()
        .map_err(|message| RuntimeError::Wasm {
            plugin: "engine".into(),
            message: message.clone(),
        })
}

/// Starts building the engine and linker (~0.6 ms with a pool of 64 calls, most of it reserving
/// the pool) on a thread of their own, once per process; whatever needs them waits for them.
/// [`PluginRuntime::new`] calls it, so they are built beside the reading of the installed
/// plugins and the checks of a run. Started any earlier, beside the parsing of the repository,
/// it took the core that parses `orch.yaml` (A/B: a run was ~0.3 ms slower). Without a thread,
/// the first call that needs them builds them.
pub fn build_engine_soon() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("orch-engine".into())
            .spawn(|| {
                let _ = engine_parts();
            });
    });
}

impl PluginRuntime {
    /// The runtime; `cache_dir` (`.orch/cache`) holds precompiled plugins, with describe()
    /// results and the cache key beside it (None: no cache). The process's engine and linker
    /// are built on a thread of their own unless already started ([`build_engine_soon`]), beside
    /// the reading of the repository's plugins and types that comes first; a failure to build
    /// them is returned by each call that needs them.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Arc<Self>, RuntimeError> {
        let runtime = Arc::new(PluginRuntime {
            caches: cache_dir.as_deref().and_then(Caches::open),
            compile_notice: OnceLock::new(),
        });
        build_engine_soon();
        Ok(runtime)
    }

    /// The process's engine and linker (see [`engine_parts`]).
    fn parts(&self) -> Result<&'static EngineParts, RuntimeError> {
        engine_parts()
    }

    /// The engine every plugin is compiled for and run on.
    pub(crate) fn engine(&self) -> Result<&Engine, RuntimeError> {
        Ok(&self.parts()?.engine)
    }

    /// Sets what to call before a plugin is compiled because no cached code is usable (a
    /// first run takes seconds; the user should know why). Only the first setting counts.
    pub fn on_compile(&self, notice: CompileNotice) {
        let _ = self.compile_notice.set(notice);
    }

    /// Loads a bundle directory holding `plugin.toml` and its wasm, with the limits it asks for.
    pub fn load(&self, dir: &Path) -> Result<LoadedPlugin, RuntimeError> {
        let manifest = PluginManifest::load(&dir.join("plugin.toml"))?;
        let limits = EffectiveLimits::as_asked(&manifest.limits);
        self.compile(manifest, dir, limits)
    }

    /// Reads and checks the wasm of an already-read manifest, then compiles it (or loads the
    /// compiled code from the cache).
    pub fn compile(
        &self,
        manifest: PluginManifest,
        dir: &Path,
        limits: EffectiveLimits,
    ) -> Result<LoadedPlugin, RuntimeError> {
        let wasm_path = dir.join(&manifest.wasm);
        let bundle_err = |message| wasm_unreadable(&wasm_path, message);
        // The metadata is taken before anything is read: a change after it unseals the digest.
        let (file, meta) =
            files::open_regular(&wasm_path, files::MAX_WASM_BYTES).map_err(bundle_err)?;
        let sealed = self
            .caches
            .as_ref()
            .and_then(|c| c.sealed_digest(&wasm_path, &meta));
        let (bytes, sha256) = match sealed {
            Some(sha256) => (None, sha256),
            None => {
                let bytes =
                    files::read_opened(file, &meta, files::MAX_WASM_BYTES).map_err(bundle_err)?;
                let sha256 = hex::encode(Sha256::digest(&bytes));
                if let Some(caches) = &self.caches {
                    caches.seal_digest(&wasm_path, &meta, &sha256);
                }
                (Some(bytes), sha256)
            }
        };
        check_digest(&wasm_path, &sha256, &manifest.sha256)?;
        self.load_component(manifest, dir, &wasm_path, bytes.as_deref(), sha256, limits)
    }

    /// Loads the plugin's compiled code from the cache, or compiles `bytes` (read from
    /// `wasm_path` when not given, and checked to still have digest `sha256`).
    pub(crate) fn load_component(
        &self,
        manifest: PluginManifest,
        dir: &Path,
        wasm_path: &Path,
        bytes: Option<&[u8]>,
        sha256: String,
        limits: EffectiveLimits,
    ) -> Result<LoadedPlugin, RuntimeError> {
        let started = Instant::now();
        let wasm_err = |e: wasmtime::Error| RuntimeError::Wasm {
            plugin: manifest.id.clone(),
            message: format!("{e:#}"),
        };
        let EngineParts { engine, linker } = self.parts()?;
        let engine_hash = engine_hash(engine);
        let mut cache_hit = false;
        let mut component = None;
        if let Some(caches) = &self.caches {
            match caches.read_compiled(&sha256, &engine_hash) {
                CompiledRead::Missing => {}
                CompiledRead::Invalid(reason) => tracing::warn!(
                    "plugin `{}`: not using cached compiled code: {reason}; recompiling",
                    manifest.id
                ),
                CompiledRead::Valid(file) => match deserialize_sealed(engine, file) {
                    Ok(c) => {
                        cache_hit = true;
                        component = Some(c);
                    }
                    Err(e) => tracing::warn!(
                        "plugin `{}`: ignoring unusable compiled code: {e}",
                        manifest.id
                    ),
                },
            }
        }
        let component = match component {
            Some(c) => c,
            None => {
                if let Some(notice) = self.compile_notice.get() {
                    notice(&manifest.id);
                }
                let read;
                let bytes = match bytes {
                    Some(b) => b,
                    None => {
                        read = files::read_regular(wasm_path, files::MAX_WASM_BYTES)
                            .map_err(|message| wasm_unreadable(wasm_path, message))?;
                        check_digest(wasm_path, &hex::encode(Sha256::digest(&read)), &sha256)?;
                        &read
                    }
                };
                let c = Component::new(engine, bytes).map_err(wasm_err)?;
                if let Some(caches) = &self.caches
                    && let Ok(code) = c.serialize()
                {
                    caches.write_compiled(&sha256, &engine_hash, &code);
                }
                c
            }
        };
        // Forbidden imports first: a component that asks for the network or the filesystem is
        // refused naming that import, whatever else is wrong with it.
        imports::check(engine, &component, &manifest.id, wasm_path)?;
        let api_version = version::check(
            engine,
            &component,
            &manifest.api,
            &dir.join("plugin.toml"),
            wasm_path,
        )?;
        let pre = linker.instantiate_pre(&component).map_err(wasm_err)?;
        let pre = PluginPre::new(&api_version, pre).map_err(wasm_err)?;
        Ok(LoadedPlugin {
            manifest,
            dir: dir.to_path_buf(),
            sha256,
            limits,
            cache_hit,
            load_time: started.elapsed(),
            api_version,
            pre,
        })
    }

    /// The key under which describe() results are cached: this host's version and the format
    /// of its checks, so a host with other bounds re-checks every plugin.
    fn describe_cache_key() -> String {
        format!("{}-d2", env!("CARGO_PKG_VERSION"))
    }

    /// A describe() result cached for the wasm with digest `sha256`, if any.
    pub(crate) fn cached_description(&self, plugin: &str, sha256: &str) -> Option<Listing> {
        let caches = self.caches.as_ref()?;
        match caches.read_describe(sha256, &Self::describe_cache_key()) {
            CacheRead::Missing => None,
            CacheRead::Invalid(reason) => {
                tracing::warn!(
                    "plugin `{plugin}`: not using cached types: {reason}; describing again"
                );
                None
            }
            CacheRead::Valid(body) => Listing::decode(body),
        }
    }

    /// The cache key of a checked `types.json` claim: its own digest is part of it, so an edited
    /// file is checked again.
    fn claim_cache_key(types_digest: &str) -> String {
        format!(
            "{}-c2-{}",
            env!("CARGO_PKG_VERSION"),
            &types_digest[..types_digest.len().min(16)]
        )
    }

    /// The types a bundle's `types.json` (with digest `types_digest`) claims for the wasm with
    /// digest `sha256`, as checked by an earlier process; still a claim, verified by a real
    /// describe() before the plugin first runs.
    pub(crate) fn cached_claim(&self, sha256: &str, types_digest: &str) -> Option<Listing> {
        let caches = self.caches.as_ref()?;
        match caches.read_describe(sha256, &Self::claim_cache_key(types_digest)) {
            CacheRead::Valid(body) => Listing::decode(body),
            _ => None,
        }
    }

    /// Stores a checked `types.json` claim (see [`PluginRuntime::cached_claim`]).
    pub(crate) fn cache_claim(&self, sha256: &str, types_digest: &str, described: &Described) {
        if let Some(caches) = &self.caches
            && let Ok(body) = Listing::encode(described)
        {
            caches.write_describe(sha256, &Self::claim_cache_key(types_digest), &body);
        }
    }

    /// Stores a describe() result for the wasm with digest `sha256`.
    pub(crate) fn cache_description(&self, sha256: &str, described: &Described) {
        if let Some(caches) = &self.caches
            && let Ok(body) = Listing::encode(described)
        {
            caches.write_describe(sha256, &Self::describe_cache_key(), &body);
        }
    }

    fn new_store(
        &self,
        limits: &EffectiveLimits,
        caps: CallCapabilities,
    ) -> Result<Store<HostState>, RuntimeError> {
        let limits = &limits.values;
        let budget =
            usize::try_from(limits.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        // Guest stderr is kept (bounded) so a panic's message can be shown with its trap.
        let stderr = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCE_TABLE_ENTRIES);
        let mut store = Store::new(
            self.engine()?,
            HostState {
                wasi,
                table,
                budget: CallBudget::new(budget),
                stderr,
                caps,
            },
        );
        store.limiter(|s| &mut s.budget);
        // The guest yields to the executor every few ticks until its time is up, so a call whose
        // future is dropped (its run was cancelled) stops even in a busy loop, and the timeout
        // still traps where it did.
        let mut left = limits.timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1;
        let first = left.min(YIELD_TICKS);
        left -= first;
        store.set_epoch_deadline(first);
        store.epoch_deadline_callback(move |_| {
            if left == 0 {
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            let next = left.min(YIELD_TICKS);
            left -= next;
            Ok(wasmtime::UpdateDeadline::Yield(next))
        });
        Ok(store)
    }

    /// Calls `describe()` in a fresh instance with no capabilities, under the shorter of the
    /// plugin's timeout and [`DESCRIBE_TIMEOUT_MS`]; each type is checked on its own, so one
    /// bad type does not hide the others.
    pub async fn describe(&self, plugin: &LoadedPlugin) -> Result<Described, RuntimeError> {
        let infos = self.describe_raw(plugin).await?;
        check_described(&plugin.manifest.id, infos)
    }

    /// Calls `describe()` like [`PluginRuntime::describe`] and returns its answer unchecked
    /// (what the packer writes into a bundle's `types.json`).
    pub async fn describe_raw(
        &self,
        plugin: &LoadedPlugin,
    ) -> Result<Vec<wit::v0_2::orch::plugin::types::TypeInfo>, RuntimeError> {
        let mut limits = plugin.limits.clone();
        let (timeout_ms, timeout_origin) = if limits.values.timeout_ms > DESCRIBE_TIMEOUT_MS {
            limits.values.timeout_ms = DESCRIBE_TIMEOUT_MS;
            (
                DESCRIBE_TIMEOUT_MS,
                "the host's bound for describe(), which must answer at once".to_string(),
            )
        } else {
            let t = limits.values.timeout_ms;
            (t, plugin.limits.origin("timeout-ms").to_string())
        };
        let _slot = call_slot().await;
        let mut store = self.new_store(&limits, CallCapabilities::none())?;
        let info = CallInfo {
            plugin: &plugin.manifest.id,
            version: &plugin.manifest.version,
            during: "describe()".to_string(),
            limits: &plugin.limits,
            timeout_ms,
            timeout_origin,
        };
        guarded(&info, &mut store, async |store: &mut Store<HostState>| {
            plugin.pre.describe(store).await
        })
        .await
    }

    /// Calls `execute(call)` in a fresh instance with the given capabilities.
    pub async fn execute(
        &self,
        plugin: &LoadedPlugin,
        call: wit::v0_2::Call,
        caps: CallCapabilities,
    ) -> Result<CallOutcome, RuntimeError> {
        self.call(plugin, call, caps, false).await
    }

    /// Calls `plan(call)` (the dry run of a converge method) in a fresh instance: the result is
    /// the typed plan as JSON, `{"plan": [{action, spec, name, summary, changes}]}`, and nothing
    /// the plugin wrote is kept. A 0.1 plugin has no `plan`; its `execute` runs with `dry-run`.
    pub async fn plan(
        &self,
        plugin: &LoadedPlugin,
        call: wit::v0_2::Call,
        caps: CallCapabilities,
    ) -> Result<CallOutcome, RuntimeError> {
        self.call(plugin, call, caps, true).await
    }

    async fn call(
        &self,
        plugin: &LoadedPlugin,
        call: wit::v0_2::Call,
        caps: CallCapabilities,
        plan: bool,
    ) -> Result<CallOutcome, RuntimeError> {
        let _slot = call_slot().await;
        let mut store = self.new_store(&plugin.limits, caps)?;
        let info = CallInfo {
            plugin: &plugin.manifest.id,
            version: &plugin.manifest.version,
            during: format!("{}.{}", call.type_name, call.method),
            limits: &plugin.limits,
            timeout_ms: plugin.limits.values.timeout_ms,
            timeout_origin: plugin.limits.origin("timeout-ms").to_string(),
        };
        let result = guarded(&info, &mut store, async |store: &mut Store<HostState>| {
            if plan {
                plugin.pre.plan(store, &call).await
            } else {
                plugin.pre.execute(store, &call).await
            }
        })
        .await?;
        let max_output = plugin.limits.values.max_output_bytes;
        if let Ok(text) = &result
            && text.len() as u64 > max_output
        {
            return Err(RuntimeError::Output {
                plugin: info.plugin.to_string(),
                version: info.version.to_string(),
                during: info.during.clone(),
                bytes: text.len(),
                limit: max_output,
                origin: plugin.limits.origin("max-output-bytes").to_string(),
            });
        }
        let state = store.into_data();
        let writes = match result {
            Ok(_) if !plan => state.caps.data.into_pending(),
            _ => Vec::new(),
        };
        Ok(CallOutcome { result, writes })
    }
}

/// The host's checks on a describe() answer (live, or claimed by a bundle's `types.json`): its
/// total size, then each type on its own, so one bad type does not hide the others.
pub(crate) fn check_described(
    plugin: &str,
    infos: Vec<wit::v0_2::orch::plugin::types::TypeInfo>,
) -> Result<Described, RuntimeError> {
    let describe_err = |message| RuntimeError::Describe {
        plugin: plugin.to_string(),
        message,
    };
    types::check_describe_size(&infos).map_err(describe_err)?;
    let mut described = Described::default();
    for info in infos {
        let name = info.name.chars().take(128).collect::<String>();
        match TypeDescription::from_wit(info) {
            Ok(t) if described.types.iter().any(|x| x.name == t.name) => {
                return Err(describe_err(format!("type `{}` twice", t.name)));
            }
            Ok(t) => described.types.push(t),
            Err(problem) => described.rejected.push((name, problem)),
        }
    }
    Ok(described)
}

/// A plugin ready to instantiate, in the contract version its wasm speaks. The host works in
/// 0.2 types; a 0.1 plugin's exports are mapped onto them.
enum PluginPre {
    V0_1(wit::v0_1::ModelPluginPre<HostState>),
    V0_2(wit::v0_2::ModelPluginPre<HostState>),
}

impl PluginPre {
    /// Typed exports for a `version` that [`version::check`] accepted.
    fn new(
        version: &str,
        pre: wasmtime::component::InstancePre<HostState>,
    ) -> wasmtime::Result<Self> {
        Ok(match version {
            "0.1.0" => PluginPre::V0_1(wit::v0_1::ModelPluginPre::new(pre)?),
            _ => PluginPre::V0_2(wit::v0_2::ModelPluginPre::new(pre)?),
        })
    }

    /// Instantiates and calls `describe()`.
    async fn describe(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Vec<wit::v0_2::orch::plugin::types::TypeInfo>> {
        match self {
            PluginPre::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let infos = instance.call_describe(&mut *store).await?;
                Ok(infos.into_iter().map(convert::type_info_up).collect())
            }
            PluginPre::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_describe(&mut *store).await
            }
        }
    }

    /// Instantiates and calls `plan(call)`, rendered as JSON text; a 0.1 plugin has no `plan`,
    /// so its `execute` runs (with the call's `dry-run`).
    async fn plan(
        &self,
        store: &mut Store<HostState>,
        call: &wit::v0_2::Call,
    ) -> wasmtime::Result<Result<String, wit::v0_2::PluginError>> {
        match self {
            PluginPre::V0_1(_) => self.execute(store, call).await,
            PluginPre::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let plan = instance.call_plan(&mut *store, call).await?;
                Ok(plan.map(|changes| plan_json(&changes).to_string()))
            }
        }
    }

    /// Instantiates and calls `execute(call)`.
    async fn execute(
        &self,
        store: &mut Store<HostState>,
        call: &wit::v0_2::Call,
    ) -> wasmtime::Result<Result<String, wit::v0_2::PluginError>> {
        match self {
            PluginPre::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let call = convert::call_down(call.clone());
                let result = instance.call_execute(&mut *store, &call).await?;
                Ok(result.map_err(convert::error_up))
            }
            PluginPre::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_execute(&mut *store, call).await
            }
        }
    }
}

/// A typed plan as JSON; `before`/`after` texts that are not JSON are kept as strings.
pub fn plan_json(changes: &[wit::v0_2::PlannedChange]) -> serde_json::Value {
    use wit::v0_2::PlannedAction as A;
    let json_text = |t: &Option<String>| match t {
        None => serde_json::Value::Null,
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| serde_json::Value::String(t.clone())),
    };
    let changes: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| {
            let action = match c.action {
                A::Create => "create",
                A::Update => "update",
                A::Delete => "delete",
                A::Start => "start",
                A::Stop => "stop",
                A::None => "none",
            };
            let fields: Vec<serde_json::Value> = c
                .changes
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "path": f.path,
                        "before": json_text(&f.before),
                        "after": json_text(&f.after),
                    })
                })
                .collect();
            serde_json::json!({
                "action": action,
                "spec": c.spec,
                "name": c.name,
                "summary": c.summary,
                "changes": fields,
            })
        })
        .collect();
    serde_json::json!({ "plan": changes })
}

/// Runs `f` under the wall-clock timeout and turns traps into named errors.
async fn guarded<T>(
    info: &CallInfo<'_>,
    store: &mut Store<HostState>,
    f: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
) -> Result<T, RuntimeError> {
    // Epochs stop guest code; this also stops time spent blocked in host calls.
    let wall = Duration::from_millis(info.timeout_ms) + Duration::from_millis(250);
    let outcome = match tokio::time::timeout(wall, f(&mut *store)).await {
        Err(_) => return Err(timeout_error(info)),
        Ok(r) => r,
    };
    let stderr = String::from_utf8_lossy(&store.data().stderr.contents()).into_owned();
    outcome.map_err(|e| classify(info, &e, &stderr))
}

fn timeout_error(info: &CallInfo<'_>) -> RuntimeError {
    RuntimeError::Timeout {
        plugin: info.plugin.to_string(),
        version: info.version.to_string(),
        during: info.during.clone(),
        limit_ms: info.timeout_ms,
        origin: info.timeout_origin.clone(),
    }
}

/// A failed call in words: out of time, out of memory, or a trap.
fn classify(info: &CallInfo<'_>, e: &wasmtime::Error, stderr: &str) -> RuntimeError {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>()
        && *trap == wasmtime::Trap::Interrupt
    {
        return timeout_error(info);
    }
    let over_budget = e
        .chain()
        .any(|c| c.downcast_ref::<BudgetExceeded>().is_some());
    if over_budget || format!("{e:#}").contains("forcing trap when growing memory") {
        return RuntimeError::Memory {
            plugin: info.plugin.to_string(),
            version: info.version.to_string(),
            during: info.during.clone(),
            limit_mb: info.limits.values.memory_mb,
            origin: info.limits.origin("memory-mb").to_string(),
        };
    }
    RuntimeError::Trap {
        plugin: info.plugin.to_string(),
        version: info.version.to_string(),
        during: info.during.clone(),
        message: summarize_trap(e, stderr),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_runtime_of_a_process_runs_on_the_one_engine_built_ahead() {
        build_engine_soon();
        let (a, b) = (
            PluginRuntime::new(None).unwrap(),
            PluginRuntime::new(None).unwrap(),
        );
        let engine = a.engine().unwrap();
        assert!(Engine::same(engine, b.engine().unwrap()));
        // Code compiled through one runtime runs in the other's stores.
        let component = Component::new(engine, wat::parse_str("(component)").unwrap()).unwrap();
        let limits = EffectiveLimits::as_asked(&Limits::default());
        let mut store = b.new_store(&limits, CallCapabilities::none()).unwrap();
        let linker = &b.parts().unwrap().linker;
        let instantiated = linker.instantiate_async(&mut store, &component).await;
        assert!(instantiated.is_ok(), "{:?}", instantiated.err());
    }

    /// Instantiates a component (from WAT) in a call store with `memory_mb` of budget.
    async fn instantiate(wat: &str, memory_mb: u64) -> Result<(), RuntimeError> {
        let rt = PluginRuntime::new(None).unwrap();
        let bytes = wat::parse_str(wat).unwrap();
        let component = Component::new(rt.engine().unwrap(), bytes).unwrap();
        let limits = EffectiveLimits::as_asked(&Limits {
            memory_mb,
            timeout_ms: 5_000,
            ..Limits::default()
        });
        let mut store = rt.new_store(&limits, CallCapabilities::none()).unwrap();
        let info = CallInfo {
            plugin: "wat",
            version: "0",
            during: "instantiation".into(),
            limits: &limits,
            timeout_ms: 5_000,
            timeout_origin: "test".into(),
        };
        let linker = &rt.parts().unwrap().linker;
        guarded(&info, &mut store, async |store: &mut Store<HostState>| {
            linker
                .instantiate_async(&mut *store, &component)
                .await
                .map(|_| ())
        })
        .await
    }

    #[tokio::test]
    async fn several_memories_share_one_limit() {
        // Two memories of 300 pages (18.75 MiB) each: each fits 32 MiB, both together do not.
        let two = r#"(component
            (core module $a (memory 300))
            (core module $b (memory 300))
            (core instance (instantiate $a))
            (core instance (instantiate $b)))"#;
        let err = instantiate(two, 32).await.unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Memory { limit_mb: 32, .. }),
            "{err}"
        );
        instantiate(two, 40).await.unwrap();
    }

    #[tokio::test]
    async fn table_growth_counts_against_the_memory_limit() {
        let grow = r#"(component
            (core module $m
                (table $t 1 funcref)
                (func $start (drop (table.grow $t (ref.null func) (i32.const 10000000))))
                (start $start))
            (core instance (instantiate $m)))"#;
        let err = instantiate(grow, 32).await.unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Memory { limit_mb: 32, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_plan_renders_its_json_texts_as_json_and_keeps_other_text_as_strings() {
        let change = wit::v0_2::PlannedChange {
            action: wit::v0_2::PlannedAction::Update,
            spec: "vm".into(),
            name: "web".into(),
            summary: "2 -> 4 cores".into(),
            changes: vec![
                wit::v0_2::FieldChange {
                    path: "/cores".into(),
                    before: Some("2".into()),
                    after: Some("4".into()),
                },
                wit::v0_2::FieldChange {
                    path: "/note".into(),
                    before: None,
                    after: Some("not json".into()),
                },
            ],
        };
        assert_eq!(
            plan_json(&[change]),
            serde_json::json!({"plan": [{
                "action": "update", "spec": "vm", "name": "web", "summary": "2 -> 4 cores",
                "changes": [
                    {"path": "/cores", "before": 2, "after": 4},
                    {"path": "/note", "before": null, "after": "not json"},
                ],
            }]})
        );
    }
}
