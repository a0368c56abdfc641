//! SSH through the real `orch` binary against a real OpenSSH sshd: exec, upload/download,
//! authentication failures, strict host keys (`orch ssh trust`, trust-on-first-use, a changed
//! key), grants that deny without connecting, command timeouts, connection reuse and secrets
//! that never leak.

mod support;

use serde_json::Value;
use support::sshd::{Sshd, fingerprint, keygen};
use support::{TestRepo, TinyHttp, contains_bytes};

/// A repo whose model `box` reaches `sshd` as the current user with the authorized key, wired
/// from the vault. `extra` is appended to its globalArguments.
fn ssh_repo(sshd: &Sshd, extra: &str) -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.orch_stdin(&["vault", "put", "ssh", "key"], &sshd.user_key())
        .ok();
    repo.write(
        "models/box.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  sshHost: 127.0.0.1\n  sshPort: {}\n  sshUser: {}\n  sshKey: ${{{{ vault.get(\"ssh\", \"key\") }}}}\n{extra}",
            sshd.port, sshd.user
        ),
    );
    repo
}

/// `ssh_repo` with the host key already recorded by `orch ssh trust`.
fn trusted_repo(sshd: &Sshd, extra: &str) -> TestRepo {
    let repo = ssh_repo(sshd, extra);
    repo.orch(&["ssh", "trust", &format!("127.0.0.1:{}", sshd.port)])
        .ok();
    repo
}

fn exec(repo: &TestRepo, inputs: &[&str]) -> support::Run {
    let mut args = vec!["--json", "model", "run", "box", "sshExec"];
    for i in inputs {
        args.push("--input");
        args.push(i);
    }
    repo.orch(&args)
}

fn output(run: &support::Run) -> Value {
    run.json()["output"].clone()
}

/// The base64 body lines of a private key: what must never appear anywhere.
fn key_lines(key: &str) -> Vec<String> {
    key.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

#[test]
fn exec_returns_stdout_stderr_and_the_exit_code() {
    let sshd = Sshd::start();
    let repo = trusted_repo(&sshd, "");
    let run = exec(&repo, &["command=echo out; echo err >&2; exit 3"]).ok();
    let out = output(&run);
    assert_eq!(out["exitCode"], 3, "{out}");
    assert_eq!(out["stdout"], "out\n");
    assert_eq!(out["stderr"], "err\n");

    let run = exec(&repo, &["command=tr a-z A-Z", "stdin=hello over stdin"]).ok();
    assert_eq!(output(&run)["stdout"], "HELLO OVER STDIN");
}

#[test]
fn upload_then_download_round_trips_a_file_with_its_mode() {
    let sshd = Sshd::start();
    let repo = trusted_repo(&sshd, "");
    let remote = sshd.path("remote dir/it's.conf");
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    let remote = remote.to_str().unwrap().to_string();
    let contents = "line one\nquotes ' \" and $HOME stay literal\n";
    let contents_input = format!("contents={contents}");
    let path_input = format!("path={remote}");
    let run = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "box",
            "sshUpload",
            "--input",
            &path_input,
            "--input",
            &contents_input,
            "--input",
            "mode=384",
        ])
        .ok();
    assert_eq!(output(&run)["bytes"], contents.len());
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), contents);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&remote).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(sshd.path("remote dir"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    let run = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "box",
            "sshDownload",
            "--input",
            &path_input,
        ])
        .ok();
    assert_eq!(output(&run)["contents"], contents);

    let missing = format!("path={}", sshd.path("nope").display());
    let run = repo
        .orch(&["model", "run", "box", "sshDownload", "--input", &missing])
        .code(1);
    assert!(run.all().contains("not-found"), "{}", run.all());
}

#[test]
fn a_key_the_server_does_not_accept_is_refused_clearly() {
    let sshd = Sshd::start();
    let repo = trusted_repo(&sshd, "");
    let other = sshd.path("other_key");
    keygen(&other, "");
    let other_key = std::fs::read_to_string(&other).unwrap();
    repo.orch_stdin(&["vault", "put", "ssh", "key"], &other_key)
        .ok();
    let run = exec(&repo, &["command=echo hi"]).code(1);
    let all = run.all();
    assert!(all.contains("denied"), "{all}");
    assert!(all.contains("refused the private key"), "{all}");
    assert!(
        all.contains(&fingerprint(&other.with_extension("pub"))),
        "names the key by its public fingerprint: {all}"
    );
    for line in key_lines(&other_key) {
        assert!(!all.contains(&line), "private key in the error: {all}");
    }
}

