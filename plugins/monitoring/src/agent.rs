//! `monitoring/agent`: node_exporter on a VM over SSH. Its flags live in one `ARGS="…"` line of
//! a flags file (Debian's `/etc/default/prometheus-node-exporter`); `configure` and
//! `enableTextfileCollector` each own one flag of it and leave the others alone. The file is
//! rewritten, and the exporter restarted, only when the line changes.

use crate::remote::{self, Connector, Remote};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Serialize};

fn default_install_command() -> String {
    "DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus-node-exporter".to_string()
}

fn default_exporter_bin() -> String {
    "prometheus-node-exporter".to_string()
}

fn default_flags_file() -> String {
    "/etc/default/prometheus-node-exporter".to_string()
}

fn default_restart_command() -> String {
    "systemctl restart prometheus-node-exporter".to_string()
}

remote::ssh_globals! {
    /// Global arguments of `monitoring/agent`.
    pub struct AgentGlobals {
        /// Shell command that installs node_exporter (default: apt-get install -y prometheus-node-exporter).
        #[serde(default = "default_install_command")]
        pub install_command: String,
        /// The exporter's binary, looked up with `command -v` to tell whether it is installed (default `prometheus-node-exporter`).
        #[serde(default = "default_exporter_bin")]
        pub exporter_bin: String,
        /// File holding the exporter's `ARGS="…"` line (default `/etc/default/prometheus-node-exporter`).
        #[serde(default = "default_flags_file")]
        pub flags_file: String,
        /// Shell command that (re)starts the exporter after its flags changed (default `systemctl restart prometheus-node-exporter`).
        #[serde(default = "default_restart_command")]
        pub restart_command: String,
    }
}

/// No arguments (the SDK's).
pub use orch_plugin_sdk::NoArgs;

fn default_listen_address() -> String {
    "0.0.0.0".to_string()
}

fn default_port() -> u16 {
    9100
}

/// Arguments of `configure`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigureArgs {
    /// Address node_exporter listens on (default `0.0.0.0`).
    #[serde(default = "default_listen_address")]
    pub listen_address: String,
    /// Port node_exporter listens on (default 9100).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
}

/// Arguments of `enableTextfileCollector`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TextfileArgs {
    /// Directory of the `*.prom` files, e.g. `/var/lib/node_exporter/textfile_collector`.
    pub dir: String,
}

/// What `install` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallOutput {
    /// Where the exporter's binary is.
    pub path: String,
    /// False when it was installed already (nothing was run).
    pub changed: bool,
}

/// What `configure` and `enableTextfileCollector` return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagsOutput {
    /// The flags file.
    pub flags_file: String,
    /// The exporter's flags after the call.
    pub args: Vec<String>,
    /// False when the flag was already set (no write, no restart).
    pub changed: bool,
}

/// The flags of the `ARGS=` line of a flags file (the last one wins, as in a shell).
pub fn parse_args(text: &str) -> Vec<String> {
    let Some(line) = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("ARGS="))
    else {
        return Vec::new();
    };
    let value = line.trim_start()["ARGS=".len()..].trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    value.split_whitespace().map(str::to_string).collect()
}

/// `args` with every `--name` / `--name=…` replaced by `--name=value`, at the first one's place.
pub fn set_flag(args: &[String], name: &str, value: &str) -> Vec<String> {
    let flag = format!("--{name}");
    let prefix = format!("{flag}=");
    let wanted = format!("{prefix}{value}");
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut placed = false;
    for arg in args {
        if arg == &flag || arg.starts_with(&prefix) {
            if !placed {
                out.push(wanted.clone());
                placed = true;
            }
        } else {
            out.push(arg.clone());
        }
    }
    if !placed {
        out.push(wanted);
    }
    out
}

