//! `orch ssh trust`: record a host's key in the repository's known-hosts store.

use super::{CliError, CmdResult, Ctx};
use crate::capabilities::ssh::grant::SshTarget;
use crate::capabilities::ssh::{HostKeyStatus, KnownHosts, fingerprint, probe_host_key};
use crate::repo::STATE_DIR;
use serde_json::json;
use std::time::Duration;

/// `orch ssh` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Connect to HOST[:PORT], show its host key and record it in .orch/known_hosts.
    Trust(TrustArgs),
}

/// `orch ssh trust` arguments.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// The host, as `host`, `host:port` or `[ipv6]:port` (port 22 when omitted).
    target: String,
    /// Record the key only if it has this fingerprint (`SHA256:…`, as `ssh-keygen -l` shows it).
    #[arg(long, value_name = "SHA256:…")]
    fingerprint: Option<String>,
    /// Replace the keys already recorded for the host (after a verified key change).
    #[arg(long)]
    replace: bool,
    /// Give up connecting after this many milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    timeout_ms: u64,
}

/// Runs an `orch ssh` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::Trust(args) => trust(args, ctx).await,
    }
}

/// Splits `host`, `host:port` or `[v6]:port`.
fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    if text.contains('@') {
        return Err(format!(
            "`{text}`: host keys belong to hosts, not users; drop the `user@`"
        ));
    }
    if text.contains("://") || text.contains('/') {
        return Err(format!(
            "`{text}`: give `host` or `host:port`, no scheme or path"
        ));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{text}`: unclosed `[`"))?;
        match tail.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if tail.is_empty() => (host, None),
            None => return Err(format!("`{text}`: expected `:port` after `]`")),
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => (text, None), // a bare IPv6 address
            None => (text, None),
        }
    };
    let port = match port {
        None => 22,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{text}`: bad port `{p}` (1 to 65535)"))?,
    };
    let checked = SshTarget::new(host, port, "orch").map_err(|e| format!("`{text}`: {e}"))?;
    Ok((checked.host, port))
}

/// Normalizes `SHA256:abc` / `abc` for comparison.
fn same_fingerprint(expected: &str, actual: &str) -> bool {
    let strip = |s: &str| {
        let s = s.trim();
        s.strip_prefix("SHA256:")
            .unwrap_or(s)
            .trim_end_matches('=')
            .to_string()
    };
    let actual_hash = actual.rsplit(' ').next().unwrap_or(actual);
    strip(expected) == strip(actual_hash)
}

async fn trust(args: TrustArgs, ctx: &Ctx) -> CmdResult {
    let (host, port) = parse_host_port(&args.target).map_err(CliError::usage)?;
    let shown = crate::capabilities::ssh::grant::host_port(&host, port);
    let root = ctx.repo_root()?;
    let store = KnownHosts::in_dir(&root.join(STATE_DIR));
    let file = format!("{STATE_DIR}/{}", crate::capabilities::ssh::KNOWN_HOSTS_FILE);
    let timeout = Duration::from_millis(args.timeout_ms.clamp(1, 120_000));
    let key = probe_host_key(&host, port, &store, timeout)
        .await
        .map_err(CliError::failed)?;
    let presented = fingerprint(&key);
    if let Some(expected) = &args.fingerprint
        && !same_fingerprint(expected, &presented)
    {
        return Err(CliError::failed(format!(
            "{shown} presented {presented}, not the expected {expected}; nothing was recorded"
        )));
    }
    let status = store.check(&host, port, &key).map_err(CliError::failed)?;
    let (outcome, previous) = match status {
        HostKeyStatus::Known => ("already-trusted", Vec::new()),
        HostKeyStatus::Unknown => {
            store.record(&host, port, &key).map_err(CliError::failed)?;
            ("recorded", Vec::new())
        }
        HostKeyStatus::Revoked { line } => {
            return Err(CliError::failed(format!(
                "{shown} presented {presented}, which {file}:{line} marks @revoked; nothing was recorded"
            )));
        }
        HostKeyStatus::Changed { recorded } => {
            let old: Vec<String> = recorded.iter().map(|r| fingerprint(&r.key)).collect();
            if !args.replace {
                let lines: Vec<String> = recorded
                    .iter()
                    .map(|r| format!("{} ({file}:{})", fingerprint(&r.key), r.line))
                    .collect();
                return Err(CliError::failed(format!(
                    "THE HOST KEY OF {shown} HAS CHANGED: it presented {presented} but {file} records {}. Someone may be intercepting the connection, or the host was reinstalled. Verify the new key out of band, then run `orch ssh trust {shown} --replace --fingerprint {}`",
                    lines.join(", "),
                    key.fingerprint(russh::keys::HashAlg::Sha256)
                )));
            }
            store.replace(&host, port, &key).map_err(CliError::failed)?;
            ("replaced", old)
        }
    };
    let value = json!({
        "host": shown,
        "algorithm": key.algorithm().to_string(),
        "fingerprint": key.fingerprint(russh::keys::HashAlg::Sha256).to_string(),
        "status": outcome,
        "previous": previous,
        "file": file,
    });
    ctx.printer.result(&value, || match outcome {
        "already-trusted" => format!("{shown} {presented} is already trusted ({file})"),
        "replaced" => format!(
            "replaced {} with {presented} for {shown} in {file}",
            previous.join(", ")
        ),
        _ => format!("recorded {shown} {presented} in {file}"),
    });
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("10.0.0.4").unwrap(),
            ("10.0.0.4".into(), 22)
        );
        assert_eq!(
            parse_host_port("Web.LAN:2222").unwrap(),
            ("web.lan".into(), 2222)
        );
        assert_eq!(parse_host_port("[::1]:2222").unwrap(), ("::1".into(), 2222));
        assert_eq!(parse_host_port("::1").unwrap(), ("::1".into(), 22));
        assert!(parse_host_port("root@h:22").is_err());
        assert!(parse_host_port("ssh://h:22").is_err());
        assert!(parse_host_port("h:0").is_err());
    }

    #[test]
    fn fingerprints_compare_with_or_without_prefix() {
        let actual = "ssh-ed25519 SHA256:abcDEF";
        assert!(same_fingerprint("SHA256:abcDEF", actual));
        assert!(same_fingerprint("abcDEF=", actual));
        assert!(!same_fingerprint("SHA256:abcdef", actual));
    }
}