#[test]
fn an_unknown_host_key_is_refused_until_orch_ssh_trust_records_it() {
    let sshd = Sshd::start();
    let repo = ssh_repo(&sshd, "");
    let target = format!("127.0.0.1:{}", sshd.port);
    let run = exec(&repo, &["command=echo hi"]).code(1);
    let all = run.all();
    assert!(all.contains("denied"), "{all}");
    assert!(all.contains("host key is not known"), "{all}");
    assert!(all.contains(&format!("orch ssh trust {target}")), "{all}");
    assert!(all.contains(&sshd.host_fingerprint()), "{all}");
    assert_eq!(sshd.logins(), 0, "no login with an unverified host");

    let trusted = repo.orch(&["--json", "ssh", "trust", &target]).ok().json();
    assert_eq!(trusted["status"], "recorded");
    assert_eq!(trusted["fingerprint"], sshd.host_fingerprint());
    assert_eq!(trusted["host"], target);
    let again = repo.orch(&["--json", "ssh", "trust", &target]).ok().json();
    assert_eq!(again["status"], "already-trusted");
    let known = std::fs::read_to_string(repo.path().join(".orch/known_hosts")).unwrap();
    assert_eq!(known.lines().count(), 1, "{known}");
    assert!(known.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)));

    let run = exec(&repo, &["command=echo hi"]).ok();
    assert_eq!(output(&run)["stdout"], "hi\n");
}

