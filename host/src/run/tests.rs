//! Runs in one process: each holds its own cancel token.

use super::*;
use crate::output::ColorChoice;
use crate::runtime::{PluginRuntime, RegistrySettings};
use crate::store::StoreOptions;

/// A repository with workflow `ok` (one assert that holds: no plugin needed) and its run
/// environment, as `orch serve` would hold it for many runs.
async fn env(dir: &std::path::Path) -> RunEnv {
    std::fs::write(dir.join("orch.yaml"), "pluginPath: [plugins]\n").unwrap();
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(
        dir.join("workflows/ok.yaml"),
        "name: ok\njobs:\n  - name: main\n    steps:\n      - name: holds\n        \
         task: { type: assert, expression: \"1 < 2\" }\n",
    )
    .unwrap();
    let repo = Arc::new(Repo::load(dir).expect("the repo loads"));
    let runtime = PluginRuntime::new(None).expect("a runtime");
    let settings = RegistrySettings {
        limits: None,
        plugin_limits: Default::default(),
        providers: Default::default(),
    };
    let registry = Arc::new(PluginRegistry::load(runtime, &repo.plugin_dirs(), &settings).await);
    RunEnv {
        store: ResourceStore::new(repo.orch_dir().join("data.redb"), StoreOptions::default()),
        vault: Arc::new(LocalVault::open(&repo.orch_dir()).expect("a vault")),
        registry,
        repo,
        printer: Printer::new(true, ColorChoice::Never, 0),
        tags: Default::default(),
        observer: None,
    }
}

#[tokio::test]
async fn a_cancelled_run_does_not_cancel_the_next_run_of_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path()).await;
    let token = CancelToken::new();
    token.cancel();
    let cancelled = env
        .run_workflow_cancellable("ok", Map::new(), false, token)
        .await;
    assert_eq!(
        cancelled.status,
        RunStatus::Cancelled,
        "{:?}",
        cancelled.error
    );
    assert!(
        cancelled
            .steps
            .iter()
            .all(|s| s.name != "holds" || s.status != "succeeded"),
        "no step ran: {:?}",
        cancelled.steps
    );

    let next = env.run_workflow("ok", Map::new()).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{:?}", next.error);
    let stored = env.store.get_run(&cancelled.id).unwrap().expect("recorded");
    assert_eq!(stored.status, RunStatus::Cancelled);
}

#[tokio::test]
async fn cancelling_one_run_leaves_a_run_started_with_another_token_alone() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path()).await;
    let (mine, theirs) = (CancelToken::new(), CancelToken::new());
    theirs.cancel();
    let record = env
        .run_workflow_cancellable("ok", Map::new(), false, mine)
        .await;
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
}
