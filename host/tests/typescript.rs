//! TypeScript plugins: built from source with the SDK in plugins/sdk-ts (componentize-js), run
//! through the real `orch` binary, and kept inside the same sandbox as Rust plugins.
//!
//! Needs node and npm (`cargo xtask test` installs them); without them every test here fails
//! with the builder's message. Each plugin is built at most once per run (and not at all when
//! its sources are unchanged: the builder caches by content hash).

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::TestRepo;
use support::sshd::Sshd;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the plugin in `dir` (relative to the repository root) into a bundle under the test
/// target directory, once per test run.
fn bundle(cell: &'static OnceLock<PathBuf>, dir: &str) -> &'static Path {
    cell.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("ts-bundles")
            .join(Path::new(dir).file_name().expect("a plugin directory name"));
        if let Err(e) = orch::plugin_dev::typescript::pack_bundle(&root().join(dir), &out) {
            panic!("building the TypeScript plugin {dir} failed: {e}");
        }
        out
    })
}

static SANDBOX: OnceLock<PathBuf> = OnceLock::new();
static COMPOSE: OnceLock<PathBuf> = OnceLock::new();

fn install(repo: &TestRepo, bundle: &Path, id: &str) {
    let dst = repo.path().join("plugins").join(id);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(bundle.join(f), dst.join(f)).unwrap();
    }
}

#[test]
fn hello_world_in_typescript_greets_writes_a_resource_and_checks_its_schema() {
    // The author's loop through the real CLI: `orch plugin build` on a copy of the example
    // (the component comes from the build cache when its sources are unchanged), then install.
    let repo = TestRepo::new(&[]);
    let work = tempfile::tempdir().unwrap();
    let src = root().join("plugins/hello-ts");
    std::fs::create_dir_all(work.path().join("src")).unwrap();
    for f in ["bundle.toml", "package.json", "src/plugin.ts"] {
        std::fs::copy(src.join(f), work.path().join(f)).unwrap();
    }
    let dir = work.path().to_str().unwrap();
    repo.orch(&["plugin", "build", dir]).ok();
    let built = work.path().join("dist/hello-ts");
    repo.orch(&["plugin", "install", built.to_str().unwrap()])
        .ok();
    repo.write("models/hi.yaml", "type: hello/world\n");
    let listed = repo
        .orch(&["--json", "type", "describe", "hello/world"])
        .ok();
    assert!(listed.stdout.contains("greet"), "{}", listed.stdout);
    let out = repo
        .orch(&[
            "--json", "model", "run", "hi", "greet", "--input", "who=ada",
        ])
        .ok()
        .json();
    assert_eq!(out["output"]["greeted"], "ada", "{out}");
    let data = repo
        .orch(&["--json", "data", "get", "hi", "ada", "--spec", "greeting"])
        .ok();
    assert!(data.all().contains("hello, ada"), "{}", data.all());
    // The host validates arguments against the schema the TypeScript definition declared.
    let missing = repo.orch(&["--json", "model", "run", "hi", "greet"]);
    assert_ne!(missing.code, 0, "{}", missing.all());
    assert!(missing.all().contains("who"), "{}", missing.all());
}

#[test]
fn a_new_typescript_plugin_builds_installs_and_runs_both_methods() {
    // `orch plugin new --lang ts` → `orch plugin build` → `orch plugin install` → run.
    let repo = TestRepo::new(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("hello");
    let dir_s = dir.to_str().unwrap();
    repo.orch(&[
        "plugin",
        "new",
        dir_s,
        "--lang",
        "ts",
        "--type",
        "acme/hello",
    ])
    .ok();
    repo.orch(&["plugin", "build", dir_s]).ok();
    let built = dir.join("dist/hello");
    repo.orch(&["plugin", "install", built.to_str().unwrap()])
        .ok();
    repo.write(
        "models/hi.yaml",
        "type: acme/hello\nglobalArguments:\n  name: ada\n",
    );
    let greeted = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "hi",
            "greet",
            "--input",
            "punctuation=?",
        ])
        .ok()
        .json();
    assert_eq!(greeted["output"]["message"], "Hello, ada?", "{greeted}");
    assert_eq!(greeted["output"]["count"], 1, "{greeted}");
    let shown = repo
        .orch(&["--json", "model", "run", "hi", "show"])
        .ok()
        .json();
    assert_eq!(shown["output"]["count"], 1, "{shown}");
    assert_eq!(shown["output"]["message"], "Hello, ada?", "{shown}");
}

