//! The plugin runtime's own defences, end to end: limits the operator sets in orch.yaml, the
//! describe() bound and cache, compiling only what runs, the authenticated compile cache, type
//! hijack, special files in a bundle, and repeated plugin-path entries.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use support::TestRepo;

fn echo_model(repo: &TestRepo) {
    repo.write(
        "models/e.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: hello\n",
    );
}

/// The compiled-code files in `.orch/cache`.
fn compiled_files(repo: &TestRepo) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(repo.path().join(".orch/cache")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

/// The wasm SHA-256 a bundle's plugin.toml declares.
fn sha_of(repo: &TestRepo, bundle: &str) -> String {
    let text =
        std::fs::read_to_string(repo.path().join("plugins").join(bundle).join("plugin.toml"))
            .unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    manifest["sha256"].as_str().unwrap().to_string()
}

fn compiled_file_of(repo: &TestRepo, bundle: &str) -> PathBuf {
    let sha = sha_of(repo, bundle);
    compiled_files(repo)
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&sha))
        .unwrap_or_else(|| panic!("no compiled code for {bundle}"))
}

/// Removes every installed bundle's `types.json`, so loading compiles each plugin to learn its
/// types, as for a bundle built before bundles carried it.
fn without_types_json(repo: &TestRepo) {
    for entry in std::fs::read_dir(repo.path().join("plugins"))
        .unwrap()
        .flatten()
    {
        let _ = std::fs::remove_file(entry.path().join("types.json"));
    }
}

fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn orch_yaml_caps_a_plugins_limits_and_names_where_the_cap_came_from() {
    let repo = TestRepo::new(&["hostile"]);
    repo.write("models/h.yaml", "type: hostile/plugin\n");
    repo.write(
        "orch.yaml",
        "limits:\n  timeoutMs: 500\ngrants:\n  hostile:\n    limits:\n      maxWrites: 3\n",
    );
    let run = repo.orch(&["model", "run", "h", "writeMany"]).code(1);
    assert!(
        run.all().contains(
            "write limit of 3 resource versions per call reached (grants.hostile.limits.maxWrites in orch.yaml)"
        ),
        "{}",
        run.all()
    );
    let run = repo.orch(&["model", "run", "h", "spin"]).code(1);
    assert!(
        run.all()
            .contains("exceeded its time limit of 500 ms in hostile/plugin.spin (limits.timeoutMs in orch.yaml)"),
        "{}",
        run.all()
    );
    let described = repo
        .orch(&["--json", "type", "describe", "hostile/plugin"])
        .ok()
        .json();
    let limits = &described["plugin"]["limits"];
    assert_eq!(limits["max-writes"], 3, "{described}");
    assert_eq!(limits["timeout-ms"], 500, "{described}");
    // The plugin's own, smaller request stands.
    assert_eq!(limits["memory-mb"], 32, "{described}");
}

#[test]
fn an_operator_cap_above_the_host_maximum_is_a_validation_error_at_its_line() {
    let repo = TestRepo::new(&[]);
    repo.write("orch.yaml", "limits:\n  maxWrites: 18446744073709551615\n");
    let run = repo.orch(&["type", "list"]).code(2);
    assert!(
        run.all()
            .contains("orch.yaml:2: limits.maxWrites: 18446744073709551615 is outside 0..=1000000"),
        "{}",
        run.all()
    );
}

#[test]
fn a_plugin_asking_for_more_than_the_host_allows_is_refused_naming_the_field() {
    let repo = TestRepo::new(&["testplug"]);
    echo_model(&repo);
    let toml_path = repo.path().join("plugins/testplug/plugin.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let text = if text.contains("[limits]") {
        text.replace("[limits]", "[limits]\nmax-log-lines = 4294967295")
    } else {
        format!("{text}\n[limits]\nmax-log-lines = 4294967295\n")
    };
    std::fs::write(&toml_path, text).unwrap();
    let run = repo.orch(&["model", "run", "e", "echo"]);
    assert_ne!(run.code, 0);
    assert!(
        run.all()
            .contains("field `limits.max-log-lines`: 4294967295 is outside 0..=100000"),
        "{}",
        run.all()
    );
}