/// The flags file with its `ARGS=` line set to `args` (appended when it had none); other lines stay.
pub fn render(text: &str, args: &[String]) -> String {
    let line = format!("ARGS=\"{}\"", args.join(" "));
    let mut lines: Vec<String> = Vec::new();
    let mut replaced = false;
    for l in text.lines() {
        if l.trim_start().starts_with("ARGS=") {
            if !replaced {
                lines.push(line.clone());
                replaced = true;
            }
        } else {
            lines.push(l.to_string());
        }
    }
    if !replaced {
        lines.push(line);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// A flag value that fits in a double-quoted shell word without changing meaning.
fn check_value(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'`$\\".contains(c))
    {
        return Err(error::invalid(format!(
            "{field} {value:?} must be non-empty, without spaces, quotes, `$` or backslashes"
        )));
    }
    Ok(value.to_string())
}

fn check_absolute(field: &str, value: &str) -> Result<String> {
    let value = check_value(field, value)?;
    if !value.starts_with('/') {
        return Err(error::invalid(format!(
            "{field} {value:?} must be an absolute path"
        )));
    }
    Ok(value)
}

fn non_empty<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    let value = value.trim();
    if value.is_empty() {
        return Err(error::invalid(format!("{field} must not be empty")));
    }
    Ok(value)
}

/// `install`: run installCommand unless exporterBin is already on the PATH.
pub fn install<C: Connector>(
    connector: &C,
    globals: &AgentGlobals,
    model: &str,
) -> Result<InstallOutput> {
    let bin = non_empty("exporterBin", &globals.exporter_bin)?;
    let install = non_empty("installCommand", &globals.install_command)?;
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    let lookup = format!("command -v {}", shell_quote(bin));
    let found = remote.run(&lookup)?;
    if found.success() {
        return Ok(InstallOutput {
            path: found.stdout.trim().to_string(),
            changed: false,
        });
    }
    remote.run_ok(install, "installing node_exporter (installCommand)")?;
    let path = remote
        .run_ok(&lookup, "finding the exporter after installing it")
        .map_err(|_| {
            error::failed(format!(
                "installCommand succeeded but {bin} is still not on the PATH: set exporterBin"
            ))
        })?;
    Ok(InstallOutput {
        path: path.trim().to_string(),
        changed: true,
    })
}

/// Sets one flag in the flags file; writes (temp file + rename) and restarts only on a change.
fn set_and_restart(
    remote: &impl Remote,
    globals: &AgentGlobals,
    name: &str,
    value: &str,
) -> Result<FlagsOutput> {
    let path = check_absolute("flagsFile", &globals.flags_file)?;
    let restart = non_empty("restartCommand", &globals.restart_command)?;
    let before = remote.read_file(&path)?.unwrap_or_default();
    let old = parse_args(&before);
    let args = set_flag(&old, name, value);
    if args == old {
        return Ok(FlagsOutput {
            flags_file: path,
            args,
            changed: false,
        });
    }
    let staged = format!("{path}.orch-new");
    let parent = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    if !parent.is_empty() {
        remote.run_ok(
            &format!("mkdir -p {}", shell_quote(parent)),
            "creating the flags file's directory",
        )?;
    }
    remote.upload(&staged, render(&before, &args).as_bytes(), 0o644)?;
    remote.run_ok(
        &format!("mv -f {} {}", shell_quote(&staged), shell_quote(&path)),
        "moving the new flags file in place",
    )?;
    remote.run_ok(restart, "restarting node_exporter (restartCommand)")?;
    Ok(FlagsOutput {
        flags_file: path,
        args,
        changed: true,
    })
}

/// `configure`: set `--web.listen-address`.
pub fn configure<C: Connector>(
    connector: &C,
    globals: &AgentGlobals,
    model: &str,
    args: &ConfigureArgs,
) -> Result<FlagsOutput> {
    let address = check_value("listenAddress", &args.listen_address)?;
    if args.port == 0 {
        return Err(error::invalid("port must be between 1 and 65535"));
    }
    // An IPv6 address needs brackets before the port.
    let address = if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address
    };
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    set_and_restart(
        &remote,
        globals,
        "web.listen-address",
        &format!("{address}:{}", args.port),
    )
}

