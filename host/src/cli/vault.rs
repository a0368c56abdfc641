//! `orch vault put|list|export|import`.

use super::{CliError, CmdResult, Ctx};
use std::io::{Read, Write};
use std::path::PathBuf;

/// `orch vault` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Store a secret read from stdin (never from the command line, which shells record).
    Put {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
    },
    /// List a vault's keys (never values).
    List {
        /// Vault name.
        vault: String,
    },
    /// Re-encrypt a vault for another machine's key (its `.orch/vault.key`); prints the sealed
    /// vault file (ciphertext only) or writes it to `--out`, for `orch vault import` there.
    Export {
        /// Vault name.
        vault: String,
        /// The other machine's vault key file (64 hex characters, base64 or 32 raw bytes).
        #[arg(long = "for", value_name = "KEY_FILE")]
        for_key: PathBuf,
        /// Write the sealed vault here (mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Install a vault exported for this machine's key (`-` reads stdin); every entry must
    /// decrypt with this machine's key first, or nothing changes.
    Import {
        /// Vault name.
        vault: String,
        /// The exported file, or `-` for stdin.
        file: PathBuf,
    },
}

/// Runs an `orch vault` subcommand.
pub fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let vault = ctx.vault(&repo)?;
    match cmd {
        Cmd::Put { vault: name, key } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .map_err(|e| CliError::failed(format!("cannot read the secret from stdin: {e}")))?;
            // A trailing newline from `echo` is not part of the secret.
            let value = value.strip_suffix('\n').unwrap_or(&value);
            let value = value.strip_suffix('\r').unwrap_or(value);
            if value.is_empty() {
                return Err(CliError::usage(
                    "the secret on stdin is empty; pipe it in: `printf %s \"$SECRET\" | orch vault put VAULT KEY`",
                ));
            }
            vault.put(&name, &key, value).map_err(CliError::failed)?;
            ctx.printer.result(
                &serde_json::json!({"vault": name, "key": key, "stored": true}),
                || format!("stored {name}/{key}"),
            );
            Ok(0)
        }
        Cmd::Export {
            vault: name,
            for_key,
            out,
        } => {
            let sealed = vault
                .export_for(&name, &for_key)
                .map_err(CliError::failed)?;
            match out {
                Some(path) => {
                    write_private(&path, &sealed)?;
                    let keys = vault.list(&name).map_err(CliError::failed)?;
                    ctx.printer.result(
                        &serde_json::json!({"vault": name, "keys": keys, "out": path}),
                        || {
                            format!(
                                "exported {name} ({} keys) to {}",
                                keys.len(),
                                path.display()
                            )
                        },
                    );
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout
                        .write_all(&sealed)
                        .and_then(|()| stdout.flush())
                        .map_err(|e| CliError::failed(format!("cannot write to stdout: {e}")))?;
                }
            }
            Ok(0)
        }
        Cmd::Import { vault: name, file } => {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes).map_err(|e| {
                    CliError::failed(format!("cannot read the vault from stdin: {e}"))
                })?;
                bytes
            } else {
                std::fs::read(&file).map_err(|e| {
                    CliError::failed(format!(
                        "cannot read {}: {e}; give the file `orch vault export` wrote",
                        file.display()
                    ))
                })?
            };
            let source = if file.as_os_str() == "-" {
                PathBuf::from("<stdin>")
            } else {
                file
            };
            let keys = vault
                .import(&name, &bytes, &source)
                .map_err(CliError::failed)?;
            ctx.printer
                .result(&serde_json::json!({"vault": name, "keys": keys}), || {
                    format!("imported {name}: {}", keys.join(", "))
                });
            Ok(0)
        }
        Cmd::List { vault: name } => {
            let keys = vault.list(&name).map_err(CliError::failed)?;
            ctx.printer
                .result(&serde_json::json!({"vault": name, "keys": keys}), || {
                    keys.join("\n")
                });
            Ok(0)
        }
    }
}

/// Writes `bytes` to `path` readable by the owner only, through a temp file and a rename.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    let fail = |e: std::io::Error| {
        CliError::failed(format!(
            "cannot write {}: {e}; check that the directory exists and is writable",
            path.display()
        ))
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(e));
    }
    Ok(())
}