#[test]
fn describe_results_are_cached_and_a_command_compiles_only_the_plugins_it_runs() {
    let repo = TestRepo::new(&["testplug", "hostile"]);
    echo_model(&repo);
    // Types come from the bundles' types.json: nothing is compiled.
    repo.orch(&["type", "list"]).ok();
    assert!(
        compiled_files(&repo).is_empty(),
        "type list compiled a plugin"
    );
    // Without it, every plugin is compiled once to learn its types.
    without_types_json(&repo);
    repo.orch(&["type", "list"]).ok();
    assert_eq!(compiled_files(&repo).len(), 2);
    for f in compiled_files(&repo) {
        std::fs::remove_file(f).unwrap();
    }
    // Types come from the describe cache: nothing is compiled.
    let list = repo.orch(&["--json", "type", "list"]).ok().json();
    assert!(list.to_string().contains("hostile/plugin"), "{list}");
    assert!(
        compiled_files(&repo).is_empty(),
        "type list compiled a plugin"
    );
    // Running test/echo compiles testplug, and only testplug.
    repo.orch(&["model", "run", "e", "echo"]).ok();
    let compiled = compiled_files(&repo);
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    assert!(
        compiled[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&sha_of(&repo, "testplug"))
    );
}

#[test]
fn a_describe_that_never_returns_is_cut_short_and_commands_without_plugins_never_call_it() {
    let repo = TestRepo::new(&["testplug", "hostile-slow-describe"]);
    echo_model(&repo);
    let run = repo.orch(&["--json", "model", "run", "e", "echo"]).ok();
    assert_eq!(run.json()["output"]["greeting"], "hello");
    assert!(
        run.stderr.contains(
            "plugin `hostile-slow-describe` 0.1.0 exceeded its time limit of 2000 ms in describe() (the host's bound for describe()"
        ),
        "{}",
        run.stderr
    );
    for args in [
        &["data", "list"][..],
        &["runs", "list"],
        &["vault", "list", "v"],
        &["eval", "1 + 1"],
        &["model", "list"],
    ] {
        let run = repo.orch(args).ok();
        assert!(
            !run.all().contains("describe()"),
            "`orch {}` loaded plugins:\n{}",
            args.join(" "),
            run.all()
        );
    }
}