/// A plugin directory holding `source` as src/plugin.ts.
fn plugin_with(source: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"name":"broken","type":"module","main":"src/plugin.ts"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/plugin.ts"), source).unwrap();
    dir
}

#[test]
fn a_type_error_fails_the_build_naming_file_and_line() {
    let dir = plugin_with(
        "import { definePlugin } from '@orch/plugin-sdk';\nexport const { describe, execute } = definePlugin({ types: { 'a/b': { version: 1, description: 'x', methods: {} } } });\n",
    );
    let err = orch::plugin_dev::typescript::build_typescript(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("type errors"), "{err}");
    assert!(err.contains("src/plugin.ts(2,"), "{err}");
}

#[test]
fn a_typescript_syntax_error_fails_the_build_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"name":"broken","type":"module","main":"src/plugin.ts"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/plugin.ts"),
        "export const describe = () => [;\n",
    )
    .unwrap();
    let err = orch::plugin_dev::typescript::build_typescript(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("TypeScript build failed"), "{err}");
    assert!(err.contains("plugin.ts"), "{err}");
}

#[test]
fn fetch_fails_cleanly_and_http_is_checked_against_the_grants() {
    let server = support::TinyHttp::start("{\"ok\":true}");
    let repo = TestRepo::new(&[]);
    install(
        &repo,
        bundle(&SANDBOX, "host/tests/ts/sandbox"),
        "ts-sandbox",
    );
    repo.write(
        "models/probe.yaml",
        &format!(
            "type: ts/sandbox\nglobalArguments:\n  url: {}\n",
            server.url()
        ),
    );
    let fetched = repo.orch(&["--json", "model", "run", "probe", "fetch"]);
    assert_eq!(fetched.code, 1, "{}", fetched.all());
    assert!(
        fetched.all().contains("fetch() is not available"),
        "{}",
        fetched.all()
    );
    let denied = repo.orch(&["--json", "model", "run", "probe", "http"]);
    assert_eq!(denied.code, 1, "{}", denied.all());
    assert!(denied.all().contains("denied"), "{}", denied.all());
    assert_eq!(server.count(), 0, "nothing reached the server");
}

/// A bundle around a component that imports `import` (an empty instance).
fn bundle_importing(dir: &Path, import: &str) {
    let wasm = wat::parse_str(format!("(component (import \"{import}\" (instance)))")).unwrap();
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&wasm));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("plugin.wasm"), &wasm).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            "id = \"net\"\nversion = \"0.1.0\"\napi = \"0.1.0\"\ndescription = \"x\"\nwasm = \"plugin.wasm\"\nsha256 = \"{sha}\"\n"
        ),
    )
    .unwrap();
}

#[test]
fn outgoing_http_and_sockets_are_refused_at_load_naming_the_import() {
    let runtime = orch::runtime::PluginRuntime::new(None).unwrap();
    for import in [
        "wasi:http/outgoing-handler@0.2.3",
        "wasi:sockets/tcp@0.2.3",
        "wasi:sockets/instance-network@0.2.3",
    ] {
        let dir = tempfile::tempdir().unwrap();
        bundle_importing(dir.path(), import);
        let err = match runtime.load(dir.path()) {
            Ok(_) => panic!("{import} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(import), "{err}");
    }
}

#[test]
fn docker_compose_in_typescript_sends_the_right_commands_and_parses_ps() {
    let sshd = Sshd::start();
    let repo = TestRepo::new(&[]);
    install(
        &repo,
        bundle(&COMPOSE, "workflows/compose-ts/plugin"),
        "docker-ts",
    );
    repo.orch_stdin(
        &["vault", "put", "ssh-vault", "private-key"],
        &sshd.user_key(),
    )
    .ok();
    repo.orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
        .ok();
    support::docker::compose_sends_the_right_commands_and_parses_ps(&repo, &sshd);
}