#[test]
fn orch_ssh_trust_checks_a_given_fingerprint_and_its_arguments() {
    let sshd = Sshd::start();
    let repo = TestRepo::new(&[]);
    let target = format!("127.0.0.1:{}", sshd.port);
    let run = repo
        .orch(&[
            "ssh",
            "trust",
            &target,
            "--fingerprint",
            "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ])
        .code(1);
    assert!(run.all().contains("nothing was recorded"), "{}", run.all());
    assert!(!repo.path().join(".orch/known_hosts").exists());
    repo.orch(&[
        "ssh",
        "trust",
        &target,
        "--fingerprint",
        &sshd.host_fingerprint(),
    ])
    .ok();
    let usage = repo
        .orch(&["--json", "ssh", "trust", "root@127.0.0.1:22"])
        .code(2);
    assert_eq!(usage.json()["exitCode"], 2);
    let closed = TinyHttp::start("not ssh");
    let refused = repo
        .orch(&[
            "ssh",
            "trust",
            &format!("127.0.0.1:{}", closed.port),
            "--timeout-ms",
            "2000",
        ])
        .code(1);
    assert!(refused.all().contains("127.0.0.1"), "{}", refused.all());
}

#[test]
fn trust_on_first_use_records_the_key_when_the_definition_asks() {
    let sshd = Sshd::start();
    let repo = ssh_repo(&sshd, "  sshTrustOnFirstUse: true\n");
    let run = exec(&repo, &["command=echo first"]).ok();
    assert_eq!(output(&run)["stdout"], "first\n");
    let known = std::fs::read_to_string(repo.path().join(".orch/known_hosts")).unwrap();
    assert!(
        known.contains(&format!("[127.0.0.1]:{} ssh-ed25519", sshd.port)),
        "{known}"
    );
}

#[test]
fn a_changed_host_key_is_refused_loudly_naming_both_fingerprints() {
    let mut sshd = Sshd::start();
    // Even a definition that opts into trust-on-first-use never accepts a changed key.
    let repo = trusted_repo(&sshd, "  sshTrustOnFirstUse: true\n");
    exec(&repo, &["command=echo before"]).ok();
    let old = sshd.host_fingerprint();
    sshd.restart_with_new_host_key();
    let new = sshd.host_fingerprint();
    assert_ne!(old, new);
    let logins = sshd.logins();

    let run = exec(&repo, &["command=echo after"]).code(1);
    let all = run.all();
    assert!(all.contains("denied"), "{all}");
    assert!(all.contains("HOST KEY HAS CHANGED"), "{all}");
    assert!(all.contains(&old) && all.contains(&new), "{all}");
    assert!(all.contains("--replace"), "{all}");
    assert_eq!(
        sshd.logins(),
        logins,
        "no login to a host with a changed key"
    );

    let target = format!("127.0.0.1:{}", sshd.port);
    let refused = repo.orch(&["ssh", "trust", &target]).code(1);
    assert!(
        refused.all().contains("CHANGED") && refused.all().contains(&old),
        "{}",
        refused.all()
    );
    let replaced = repo
        .orch(&[
            "--json",
            "ssh",
            "trust",
            &target,
            "--replace",
            "--fingerprint",
            &new,
        ])
        .ok()
        .json();
    assert_eq!(replaced["status"], "replaced");
    assert_eq!(replaced["previous"][0], format!("ssh-ed25519 {old}"));
    let run = exec(&repo, &["command=echo after"]).ok();
    assert_eq!(output(&run)["stdout"], "after\n");
}

#[test]
fn a_target_outside_the_grant_is_denied_without_connecting() {
    let sshd = Sshd::start();
    let repo = trusted_repo(&sshd, "");
    let listener = TinyHttp::start("never reached");
    let port = format!("port={}", listener.port);
    let run = exec(&repo, &["command=echo hi", &port]).code(1);
    let all = run.all();
    assert!(all.contains("denied"), "{all}");
    assert!(
        all.contains(&format!("127.0.0.1:{}", listener.port)),
        "names the target: {all}"
    );
    assert!(
        all.contains("{{ globalArguments.sshHost }}:{{ globalArguments.sshPort }}")
            && all.contains(&format!("= 127.0.0.1:{}", sshd.port)),
        "names the rule: {all}"
    );
    let run = exec(&repo, &["command=echo hi", "host=127.0.0.2"]).code(1);
    assert!(run.all().contains("denied"), "{}", run.all());
    assert_eq!(listener.count(), 0, "no connection may be attempted");

    // orch.yaml narrows what the manifest allows; sshd sees no connection at all.
    repo.write(
        "orch.yaml",
        "grants:\n  testplug:\n    ssh: [\"deploy@10.0.0.4:22\"]\n",
    );
    let connections = sshd.log().matches("Connection from").count();
    let run = exec(&repo, &["command=echo hi"]).code(1);
    let all = run.all();
    assert!(
        all.contains("orch.yaml") && all.contains("deploy@10.0.0.4:22"),
        "{all}"
    );
    assert_eq!(sshd.log().matches("Connection from").count(), connections);
}

#[test]
fn a_command_past_its_timeout_fails_naming_it_and_the_session_stays_usable() {
    let sshd = Sshd::start();
    let repo = trusted_repo(&sshd, "");
    let run = exec(
        &repo,
        &["command=sleep 5", "timeoutMs=300", "then=echo still here"],
    )
    .ok();
    let out = output(&run);
    assert_eq!(out["first"]["error"]["kind"], "transient", "{out}");
    let message = out["first"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("sleep 5") && message.contains("300 ms"),
        "{message}"
    );
    assert_eq!(out["then"]["stdout"], "still here\n");
    assert_eq!(sshd.logins(), 1, "the same session ran both commands");

    let run = exec(&repo, &["command=sleep 5", "timeoutMs=200"]).code(1);
    assert!(
        run.all().contains("transient") && run.all().contains("200 ms"),
        "{}",
        run.all()
    );
}

#[test]
fn steps_of_one_run_share_one_ssh_connection() {
    let sshd = Sshd::start();
    let repo = trusted_repo(&sshd, "");
    let steps: String = (0..4)
        .map(|i| {
            format!(
                "      - name: s{i}\n        task: {{ type: model_method, modelIdOrName: box, methodName: sshExec, inputs: {{ command: \"echo {i}\" }} }}\n"
            )
        })
        .collect();
    repo.write(
        "workflows/fan.yaml",
        &format!("name: fan\njobs:\n  - name: main\n    steps:\n{steps}"),
    );
    repo.orch(&["run", "fan"]).ok();
    assert_eq!(sshd.logins(), 1, "{}", sshd.log());
    repo.orch(&["run", "fan"]).ok();
    assert_eq!(sshd.logins(), 2, "one connection per run");
}

#[test]
fn the_private_key_never_reaches_output_logs_or_orch_files() {
    let sshd = Sshd::start();
    let key_path = sshd.path("locked_key");
    let passphrase = "correct-horse-passphrase-7";
    keygen(&key_path, passphrase);
    sshd.authorize(&key_path.with_extension("pub"));
    let key = std::fs::read_to_string(&key_path).unwrap();
    let repo = trusted_repo(
        &sshd,
        "  sshPassphrase: ${{ vault.get(\"ssh\", \"passphrase\") }}\n",
    );
    repo.orch_stdin(&["vault", "put", "ssh", "key"], &key).ok();
    repo.orch_stdin(&["vault", "put", "ssh", "passphrase"], passphrase)
        .ok();
    let ok = exec(&repo, &["command=echo fine"]).ok();
    assert_eq!(output(&ok)["stdout"], "fine\n");
    let human = repo
        .orch(&[
            "-vv",
            "model",
            "run",
            "box",
            "sshExec",
            "--input",
            "command=exit 4",
        ])
        .ok();
    let failed = exec(&repo, &["command=sleep 3", "timeoutMs=100"]).code(1);
    repo.orch_stdin(&["vault", "put", "ssh", "passphrase"], "wrong-passphrase-1")
        .ok();
    let bad = exec(&repo, &["command=echo no"]).code(1);
    assert!(bad.all().contains("passphrase"), "{}", bad.all());

    let mut seen = format!("{}{}{}{}", ok.all(), human.all(), failed.all(), bad.all());
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    for r in runs.as_array().unwrap() {
        seen.push_str(
            &repo
                .orch(&["--json", "runs", "show", r["id"].as_str().unwrap()])
                .ok()
                .stdout,
        );
    }
    let files = repo.orch_dir_bytes();
    for secret in key_lines(&key)
        .into_iter()
        .chain([passphrase.to_string(), "wrong-passphrase-1".to_string()])
    {
        assert!(!seen.contains(&secret), "`{secret}` leaked:\n{seen}");
        assert!(
            !contains_bytes(&files, &secret),
            "`{secret}` is stored in clear under .orch/"
        );
    }
}

#[test]
fn credentials_that_do_not_come_from_a_vault_are_redacted_too() {
    let sshd = Sshd::start();
    let key = sshd.user_key();
    let repo = TestRepo::new(&["testplug"]);
    // The key sits in the definition itself (not recommended), and a later step logs it.
    let indented: String = key.lines().map(|l| format!("    {l}\n")).collect();
    repo.write(
        "models/box.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  sshHost: 127.0.0.1\n  sshPort: {}\n  sshUser: {}\n  sshTrustOnFirstUse: true\n  sshKey: |\n{indented}  secret: |\n{indented}",
            sshd.port, sshd.user
        ),
    );
    repo.write(
        "workflows/leak.yaml",
        "name: leak\njobs:\n  - name: main\n    steps:\n      - name: connect\n        task: { type: model_method, modelIdOrName: box, methodName: sshExec, inputs: { command: \"echo hi\" } }\n      - name: leak\n        dependsOn: [{ step: connect, condition: { type: succeeded } }]\n        task: { type: model_method, modelIdOrName: box, methodName: leak }\n",
    );
    // The log line is redacted; the write of the key is refused, not stored altered.
    let run = repo.orch(&["-v", "--json", "run", "leak"]).code(1);
    assert!(
        run.stdout.contains("the secret is ***"),
        "the logged key is redacted, not dropped: {}",
        run.stdout
    );
    assert!(
        run.all().contains("an SSH credential used in this run")
            && run.all().contains("at attributes.secret"),
        "{}",
        run.all()
    );
    let stored = repo.orch(&["--json", "data", "list", "box"]).ok().json();
    assert_eq!(stored, serde_json::json!([]), "nothing may be stored");
    for line in key_lines(&key) {
        assert!(!run.all().contains(&line), "key leaked:\n{}", run.all());
        assert!(!contains_bytes(&repo.orch_dir_bytes(), &line));
    }
}

/// Plain russh against orch, per exec and per connection. Prints numbers; asserts nothing
/// about time. Run with `cargo test -p orch --test ssh -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_ssh_exec_overhead_against_plain_russh() {
    // A login user whose shell is /bin/sh, so the numbers are not dominated by the machine's
    // ~/.bashrc (bash sources it for commands run by sshd).
    let user = bench::BenchUser::get();
    let sshd = Sshd::start_as(&user.name);
    println!("login user: {} ({})", user.name, user.shell());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench::run(&sshd));
}