#[test]
fn a_compile_cache_file_swapped_for_another_plugins_is_recompiled_not_run() {
    let repo = TestRepo::new(&["testplug", "hostile"]);
    echo_model(&repo);
    // Both compiled, to learn their types.
    without_types_json(&repo);
    repo.orch(&["type", "list"]).ok();
    let testplug = compiled_file_of(&repo, "testplug");
    std::fs::copy(compiled_file_of(&repo, "hostile"), &testplug).unwrap();
    let run = repo.orch(&["--json", "model", "run", "e", "echo"]).ok();
    assert_eq!(run.json()["output"]["greeting"], "hello");
    assert!(
        run.stderr.contains("not using cached compiled code")
            && run.stderr.contains("its seal does not match"),
        "{}",
        run.stderr
    );
    // Rewritten with this plugin's own code: the next run uses it without a warning.
    let run = repo.orch(&["model", "run", "e", "echo"]).ok();
    assert!(
        !run.stderr.contains("cached compiled code"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_wasm_changed_after_a_warm_run_is_hashed_again_and_refused() {
    let repo = TestRepo::new(&["testplug"]);
    echo_model(&repo);
    repo.orch(&["model", "run", "e", "echo"]).ok();
    // The wasm's digest is sealed beside the compiled code, so warm runs need not read it.
    let seals = std::fs::read_dir(repo.path().join(".orch/cache/wasm"))
        .unwrap()
        .count();
    assert_eq!(seals, 1);
    repo.orch(&["model", "run", "e", "echo"]).ok();
    // One byte more: the file is no longer the one sealed, so it is hashed and refused.
    let wasm = repo.path().join("plugins/testplug/plugin.wasm");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&wasm)
        .unwrap();
    std::io::Write::write_all(&mut f, b"\0").unwrap();
    drop(f);
    let run = repo.orch(&["model", "run", "e", "echo"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains("but plugin.toml says")
            && run
                .all()
                .contains("the bundle was changed after it was built"),
        "{}",
        run.all()
    );
}

#[test]
fn a_type_two_bundles_claim_is_refused_until_orch_yaml_pins_its_provider() {
    let repo = TestRepo::new(&["testplug", "hostile"]);
    echo_model(&repo);
    let vendor = repo.path().join("vendor/impostor");
    copy_bundle(&repo.path().join("plugins/testplug"), &vendor);
    let manifest = vendor.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("id = \"testplug\"", "id = \"impostor\"");
    std::fs::write(&manifest, text).unwrap();
    repo.write("orch.yaml", "pluginPath: [plugins, vendor]\n");

    let run = repo.orch(&["model", "run", "e", "echo"]);
    assert_eq!(run.code, 1, "{}", run.all());
    let all = run.all();
    for want in [
        "type `test/echo` is provided by plugin `testplug`",
        "plugins/testplug",
        "plugin `impostor`",
        "vendor/impostor",
        "providers: { test/echo: <plugin id> }",
    ] {
        assert!(all.contains(want), "want `{want}` in:\n{all}");
    }
    // Unrelated types keep working.
    let list = repo.orch(&["--json", "type", "list"]).ok().json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"hostile/plugin"), "{names:?}");
    assert!(!names.contains(&"test/echo"), "{names:?}");

    repo.write(
        "orch.yaml",
        "pluginPath: [plugins, vendor]\nproviders:\n  test/echo: testplug\n",
    );
    let described = repo
        .orch(&["--json", "type", "describe", "test/echo"])
        .ok()
        .json();
    assert_eq!(described["plugin"]["id"], "testplug");
    repo.orch(&["model", "run", "e", "echo"]).ok();
}

#[test]
fn a_plugin_id_installed_twice_is_refused_naming_both_bundles() {
    let repo = TestRepo::new(&["testplug"]);
    echo_model(&repo);
    copy_bundle(
        &repo.path().join("plugins/testplug"),
        &repo.path().join("vendor/testplug"),
    );
    repo.write("orch.yaml", "pluginPath: [plugins, vendor]\n");
    let run = repo.orch(&["model", "run", "e", "echo"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all()
            .contains("plugin id `testplug` is installed 2 times")
            && run.all().contains("vendor/testplug"),
        "{}",
        run.all()
    );
}

#[test]
fn repeated_plugin_path_entries_load_each_bundle_once() {
    let repo = TestRepo::new(&["testplug"]);
    echo_model(&repo);
    repo.write("orch.yaml", "pluginPath: [plugins, ./plugins, plugins/]\n");
    let run = repo.orch(&["model", "run", "e", "echo"]).ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

#[cfg(unix)]
#[test]
fn special_files_in_a_bundle_are_refused_before_they_are_read() {
    let repo = TestRepo::new(&["testplug"]);
    echo_model(&repo);
    let wasm = repo.path().join("plugins/testplug/plugin.wasm");
    std::fs::remove_file(&wasm).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &wasm).unwrap();
    let run = repo.orch(&["model", "run", "e", "echo"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains(
            "plugin.wasm: the plugin's wasm is not a regular file (it is a character device)"
        ),
        "{}",
        run.all()
    );

    std::fs::remove_file(&wasm).unwrap();
    std::fs::File::create(&wasm)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let run = repo.orch(&["model", "run", "e", "echo"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains("is 2147483648 bytes, larger than"),
        "{}",
        run.all()
    );

    let manifest = repo.path().join("plugins/testplug/plugin.toml");
    std::fs::remove_file(&manifest).unwrap();
    let c = std::ffi::CString::new(manifest.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let run = repo.orch(&["type", "list"]).ok();
    assert!(
        run.stderr
            .contains("plugin.toml: is not a regular file (it is a FIFO)"),
        "{}",
        run.stderr
    );
}

/// The instance pool reserves terabytes of address space up front. Under an address-space limit
/// (`ulimit -v`) orch maps memory per call instead of failing every command.
#[test]
fn plugins_still_run_under_an_address_space_limit() {
    use std::os::unix::process::CommandExt;
    let repo = TestRepo::new(&["testplug"]);
    echo_model(&repo);
    let mut cmd = repo.command(&["--json", "model", "run", "e", "noop"]);
    // SAFETY: setrlimit is async-signal-safe and touches only the child about to exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 8 << 30,
                rlim_max: 8 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reserve the plugin instance pool"),
        "the fallback was not taken (is the pool smaller than 8 GiB now?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a [`Gate`] has seen.
#[derive(Default)]
struct GateState {
    in_flight: usize,
    peak: usize,
    open: bool,
}

/// An HTTP server that holds every request until `target` are in flight at once (or a minute
/// has passed, so a broken pool fails the test instead of hanging it), then answers them all.
struct Gate {
    url: String,
    state: Arc<(Mutex<GateState>, Condvar)>,
}

impl Gate {
    fn start(target: usize) -> Gate {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new((Mutex::new(GateState::default()), Condvar::new()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let (lock, cvar) = &*shared;
                    let mut s = lock.lock().unwrap();
                    s.in_flight += 1;
                    s.peak = s.peak.max(s.in_flight);
                    if s.in_flight >= target {
                        s.open = true;
                        cvar.notify_all();
                    }
                    let (mut s, _) = cvar
                        .wait_timeout_while(s, std::time::Duration::from_secs(60), |s| !s.open)
                        .unwrap();
                    s.open = true;
                    s.in_flight -= 1;
                    drop(s);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Gate { url, state }
    }

    fn peak(&self) -> usize {
        self.state.0.lock().unwrap().peak
    }
}

/// `orch run` keeps at most 64 plugin calls in flight (each holds an instance and a fiber
/// stack from the pool it reserves at start). A run allowed more (`concurrency: 100`) says so,
/// and its calls beyond the pool wait for a free slot instead of failing to instantiate.
#[test]
fn calls_beyond_the_pool_wait_for_a_slot_instead_of_failing() {
    let gate = Gate::start(64);
    let repo = TestRepo::new(&["testplug"]);
    repo.write("orch.yaml", "concurrency: 100\n");
    repo.write(
        "models/web.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  baseUrl: {}\n",
            gate.url
        ),
    );
    let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    repo.write(
        "workflows/many.yaml",
        &format!(
            "jobs:\n  - name: main\n    steps:\n      - name: get-${{{{ self.item }}}}\n        \
             forEach: {{ item: item, in: [{}] }}\n        task:\n          type: model_method\n          \
             modelIdOrName: web\n          methodName: fetch\n          inputs: {{ url: '{}/${{{{ self.item }}}}' }}\n",
            items.join(", "),
            gate.url
        ),
    );
    let run = repo.orch(&["--json", "run", "many"]).ok();
    let record = run.json();
    let steps = record["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 100, "{record}");
    assert!(steps.iter().all(|s| s["status"] == "succeeded"), "{record}");
    assert_eq!(
        gate.peak(),
        64,
        "the pool's 64 calls were not all in flight together, or more were"
    );
    assert!(
        run.stderr.contains("orch.yaml: concurrency is 100, but this process keeps at most 64 plugin calls in flight"),
        "{}",
        run.stderr
    );
}
