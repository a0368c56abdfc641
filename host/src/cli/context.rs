//! What every command may need, loaded on demand: the repo, its plugins, store and vault.

use super::CliError;
use crate::output::Printer;
use crate::repo::{Diagnostic, Repo};
use crate::run::RunEnv;
use crate::runtime::{PluginRegistry, PluginRuntime, RegistrySettings};
use crate::store::{ResourceStore, StoreOptions};
use crate::vault::LocalVault;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Command context.
pub struct Ctx {
    /// The printer.
    pub printer: Printer,
    repo_flag: Option<PathBuf>,
    /// A long-lived process's repository and plugins, loaded once (`orch serve`).
    loaded: Option<(Arc<Repo>, Arc<PluginRegistry>)>,
}

impl Ctx {
    /// A context for one invocation.
    pub fn new(printer: Printer, repo_flag: Option<PathBuf>) -> Self {
        Ctx {
            printer,
            repo_flag,
            loaded: None,
        }
    }

    /// A context that serves every command from this repository and these plugins, loaded
    /// once, instead of reading them again (`orch serve`).
    pub fn preloaded(printer: Printer, repo: Arc<Repo>, registry: Arc<PluginRegistry>) -> Self {
        Ctx {
            printer,
            repo_flag: Some(repo.root.clone()),
            loaded: Some((repo, registry)),
        }
    }

    /// The repository root: `--repo`, or the nearest orch.yaml upward.
    pub fn repo_root(&self) -> Result<PathBuf, CliError> {
        match &self.repo_flag {
            Some(p) => Ok(p.clone()),
            None => {
                let cwd = std::env::current_dir().map_err(|e| {
                    CliError::usage(format!("cannot read the current directory: {e}"))
                })?;
                Repo::discover(&cwd).map_err(CliError::usage)
            }
        }
    }

    /// Loads the repository; broken definitions and workflows are left to the caller, which
    /// knows which ones it needs.
    pub fn load_repo(&self) -> Result<Arc<Repo>, CliError> {
        if let Some((repo, _)) = &self.loaded {
            return Ok(repo.clone());
        }
        let root = self.repo_root()?;
        Repo::load(&root).map(Arc::new).map_err(CliError::usage)
    }

    /// Loads the repository for a command that needs no file in particular: every broken
    /// definition or workflow is a warning.
    pub fn repo(&self) -> Result<Arc<Repo>, CliError> {
        let repo = self.load_repo()?;
        self.warn_skipped(&repo.problems());
        Ok(repo)
    }

    /// Warns about problems in files this command does not use and therefore skips.
    pub fn warn_skipped(&self, problems: &[Diagnostic]) {
        for d in problems {
            self.printer.warn(&format!(
                "{d} (this file is skipped; `orch check` lists every problem)"
            ));
        }
    }