mod bench {
    use super::*;
    use orch::capabilities::http::grant::HttpGrant;
    use orch::capabilities::ssh::grant::SshGrant;
    use orch::capabilities::{
        DataCapability, HttpCapability, KnownHosts, LogCapability, SshCapability, SshSessionPool,
    };
    use orch::runtime::wit::v0_2::Call;
    use orch::runtime::{CallCapabilities, PluginRuntime};
    use orch::store::{ResourceStore, StoreOptions};
    use orch::vault::Redactor;
    use russh::client;
    use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, decode_secret_key};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// `orchbench` (shell /bin/sh), created for the benchmark and removed after it, when
    /// running as root; otherwise the current user.
    pub struct BenchUser {
        pub name: String,
        created: bool,
    }

    fn sh(args: &[&str]) -> bool {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    impl BenchUser {
        pub fn get() -> Self {
            let me = std::process::Command::new("id")
                .arg("-un")
                .output()
                .unwrap();
            let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
            if me != "root" {
                return BenchUser {
                    name: me,
                    created: false,
                };
            }
            let name = "orchbench".to_string();
            if sh(&["id", "-u", &name]) {
                return BenchUser {
                    name,
                    created: false,
                };
            }
            assert!(sh(&["useradd", "-M", "-d", "/tmp", "-s", "/bin/sh", &name]));
            assert!(sh(&["usermod", "-p", "*", &name]));
            BenchUser {
                name,
                created: true,
            }
        }

        pub fn shell(&self) -> String {
            let out = std::process::Command::new("getent")
                .args(["passwd", &self.name])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string()
        }
    }

    impl Drop for BenchUser {
        fn drop(&mut self) {
            if self.created {
                sh(&["userdel", &self.name]);
            }
        }
    }

    struct AcceptAny;

    impl client::Handler for AcceptAny {
        type Error = russh::Error;
        async fn check_server_key(
            &mut self,
            _: &PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }

    async fn russh_connect(sshd: &Sshd) -> client::Handle<AcceptAny> {
        let config = Arc::new(client::Config {
            nodelay: true,
            ..Default::default()
        });
        let mut handle = client::connect(config, ("127.0.0.1", sshd.port), AcceptAny)
            .await
            .unwrap();
        let key = decode_secret_key(&sshd.user_key(), None).unwrap();
        let auth = handle
            .authenticate_publickey(
                sshd.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), None),
            )
            .await
            .unwrap();
        assert!(auth.success());
        handle
    }

    async fn russh_exec(handle: &client::Handle<AcceptAny>, command: &str) -> u32 {
        let mut channel = handle.channel_open_session().await.unwrap();
        channel.exec(true, command).await.unwrap();
        channel.eof().await.unwrap();
        let mut code = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                russh::ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
                russh::ChannelMsg::Close => break,
                _ => {}
            }
        }
        code.unwrap()
    }

    fn ms(d: Duration) -> String {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }

    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        v[v.len() / 2]
    }

    fn row(name: &str, value: String) {
        println!("| {name:<58} | {value:>12} |");
    }

    fn call(sshd: &Sshd, repeat: u32) -> Call {
        Call {
            type_name: "test/echo".into(),
            method: "sshExec".into(),
            model_name: "box".into(),
            global_arguments: globals(sshd).to_string(),
            arguments: serde_json::json!({ "command": "true", "repeat": repeat }).to_string(),
            dry_run: false,
        }
    }

    fn globals(sshd: &Sshd) -> serde_json::Value {
        serde_json::json!({
            "sshHost": "127.0.0.1",
            "sshPort": sshd.port,
            "sshUser": sshd.user,
            "sshKey": sshd.user_key(),
        })
    }

    fn caps(sshd: &Sshd, store: &ResourceStore, pool: &SshSessionPool) -> CallCapabilities {
        let rules = ["{{ globalArguments.sshHost }}:{{ globalArguments.sshPort }}".to_string()];
        let grant = SshGrant::new(&rules, None, globals(sshd).as_object().unwrap()).unwrap();
        CallCapabilities {
            log: LogCapability::new(Arc::new(|_, _| {}), 100),
            data: DataCapability::for_model("box", "test/echo", vec![], store.clone(), 10),
            http: HttpCapability::new(HttpGrant::none(), 0, Duration::from_secs(1)),
            ssh: SshCapability::new(
                grant,
                pool.clone(),
                Redactor::default(),
                1 << 20,
                Duration::from_secs(10),
            ),
        }
    }

    pub async fn run(sshd: &Sshd) {
        let tmp = tempfile::tempdir().unwrap();
        let known = tmp.path().join("known_hosts");
        let host_key = std::fs::read_to_string(sshd.path("host_key.pub")).unwrap();
        std::fs::write(&known, format!("[127.0.0.1]:{} {host_key}", sshd.port)).unwrap();
        let store = ResourceStore::new(tmp.path().join("data.redb"), StoreOptions::default());
        let rt = PluginRuntime::new(None).unwrap();
        let plugin = rt.load(&support::dist().join("testplug")).unwrap();
        let (n_cold, n_warm) = (15, 100);

        println!(
            "| {:<58} | {:>12} |",
            "SSH benchmark (local OpenSSH)", "median/mean"
        );
        println!("|{}|{}|", "-".repeat(60), "-".repeat(14));

        // Plain russh: connect + auth + exec, then exec on an open connection.
        let mut cold = Vec::new();
        for _ in 0..n_cold {
            let s = Instant::now();
            let h = russh_connect(sshd).await;
            assert_eq!(russh_exec(&h, "true").await, 0);
            cold.push(s.elapsed());
        }
        let h = russh_connect(sshd).await;
        russh_exec(&h, "true").await;
        let s = Instant::now();
        for _ in 0..n_warm {
            russh_exec(&h, "true").await;
        }
        let russh_warm = s.elapsed() / n_warm;
        let russh_cold = median(cold);
        row(
            "russh: connect + auth + exec `true` (median)",
            ms(russh_cold),
        );
        row(
            "russh: exec `true` on an open connection (mean)",
            ms(russh_warm),
        );

        // orch in process: a fresh instance per call, sessions from the run's pool.
        let mut cold = Vec::new();
        for _ in 0..n_cold {
            let pool = SshSessionPool::new(KnownHosts::new(known.clone()));
            let s = Instant::now();
            let out = rt
                .execute(&plugin, call(sshd, 1), caps(sshd, &store, &pool))
                .await
                .unwrap();
            cold.push(s.elapsed());
            out.result.unwrap();
            pool.close().await;
        }
        let orch_cold = median(cold);
        let pool = SshSessionPool::new(KnownHosts::new(known.clone()));
        rt.execute(&plugin, call(sshd, 1), caps(sshd, &store, &pool))
            .await
            .unwrap()
            .result
            .unwrap();
        let s = Instant::now();
        for _ in 0..n_warm {
            rt.execute(&plugin, call(sshd, 1), caps(sshd, &store, &pool))
                .await
                .unwrap()
                .result
                .unwrap();
        }
        let orch_call = s.elapsed() / n_warm;
        let s = Instant::now();
        rt.execute(&plugin, call(sshd, n_warm), caps(sshd, &store, &pool))
            .await
            .unwrap()
            .result
            .unwrap();
        let orch_warm = s.elapsed() / n_warm;
        assert_eq!(pool.connections_made(), 1, "the pool reused one connection");
        row(
            "orch: method call, new session: connect+auth+exec (median)",
            ms(orch_cold),
        );
        row(
            "orch: method call, pooled session, one exec (mean)",
            ms(orch_call),
        );
        row(
            "orch: exec inside one call, pooled session (mean)",
            ms(orch_warm),
        );
        row(
            "ratio orch / russh, exec on an open connection",
            format!("{:.2}x", orch_warm.as_secs_f64() / russh_warm.as_secs_f64()),
        );
        row(
            "overhead per exec (orch - russh)",
            format!(
                "{:.1} µs",
                (orch_warm.as_secs_f64() - russh_warm.as_secs_f64()) * 1e6
            ),
        );
        row(
            "ratio orch / russh, connect + auth + exec",
            format!("{:.2}x", orch_cold.as_secs_f64() / russh_cold.as_secs_f64()),
        );
        pool.close().await;

        // The whole `orch model run` process, start to exit.
        let repo = trusted_repo(sshd, "");
        let mut times = Vec::new();
        for _ in 0..10 {
            let s = Instant::now();
            exec(&repo, &["command=echo hi"]).ok();
            times.push(s.elapsed());
        }
        row(
            "process: `orch model run box sshExec` (median)",
            ms(median(times)),
        );
    }
}