/// `enableTextfileCollector`: create the directory and set `--collector.textfile.directory`.
pub fn enable_textfile_collector<C: Connector>(
    connector: &C,
    globals: &AgentGlobals,
    model: &str,
    args: &TextfileArgs,
) -> Result<FlagsOutput> {
    let dir = check_absolute("dir", &args.dir)?;
    let dir = match dir.trim_end_matches('/') {
        "" => return Err(error::invalid("dir must not be /")),
        d => d.to_string(),
    };
    let remote = remote::connect(connector, &globals.ssh(), model)?;
    remote.run_ok(
        &format!("mkdir -p {}", shell_quote(&dir)),
        "creating the textfile collector directory",
    )?;
    set_and_restart(&remote, globals, "collector.textfile.directory", &dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::fake::{FakeConnector, FakeRemote, exit, ok};

    fn globals() -> AgentGlobals {
        serde_json::from_value(serde_json::json!({
            "sshHost": "10.0.0.96",
            "sshKey": "key",
            "installCommand": "install-it",
            "flagsFile": "/etc/default/ne",
            "restartCommand": "restart-it",
        }))
        .unwrap()
    }

    #[test]
    fn install_runs_the_install_command_only_when_the_exporter_is_missing() {
        let present = FakeConnector::new(FakeRemote::new(|_| {
            ok("/usr/bin/prometheus-node-exporter\n")
        }));
        let out = install(&present, &globals(), "m").unwrap();
        assert!(!out.changed);
        assert_eq!(
            present.remote.commands(),
            ["command -v 'prometheus-node-exporter'"]
        );

        let installed = std::cell::Cell::new(false);
        let missing = FakeConnector::new(FakeRemote::new(move |c| {
            if c == "install-it" {
                installed.set(true);
                return ok("");
            }
            if installed.get() {
                ok("/usr/bin/prometheus-node-exporter")
            } else {
                exit(1, "", "")
            }
        }));
        let out = install(&missing, &globals(), "m").unwrap();
        assert!(out.changed);
        assert_eq!(out.path, "/usr/bin/prometheus-node-exporter");
        assert!(
            missing
                .remote
                .commands()
                .contains(&"install-it".to_string())
        );
    }

    #[test]
    fn an_unchanged_flag_is_neither_written_nor_restarted() {
        let current = "ARGS=\"--collector.textfile.directory=/d\"\n";
        let fake = FakeConnector::new(FakeRemote::new(move |c| {
            if c.contains("cat") {
                ok(current)
            } else {
                ok("")
            }
        }));
        let out =
            enable_textfile_collector(&fake, &globals(), "m", &TextfileArgs { dir: "/d/".into() })
                .unwrap();
        assert!(!out.changed);
        assert!(fake.remote.uploads().is_empty());
        assert!(!fake.remote.commands().contains(&"restart-it".to_string()));

        let out = configure(
            &fake,
            &globals(),
            "m",
            &ConfigureArgs {
                listen_address: "::1".into(),
                port: 9100,
            },
        )
        .unwrap();
        assert!(out.changed);
        let uploads = fake.remote.uploads();
        assert_eq!(uploads[0].0, "/etc/default/ne.orch-new");
        assert_eq!(
            uploads[0].1,
            "ARGS=\"--collector.textfile.directory=/d --web.listen-address=[::1]:9100\"\n"
        );
        assert_eq!(fake.remote.commands().last().unwrap(), "restart-it");
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_last_args_line_is_read_without_its_quotes() {
        let text = "# comment\nARGS=\"--a=1\"\nOTHER=x\nARGS=\"--b=2  --c\"\n";
        assert_eq!(parse_args(text), strings(&["--b=2", "--c"]));
        assert_eq!(parse_args("ARGS='--x'"), strings(&["--x"]));
        assert!(parse_args("# nothing\n").is_empty());
    }

    #[test]
    fn setting_a_flag_replaces_it_in_place_and_keeps_the_others() {
        let args = strings(&["--a", "--web.listen-address=:1", "--b"]);
        assert_eq!(
            set_flag(&args, "web.listen-address", "0.0.0.0:9100"),
            strings(&["--a", "--web.listen-address=0.0.0.0:9100", "--b"])
        );
        assert_eq!(
            set_flag(&strings(&["--a"]), "collector.textfile.directory", "/d"),
            strings(&["--a", "--collector.textfile.directory=/d"])
        );
        let same = strings(&["--web.listen-address=0.0.0.0:9100"]);
        assert_eq!(set_flag(&same, "web.listen-address", "0.0.0.0:9100"), same);
    }

    #[test]
    fn rendering_keeps_other_lines_and_adds_a_missing_args_line() {
        let args = strings(&["--a", "--b=1"]);
        assert_eq!(
            render("# keep\nARGS=\"\"\nX=1", &args),
            "# keep\nARGS=\"--a --b=1\"\nX=1\n"
        );
        assert_eq!(render("", &args), "ARGS=\"--a --b=1\"\n");
        assert_eq!(parse_args(&render("# c\n", &args)), args);
    }

    #[test]
    fn values_that_would_break_the_quoted_line_are_refused() {
        for bad in ["", "a b", "a\"b", "$(x)", "a\\b"] {
            assert!(check_value("dir", bad).is_err(), "{bad:?}");
        }
        assert!(check_absolute("dir", "relative").is_err());
        assert_eq!(check_absolute("dir", " /x ").unwrap(), "/x");
    }
}