    /// The data store of a repo: the redb file in `.orch/`, or the PostgreSQL database of
    /// `datastore:` in orch.yaml (password from its vault reference, else `PGPASSWORD`).
    pub fn store(&self, repo: &Repo) -> ResourceStore {
        let options = StoreOptions {
            lock_wait: Duration::from_secs(repo.config.lock_wait_seconds),
        };
        match &repo.config.datastore {
            Some(datastore) => {
                let password = match &datastore.password_vault {
                    Some((vault, key)) => LocalVault::open(&repo.orch_dir())
                        .and_then(|v| v.get(vault, key))
                        .map_err(|e| format!("cannot read the password from the vault: {e}"))
                        .and_then(|found| {
                            found.map(Some).ok_or_else(|| {
                                format!(
                                    "orch.yaml datastore.password names vault {vault:?} key \
                                     {key:?}, which is not set; store it with `orch vault put {vault} {key}`"
                                )
                            })
                        }),
                    None => Ok(std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty())),
                };
                ResourceStore::postgres_with(&datastore.postgres, password, options)
            }
            None => ResourceStore::new(repo.orch_dir().join("data.redb"), options),
        }
    }

    /// The vault of a repo.
    pub fn vault(&self, repo: &Repo) -> Result<Arc<LocalVault>, CliError> {
        LocalVault::open(&repo.orch_dir())
            .map(Arc::new)
            .map_err(CliError::failed)
    }

    /// Loads the repository's plugins (as [`Ctx::registry`]), announcing first compiles.
    pub async fn registry_with_notices(
        &self,
        repo: &Repo,
    ) -> Result<Arc<PluginRegistry>, CliError> {
        self.load_registry(repo, true).await
    }

    /// Reads every installed plugin's manifest and types (describe() results are cached in
    /// `.orch/describe`); a plugin is compiled only when it is run, or to learn its types once.
    pub async fn registry(&self, repo: &Repo) -> Result<Arc<PluginRegistry>, CliError> {
        self.load_registry(repo, false).await
    }

    /// Like [`Ctx::registry`]; with `notices`, a plugin compiled for lack of cached code is
    /// announced on stderr ("compiling plugin X (first run)"), so a slow first run says why.
    async fn load_registry(
        &self,
        repo: &Repo,
        notices: bool,
    ) -> Result<Arc<PluginRegistry>, CliError> {
        if let Some((_, registry)) = &self.loaded {
            return Ok(registry.clone());
        }
        let runtime =
            PluginRuntime::new(Some(repo.orch_dir().join("cache"))).map_err(CliError::failed)?;
        if notices {
            let printer = self.printer.clone();
            runtime.on_compile(Box::new(move |id| {
                printer.note(&format!("compiling plugin {id} (first run)"));
            }));
        }
        let settings = RegistrySettings {
            limits: repo.config.limits.clone(),
            plugin_limits: repo
                .config
                .grants
                .iter()
                .filter_map(|(id, g)| Some((id.clone(), g.limits.clone()?)))
                .collect(),
            providers: repo.config.providers.clone(),
        };
        let registry = PluginRegistry::load(runtime, &repo.plugin_dirs(), &settings).await;
        Ok(Arc::new(registry))
    }

    /// Everything a run needs. Broken files are left to the caller, which knows what the run
    /// uses.
    pub async fn run_env(&self) -> Result<RunEnv, CliError> {
        let repo = self.load_repo()?;
        self.env_of(repo, false).await
    }

    /// Everything running workflow `name` needs: of the workflows, only `name` and those it
    /// nests are read (see [`Repo::load_for_workflow`]); first compiles are announced.
    pub async fn run_env_for_workflow(&self, name: &str) -> Result<RunEnv, CliError> {
        if self.loaded.is_some() {
            return self.run_env().await;
        }
        let root = self.repo_root()?;
        let repo = Repo::load_for_workflow(&root, name)
            .map(Arc::new)
            .map_err(CliError::usage)?;
        self.env_of(repo, true).await
    }

    /// Everything running a method needs; first compiles are announced.
    pub async fn run_env_for_method(&self) -> Result<RunEnv, CliError> {
        let repo = self.load_repo()?;
        self.env_of(repo, true).await
    }

    /// The env of `repo`; `for_run` when a run follows: first compiles are announced, and the
    /// store is opened for writing at once, since the run's start record is its first write.
    async fn env_of(&self, repo: Arc<Repo>, for_run: bool) -> Result<RunEnv, CliError> {
        let store = self.store(&repo);
        if for_run {
            store.open_for_writing_soon();
        }
        let registry = self.load_registry(&repo, for_run).await?;
        for p in registry.problems() {
            self.printer.warn(p);
        }
        let calls = crate::runtime::pool_calls();
        if for_run && repo.config.concurrency > calls as usize {
            self.printer.warn(&format!(
                "{}: concurrency is {}, but this process keeps at most {calls} plugin calls in flight; the other steps wait for a free slot (`orch serve` keeps {})",
                repo.root.join("orch.yaml").display(),
                repo.config.concurrency,
                crate::runtime::MAX_CONCURRENT_CALLS,
            ));
        }
        Ok(RunEnv {
            store,
            vault: self.vault(&repo)?,
            registry,
            repo,
            printer: self.printer.clone(),
            tags: Default::default(),
            observer: None,
        })
    }
}
